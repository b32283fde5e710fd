"""TCP proxies between the sync client and the platform, written for the tests.

* :class:`ChaosProxy` decides the fate of each connection with a seeded random generator:
  pass it, delay it, refuse it, cut the request or the answer after a random number of bytes,
  or reset it; connections that pass are cut too, after a random (larger) number of bytes.
  The decisions are drawn in connection order, so a run is reproducible as far as the
  client's connection order is.
* :class:`TamperProxy` understands just enough HTTP/1.1 to change one response header (the
  deny list's signature) on its way to the terminal.

Both run on threads and are stopped (every socket closed, every thread joined) by
:meth:`close`.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable

CHUNK = 65536
FATES = ("pass", "delay", "refuse", "cut_request", "cut_answer", "reset")


class _Proxy:
    """Accept on loopback, connect upstream for each client, hand both to :meth:`handle`.

    :param upstream: the platform's (host, port)
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(30)
            self._track(client)
            thread = threading.Thread(
                target=self._serve, args=(client,), name="proxy-conn", daemon=True
            )
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            self.handle(client)
        except OSError:
            pass
        finally:
            self._forget(client)

    def connect_upstream(self) -> socket.socket:
        """A new connection to the platform (tracked: closed by :meth:`close`)."""
        upstream = socket.create_connection(self.upstream, timeout=30)
        self._track(upstream)
        if self._stop.is_set():  # close() may have listed the sockets before this one joined
            _close(upstream)
        return upstream

    def handle(self, client: socket.socket) -> None:
        """Serve one client connection (subclasses).

        :param client: the accepted socket
        """
        raise NotImplementedError

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        _close(sock)

    def close(self) -> None:
        """Stop accepting, close every socket, join every thread."""
        self._stop.set()
        self._listener.close()
        self._acceptor.join(5)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(5)
        assert not any(t.is_alive() for t in threads), "a proxy thread did not stop"


class ChaosProxy(_Proxy):
    """Relay connections, spoiling some of them at random (seeded).

    :param upstream: the platform's (host, port)
    :param seed: the random seed
    :param weights: relative weight of each fate of :data:`FATES`
    :param max_delay_s: the longest delay of one relayed chunk
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        seed: int,
        weights: dict[str, float] | None = None,
        max_delay_s: float = 0.05,
    ) -> None:
        self._rng = random.Random(seed)
        self._weights = weights or {
            "pass": 6,
            "delay": 2,
            "refuse": 1,
            "cut_request": 1,
            "cut_answer": 2,
            "reset": 1,
        }
        self.max_delay_s = max_delay_s
        self.fates: Counter[str] = Counter()
        super().__init__(upstream)

    def handle(self, client: socket.socket) -> None:
        """Serve a connection according to its drawn fate. No connection lives for ever:
        ``pass`` and ``delay`` connections are cut (cleanly) after a random number of request
        bytes too, so a kept-alive connection cannot carry the whole test unharmed.

        :param client: the accepted socket
        """
        with self._lock:
            fate = self._rng.choices(FATES, [self._weights.get(f, 0) for f in FATES])[0]
            request_cut = self._rng.randint(1, 200_000)
            answer_cut = self._rng.randint(1, 600)
            lifetime = self._rng.randint(20_000, 600_000)
            delay = self._rng.uniform(0, self.max_delay_s)
            self.fates[fate] += 1
        if fate == "refuse":
            _reset(client)
            return
        up_limit = request_cut if fate == "cut_request" else lifetime
        down_limit = answer_cut if fate in {"cut_answer", "reset"} else None
        pace = delay if fate == "delay" else 0.0
        upstream = self.connect_upstream()
        try:
            forward = threading.Thread(
                target=_pump,
                args=(client, upstream, up_limit, pace),
                name="proxy-pump",
                daemon=True,
            )
            forward.start()
            _pump(upstream, client, down_limit, pace, rst=fate == "reset")
            _close(client)
            _close(upstream)
            forward.join(30)
        finally:
            self._forget(upstream)


class TamperProxy(_Proxy):
    """Relay HTTP/1.1, rewriting one response header with ``tamper`` while ``active``.

    :param upstream: the platform's (host, port)
    :param header: the header's name (case-insensitive)
    :param tamper: old value → new value
    """

    def __init__(
        self, upstream: tuple[str, int], header: str, tamper: Callable[[str], str]
    ) -> None:
        self.header = header.lower().encode("ascii")
        self.tamper = tamper
        self.active = True
        self.tampered = 0
        super().__init__(upstream)

    def handle(self, client: socket.socket) -> None:
        """Relay requests as they are and answers through :meth:`_answers`.

        :param client: the accepted socket
        """
        upstream = self.connect_upstream()
        try:
            forward = threading.Thread(
                target=_pump, args=(client, upstream, None, 0.0), name="proxy-pump", daemon=True
            )
            forward.start()
            self._answers(upstream, client)
            _close(client)
            _close(upstream)
            forward.join(30)
        finally:
            self._forget(upstream)

    def _answers(self, source: socket.socket, sink: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = source.recv(CHUNK)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length, chunked = 0, False
            for index, line in enumerate(lines):
                name, _, value = line.partition(b":")
                key = name.strip().lower()
                if key == b"content-length":
                    length = int(value.strip())
                elif key == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif key == self.header and self.active:
                    new = self.tamper(value.strip().decode("latin-1"))
                    lines[index] = name + b": " + new.encode("latin-1")
                    self.tampered += 1
            sink.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
            if chunked:  # not parsed: relay the rest of the connection as it is
                sink.sendall(buffer)
                _pump(source, sink, None, 0.0)
                return
            while len(buffer) < length:
                data = source.recv(CHUNK)
                if not data:
                    sink.sendall(buffer)
                    return
                buffer += data
            sink.sendall(buffer[:length])
            buffer = buffer[length:]


def _pump(
    source: socket.socket,
    sink: socket.socket,
    limit: int | None,
    pace: float,
    rst: bool = False,
) -> None:
    """Copy bytes until EOF, an error, or ``limit`` bytes (then both sides are closed, the
    sink with a reset when ``rst``)."""
    sent = 0
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            if limit is not None and sent + len(data) >= limit:
                sink.sendall(data[: limit - sent])
                if rst:
                    _reset(sink)
                _close(sink)
                _close(source)
                return
            if pace:
                time.sleep(pace)
            sink.sendall(data)
            sent += len(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST rather than a FIN.

    The read side is shut down first: on Linux ``close`` does not wake a thread blocked in
    ``recv`` on the socket (the other direction's pump), and the blocked call keeps the
    socket alive, so the RST would wait for the peer to send or give up, and :meth:`close`,
    finding the socket already closed, could no longer wake that thread. ``SHUT_RD`` wakes
    it without sending a FIN; the linger-0 ``close`` then sends the RST at once.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    """Shut down (which wakes a thread blocked in ``recv`` on it), then close."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
