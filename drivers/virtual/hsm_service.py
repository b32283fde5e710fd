"""The reference HSM service: the 持卡库 "卡内部认证" service of spec §3.7 (S4 App C.1), computing
with software root keys, for development, tests and small sites.

HTTP contract (JSON bodies, UTF-8; the same in OpenAPI 3.1 in ``drivers/hsm-openapi.yaml``,
which schemathesis runs against the service in the test suite):

``POST /v1/hsm/card-auth``
    Request ``{"step1": "<iReadCardBas_HSM_Step1 string>", "terminal": "<optional id>"}``.
    ``200 {"pkey": "<iReadCardBas_HSM_Step2 pKey>"}``;
    ``400 {"error": …, "code": -23}`` malformed JSON (not UTF-8, nested deeper than 32
    levels), fields or Step1 string (a hex field of odd length or with other characters), a
    missing or malformed ``Content-Length``, or a request that is not HTTP/1.1;
    ``401 {"error": …}`` a token is configured and the ``Authorization: Bearer`` header
    does not carry it;
    ``413 {"error": …}`` a body over 16 KiB;
    ``422 {"error": …, "code": -2202}`` the keys cannot serve the algorithm (SSF33, or no IRK
    root), ``422 {"error": …, "code": -2203}`` a 3.0 card and no RKSSSE root.
``GET /v1/health``
    ``200 {"status": "ok"}``, no token needed (it says nothing about keys or cards).

Any other path is ``404``, any other method on a known path ``405``. Every error answer is an
RFC 9457 problem document (``application/problem+json``: ``type``, ``title``, ``status``,
``detail``) that also carries ``error`` (the same text) and, on 400 and 422 answers, ``code``,
the national error code (spec §4.7) of the condition. Request bodies are read by
:func:`sync.wire.load_json`, numbers as ASCII digits only; an unexpected failure is a ``500``
without details (the fuzz tests in the suite see none). Each request is logged in one line,
every value from the request quoted by :func:`sync.wire.quote`; a card shows only as the first
6 hex digits of its 卡识别码 (the city code) followed by ``…``.

The service binds to 127.0.0.1 by default and refuses a non-loopback address unless
``allow_remote`` is given: its keys are software keys.

Run it with ``sscard hsm-service --keys roots.toml``.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import socketserver
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from apdu.errors import ProtocolError, SscardError
from apdu.national import NationalCode
from apdu.sam import SecurityModuleError, hsm_step2_key, parse_hsm_step1
from drivers.keyfile import RootKeys
from drivers.soft_sam import compute_auth
from sync.wire import MalformedBody, ascii_uint, load_json, quote

log = logging.getLogger(__name__)

CARD_AUTH_PATH = "/v1/hsm/card-auth"
HEALTH_PATH = "/v1/health"
ROUTES = {CARD_AUTH_PATH: "POST", HEALTH_PATH: "GET"}
MAX_BODY = 16 * 1024
MAX_TERMINAL_ID = 64
MAX_LENGTH_DIGITS = 9  # a Content-Length with more digits is over any limit anyway
PROBLEM_TYPE = "application/problem+json"
FRAMES_LIMIT = 2000  # characters of the frames of an unexpected failure in its log line
IDLE_TIMEOUT_S = 30.0  # a keep-alive connection idle this long is closed
MASKED_CARD_HEX = 6  # the city code part of 卡识别码 (spec §4.3 field 1)
NO_CARD = "-"
BEARER = "Bearer "
REQUEST_FIELDS = {"step1", "terminal"}


class HsmServiceError(SscardError):
    """The HSM service cannot be configured or started as asked."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer of the service.

    :param status: the HTTP status
    :param body: the JSON body
    :param card: the masked card id for the log line
    :param terminal: the terminal id the client gave, for the log line
    :param headers: extra response headers
    """

    status: HTTPStatus
    body: dict[str, Any]
    card: str = NO_CARD
    terminal: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def mask_card_id(card_id: bytes) -> str:
    """Mask a 卡识别码 for logs: its first 6 hex digits, then ``…``.

    :param card_id: the card identification code
    """
    return card_id.hex().upper()[:MASKED_CARD_HEX] + "…"


def _error(status: HTTPStatus, message: str, code: int | None = None, **kw: Any) -> Reply:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": status.phrase,
        "status": int(status),
        "detail": message,
        "error": message,
    }
    if code is not None:
        body["code"] = int(code)
    return Reply(status, body, **kw)


def _bad_request(message: str, **kw: Any) -> Reply:
    return _error(HTTPStatus.BAD_REQUEST, message, NationalCode.ILLEGAL_INPUT, **kw)


def card_auth(keys: RootKeys, payload: bytes) -> Reply:
    """Answer one card-auth request body: Step1 string in, Step2 pKey out.

    :param keys: the root keys
    :param payload: the request body
    :returns: the reply; errors are replies too (400, 422), never exceptions
    """
    try:
        document = load_json(payload, max_bytes=MAX_BODY)
    except MalformedBody as exc:
        if exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
        return _bad_request(str(exc))
    if not isinstance(document, dict):
        return _bad_request("the body must be a JSON object")
    unknown = sorted(set(document) - REQUEST_FIELDS)
    if unknown:
        return _bad_request(f"unknown fields {unknown}; expected step1 and optionally terminal")
    step1 = document.get("step1")
    if not isinstance(step1, str):
        return _bad_request("step1 must be a string: the iReadCardBas_HSM_Step1 output")
    terminal = document.get("terminal", "")
    if not isinstance(terminal, str) or len(terminal) > MAX_TERMINAL_ID:
        return _bad_request(f"terminal must be a string of at most {MAX_TERMINAL_ID} characters")
    try:
        request = parse_hsm_step1(step1)
    except ProtocolError as exc:
        return _bad_request(f"bad step1: {exc}", terminal=terminal)
    card = mask_card_id(request.card.card_id)
    try:
        response = compute_auth(keys, request)
    except SecurityModuleError as exc:
        return _error(
            HTTPStatus.UNPROCESSABLE_ENTITY, str(exc), exc.code, card=card, terminal=terminal
        )
    except ProtocolError as exc:
        return _bad_request(f"bad step1: {exc}", card=card, terminal=terminal)
    return Reply(HTTPStatus.OK, {"pkey": hsm_step2_key(request, response)}, card, terminal)


def check_bind_address(host: str, *, allow_remote: bool) -> None:
    """Refuse an address other hosts can reach, unless told to allow it.

    :param host: the address to bind
    :param allow_remote: bind anywhere
    :raises HsmServiceError: a non-loopback address without ``allow_remote``
    """
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise HsmServiceError(
            f"refusing to bind the HSM service to {host!r}: it computes with software keys, so "
            "it binds to a loopback address (127.0.0.1, ::1) unless allow_remote is given"
        )


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that can close its keep-alive connections when stopped."""

    daemon_threads = False
    block_on_close = True  # server_close() joins the request threads

    def __init__(self, address: tuple[str, int], service: HsmService) -> None:
        self.service = service
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        try:
            if ipaddress.ip_address(address[0]).version == 6:
                self.address_family = socket.AF_INET6
        except ValueError:
            pass  # a host name: IPv4
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the FQDN of the address; we have no use for it
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every request thread blocked on an idle keep-alive connection."""
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):  # already gone
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("event=hsm_connection_error client=%s", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Thin: route, check the token, call :func:`card_auth`, write JSON, log one line."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "sscard-hsm/1"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Send the stdlib's own messages (bad request lines, timeouts) to DEBUG, not stderr.

        :meth:`_dispatch` logs the one line per request.
        """
        log.debug(
            "event=hsm_http client=%s message=%s", self.client_address[0], quote(format % args)
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer what the stdlib refuses before :meth:`_dispatch` runs as a problem document
        (not its HTML page): an unknown method is routed like the others (404 or 405), a
        request line or header off HTTP/1.1 is 400, one too long 414 or 431.

        :param code: the status the stdlib chose
        :param message: its short text
        :param explain: its longer text (not sent)
        """
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command and self.path:
            self._dispatch()  # a method with no do_ handler
            return
        status = HTTPStatus(code)
        self.close_connection = True
        reply = (
            _bad_request(message or status.phrase)
            if status == 400
            else _error(status, message or status.phrase)
        )
        log.info(
            "event=hsm_request client=%s method=%s status=%d detail=%s",
            self.client_address[0],
            quote(self.command or "-"),
            status,
            quote(message or ""),
        )
        if self.request_version == self.default_request_version:
            self.request_version = "HTTP/1.1"  # the version was not read: answer with headers
        self._write(reply)

    def _dispatch(self) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        try:
            reply = self._route(path)
        except Exception as exc:  # the request fails, the service carries on
            # the type and the last frames, quoted on the line: an exception's message may
            # hold request text (and a traceback spans lines)
            frames = "".join(traceback.format_tb(exc.__traceback__)[-3:]).replace("\n", " | ")
            log.error(
                "event=hsm_request_failed method=%s path=%s error=%s frames=%s",
                quote(self.command),
                quote(path),
                type(exc).__name__,
                quote(frames, FRAMES_LIMIT),
            )
            self.close_connection = True
            reply = _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        log.info(
            "event=hsm_request client=%s method=%s path=%s status=%d card=%s terminal=%s ms=%.1f",
            self.client_address[0],
            quote(self.command),
            quote(path),
            reply.status,
            reply.card,
            quote(reply.terminal),
            (time.monotonic() - started) * 1000,
        )
        self._write(reply)

    # every method goes to the one router, which refuses what a route does not serve
    # (http.server names the handlers do_<METHOD>)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815

    def _route(self, path: str) -> Reply:
        method = ROUTES.get(path)
        if method is None or self.command != method:
            self._discard_body()
            if method is None:
                return _error(HTTPStatus.NOT_FOUND, f"no such path; try POST {CARD_AUTH_PATH}")
            return _error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{path} takes {method}",
                headers={"Allow": method},
            )
        if path == HEALTH_PATH:
            return Reply(HTTPStatus.OK, {"status": "ok"})
        length = self._content_length()
        if length is None:
            self.close_connection = True
            return _bad_request("a Content-Length header of ASCII digits is required")
        if length > MAX_BODY:
            self.close_connection = True
            return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body exceeds {MAX_BODY} B")
        body = self.rfile.read(length)
        if not self.server.service.authorized(self.headers.get("Authorization")):
            return _error(
                HTTPStatus.UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="sscard-hsm"'},
            )
        return card_auth(self.server.service.keys, body)

    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        value = value.strip()
        if len(value) > MAX_LENGTH_DIGITS and value.isascii() and value.isdigit():
            return MAX_BODY + 1  # more digits than any length we read: over the limit
        return ascii_uint(value, MAX_LENGTH_DIGITS)

    def _discard_body(self) -> None:
        length = self._content_length()
        if length is None or length > MAX_BODY:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _write(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header(
            "Content-Type", PROBLEM_TYPE if reply.status >= 400 else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class HsmService:
    """The reference HSM service on a threading HTTP server.

    :param keys: the root keys it computes with
    :param host: the address to bind, loopback unless ``allow_remote``
    :param port: the port, 0 for any free one
    :param token: the bearer token clients must send, or ``None`` for none
    :param allow_remote: allow a non-loopback ``host``
    :raises HsmServiceError: a non-loopback host without ``allow_remote``, or an empty token
    """

    def __init__(
        self,
        keys: RootKeys,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        allow_remote: bool = False,
    ) -> None:
        check_bind_address(host, allow_remote=allow_remote)
        if token is not None and not token:
            raise HsmServiceError("the bearer token is empty; give a token or None")
        self.keys = keys
        self.host = host
        self.port = port
        self._token = token.encode("utf-8") if token is not None else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL of the bound server, e.g. ``http://127.0.0.1:40123``.

        :raises HsmServiceError: the service is not bound
        """
        if self._server is None:
            raise HsmServiceError("the HSM service is not started")
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the configured token.

        :param header: the header value, or ``None``
        """
        if self._token is None:
            return True
        if header is None or not header.startswith(BEARER):
            return False
        return hmac.compare_digest(header[len(BEARER) :].strip().encode("utf-8"), self._token)

    def _bind(self) -> _Server:
        if self._server is not None:
            raise HsmServiceError("the HSM service is already started")
        try:
            self._server = _Server((self.host, self.port), self)
        except OSError as exc:
            raise HsmServiceError(
                f"cannot bind the HSM service to {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        log.info(
            "event=hsm_service_start url=%s token=%s key_file=%s test_keys=%s",
            self.url,
            "required" if self._token else "none",
            self.keys.source or "(in memory)",
            "yes" if self.keys.test_keys else "no",
        )
        return self._server

    def start(self) -> str:
        """Bind and serve in a background thread.

        :returns: the bound URL
        :raises HsmServiceError: already started, or the address cannot be bound
        """
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever, name="hsm-service", kwargs={"poll_interval": 0.1}
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Bind and serve in this thread until :meth:`stop` or Ctrl-C.

        :raises HsmServiceError: already started, or the address cannot be bound
        """
        server = self._bind()
        try:
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            log.info("event=hsm_service_interrupted")
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving, close the connections and join the threads; a no-op when stopped."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        if thread is None:
            return  # serve_forever() returns in its own thread and closes there
        thread.join()
        self._close()

    def _close(self) -> None:
        server = self._server
        if server is None:
            return
        server.close_connections()
        server.server_close()  # joins the request threads
        self._server = None
        self._thread = None
        log.info("event=hsm_service_stop")

    def __enter__(self) -> HsmService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
