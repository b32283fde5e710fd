"""Serving the platform with uvicorn, on a socket bound first (so port 0 gives a free port
whose URL is known before the first request), with a clean stop on SIGTERM or SIGINT.

::

    server = PlatformServer(create_app(db, keys), "127.0.0.1", 8480)
    print(server.url)
    server.run()                  # main thread: returns after SIGTERM/SIGINT, requests finished

    server.start(); …; server.stop()   # tests: on a thread
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from platform_server.errors import PlatformConfigError
from platform_server.problems import PROBLEM_TYPE

__all__ = ["PlatformServer", "is_loopback"]

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_S = 10
START_TIMEOUT_S = 10.0
BACKLOG = 2048
HANDLED = (signal.SIGINT, signal.SIGTERM)
NOT_HTTP = json.dumps(
    {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "code": "bad_request",
        "detail": "the request is not valid HTTP/1.1",
    }
).encode("ascii")


def is_loopback(host: str) -> bool:
    """Tell whether a host name or address stays on this machine.

    :param host: ``127.0.0.1``, ``::1``, ``localhost`` …
    :raises: nothing
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProblemH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, answering a request it cannot parse — a malformed request
    line or header, such as ``Content-Length: ²`` — with a problem document like every other
    refusal of the platform, instead of ``text/plain``."""

    def send_400_response(self, msg: str) -> None:
        """Answer 400 ``bad_request`` and close the connection.

        :param msg: uvicorn's text (not sent: the problem document says the same)
        :raises: nothing
        """
        headers = [
            (b"content-type", PROBLEM_TYPE.encode("ascii")),
            (b"content-length", str(len(NOT_HTTP)).encode("ascii")),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=NOT_HTTP),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


class PlatformServer:
    """uvicorn serving the platform's application.

    :param app: the application (:func:`platform_server.app.create_app`)
    :param host: the address to bind
    :param port: the port (0: any free port)
    :param tls_cert: a PEM certificate chain to serve HTTPS with
    :param tls_key: its private key (PEM)
    :raises PlatformConfigError: the address cannot be bound, or a certificate without a key
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise PlatformConfigError("give both --tls-cert and --tls-key, or neither")
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )[0]
            # proto = IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (without
            # it, Nagle and delayed ACKs hold every small answer back ~40 ms)
            self.socket = socket.socket(family, kind, proto)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            # listening before the URL is printed: a client that reads it may connect at once
            self.socket.listen(BACKLOG)
        except OSError as exc:
            raise PlatformConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        bound_host, bound_port = self.socket.getsockname()[:2]
        scheme = "https" if tls_cert else "http"
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{scheme}://{shown}:{bound_port}/"
        self.port = int(bound_port)
        config = uvicorn.Config(
            app,
            http=ProblemH11Protocol,
            log_config=None,  # the process's own logging (key=value lines) stays in charge
            access_log=False,  # the application logs each request without query values
            timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            lifespan="on",
            backlog=BACKLOG,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (main thread) or :meth:`stop`; requests in flight are
        finished, then the application is shut down.

        :raises: nothing beyond uvicorn's own errors
        """
        log.info("event=platform_serving url=%s", self.url)
        with _quiet_signals(self.server):
            self.server.run(sockets=[self.socket])
        self.socket.close()
        log.info("event=platform_stopped url=%s", self.url)

    def start(self) -> str:
        """Serve on a thread; return once it accepts connections.

        :returns: the base URL
        :raises PlatformConfigError: it did not start within the timeout
        """
        self._thread = threading.Thread(target=self.run, name="sscard-platform", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise PlatformConfigError(f"the platform did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        """Ask the server to finish and wait for its thread (idempotent).

        :raises: nothing
        """
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACEFUL_TIMEOUT_S + 5)
            self._thread = None


@contextlib.contextmanager
def _quiet_signals(server: uvicorn.Server) -> Iterator[None]:
    """On the main thread, make SIGTERM/SIGINT handlers that note the signal and ask ``server``
    to stop.

    uvicorn replaces them while it serves and, once it stopped gracefully, raises the signal
    again for the handler it found: that handler is this one, so the process ends normally
    (exit status 0) instead of dying of the signal. A signal that comes before uvicorn's own
    handlers are in place (while it starts) stops the server too: it checks ``should_exit``
    once started, so the stop is not lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: FrameType | None) -> None:
        log.info("event=platform_signal signal=%d", signum)
        server.should_exit = True

    previous = {sig: signal.signal(sig, note) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
