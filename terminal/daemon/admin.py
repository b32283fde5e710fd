"""The daemon's admin socket: operator commands answered by the process that owns the store.

The daemon owns the offline store (one owner at a time, ``offline_store.db``); an operator
command run meanwhile (``sscard deny import``, ``sscard journal tail``, …) finds it in use and
asks the daemon here instead (:func:`ask`), and prints the answer exactly as it would have
printed its own: both sides format through :mod:`terminal.operator`.

Protocol: a Unix stream socket, mode 0600, at ``[daemon] admin_socket`` (default ``admin.sock``
next to the store). One request per connection: the client sends one JSON object and a newline,
``{"request": NAME, "params": {…}}``; the daemon answers one JSON object and closes::

    request          params                                          answer
    status           json: bool                                      the status (terminal.operator)
    sync-once        -                                               the sync's lines, exit 0/1/2
    deny-import      file, public_key | null, unsigned_ok: bool      as ``sscard deny import``
    deny-status      scenarios: [name or file] | null                as ``sscard deny status``
    journal-tail     n: int                                          as ``sscard journal tail``
    journal-verify   -                                               as ``sscard journal verify``
    catalogue-load   file                                            as ``sscard catalogue load``
    catalogue-list   scenarios: [name or file] | null                as ``sscard catalogue list``

    answer: {"out": [lines], "err": [lines], "exit_status": int}

Files a request names are read by the daemon, so the client sends absolute paths. Each
connection's peer is checked with ``SO_PEERCRED``: only the daemon's own user and root are
answered (the socket's mode already keeps everyone else from connecting). Every use of the store
holds ``store_lock``, the lock the daemon's other threads hold around theirs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError
from config.errors import ConfigError
from terminal import operator
from terminal.cli.edge import os_error_line
from terminal.compose import scenario_profiles
from terminal.operator import Answer
from terminal.outcomes import error_line

if TYPE_CHECKING:
    from config.settings import Settings
    from offline_store import Store

log = logging.getLogger(__name__)

SOCKET_MODE = 0o600
MAX_REQUEST_BYTES = 64 * 1024  # a request names a few files: far below this
READ_TIMEOUT_S = 5.0  # a client that connects and says nothing is dropped after this
#: sun_path holds 108 bytes with its NUL; a longer path is reached through its folder's fd
SUN_PATH_MAX = 107
REQUESTS = (
    "status",
    "sync-once",
    "deny-import",
    "deny-status",
    "journal-tail",
    "journal-verify",
    "catalogue-load",
    "catalogue-list",
)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

StatusFn = Callable[[], Mapping[str, Any]]
SyncFn = Callable[[], Mapping[str, Any]]


class DaemonUnavailable(SscardError):
    """No daemon answers on the admin socket (no socket file, or nobody listening)."""


class AdminServer:
    """Serve the admin socket from a thread of the daemon.

    :param settings: the terminal settings (the socket file, their ``admin_socket_path``; the
        scenarios' profiles; the clock)
    :param store: the daemon's open store
    :param store_lock: held around every use of ``store``
    :param status: the daemon's status, a JSON-ready mapping
    :param sync_now: one sync cycle; returns :func:`terminal.operator.sync_answer`'s
        ``to_json()`` (any other mapping is shown as ``key: value`` lines); it takes
        ``store_lock`` itself, so the server does not hold it around the call
    :param allowed_uids: the peers answered besides root (default: this process's user)
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        store_lock: threading.Lock,
        status: StatusFn,
        sync_now: SyncFn,
        allowed_uids: frozenset[int] | None = None,
    ) -> None:
        self.path = settings.admin_socket_path
        self.settings = settings
        self.store = store
        self.store_lock = store_lock
        self.status = status
        self.sync_now = sync_now
        self.allowed_uids = (
            allowed_uids if allowed_uids is not None else frozenset({os.getuid()})
        ) | {0}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the socket (mode 0600) and serve it from a thread.

        :raises SscardError: another daemon answers on the path, or the socket cannot be made
        """
        _remove_stale(self.path)
        server = _Server(self)
        try:
            with _sun_path(self.path) as address:
                server.server_bind_to(address)
            os.chmod(self.path, SOCKET_MODE)  # SO_PEERCRED guards the instant before this
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise SscardError(f"cannot serve the admin socket {self.path}: {exc.strerror}") from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="admin-socket"
        )
        self._thread.start()
        log.info("event=admin_socket_listening path=%s", self.path)

    def close(self) -> None:
        """Stop serving, wait for the requests in flight, remove the socket; idempotent.

        :raises: nothing
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            self.path.unlink()
        log.info("event=admin_socket_closed path=%s", self.path)

    def __enter__(self) -> AdminServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ----------------------------------------------------------------------------

    def answer(self, request: object) -> Answer:
        """The answer to one request document.

        :param request: the parsed request
        :raises: nothing (a failure is an answer with exit status 2)
        """
        if not isinstance(request, dict) or not isinstance(request.get("request"), str):
            return _failure('a request is {"request": NAME, "params": {…}}')
        name, params = request["request"], request.get("params") or {}
        if name not in REQUESTS:
            return _failure(f"unknown request {name!r}; known: {', '.join(REQUESTS)}")
        if not isinstance(params, dict):
            return _failure("params must be a JSON object")
        try:
            return self._dispatch(name, params)
        except (SscardError, ConfigError) as exc:
            return _failure_line(error_line(exc))
        except OSError as exc:
            return _failure_line(os_error_line(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return _failure(f"malformed {name} request: {type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in the daemon: the operator gets a line, the log the trace
            log.error("event=admin_request_failed request=%s", name, exc_info=True)
            return _failure(f"internal error in the daemon: {type(exc).__name__} (see its log)")

    def _dispatch(self, name: str, params: dict[str, Any]) -> Answer:
        now = dt.datetime.now().astimezone()
        if name == "status":
            return operator.status_answer(self.status(), as_json=bool(params.get("json")))
        if name == "sync-once":
            done = self.sync_now()
            if {"out", "err", "exit_status"} <= set(done):
                return Answer.from_json(dict(done))
            return operator.status_answer(done)
        if name in ("deny-status", "catalogue-list"):
            profiles = scenario_profiles(_names(params.get("scenarios")))
            with self.store_lock:
                if name == "deny-status":
                    return operator.deny_status(self.store, profiles, now)
                return operator.catalogue_list(self.store, profiles, now)
        with self.store_lock:
            if name == "deny-import":
                return operator.deny_import(
                    self.store,
                    _text(params["file"]),
                    public_key=_optional_text(params.get("public_key")),
                    unsigned_ok=params.get("unsigned_ok") is True,
                    production=self.settings.production,
                )
            if name == "journal-tail":
                count = params["n"]
                if not isinstance(count, int) or isinstance(count, bool):
                    raise TypeError("n must be an integer")
                return operator.journal_tail(self.store, count)
            if name == "journal-verify":
                return operator.journal_verify(self.store)
            return operator.catalogue_load(self.store, _text(params["file"]))

    def handle(self, connection: socket.socket) -> None:
        """Answer one connection: check the peer, read the request, send the answer.

        :param connection: the accepted socket
        :raises: nothing
        """
        pid, uid, _ = _PEERCRED.unpack(
            connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        connection.settimeout(READ_TIMEOUT_S)
        try:
            # read before answering even a refused peer: closing on unread bytes resets the
            # connection, and the peer would never see why
            raw = _read_request(connection)
        except (OSError, ValueError) as exc:
            _send(connection, _failure(f"unreadable request: {exc}"))
            return
        if uid not in self.allowed_uids:
            log.warning("event=admin_peer_refused pid=%d uid=%d", pid, uid)
            _send(connection, _failure(f"uid {uid} may not use the admin socket"))
            return
        try:
            request = json.loads(raw)
        except ValueError as exc:
            _send(connection, _failure(f"unreadable request: {exc}"))
            return
        name = request.get("request") if isinstance(request, dict) else None
        log.info("event=admin_request request=%s pid=%d uid=%d", name, pid, uid)
        _send(connection, self.answer(request))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, admin: AdminServer) -> None:
        self.admin = admin
        super().__init__(str(admin.path), _Handler, bind_and_activate=False)

    def server_bind_to(self, address: str) -> None:
        self.socket.bind(address)
        self.server_address = str(self.admin.path)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.admin.handle(self.request)


def ask(path: str | Path, request: str, params: Mapping[str, Any], *, timeout_s: float) -> Answer:
    """Send one request to the daemon's admin socket and wait for its answer.

    :param path: the socket
    :param request: one of :data:`REQUESTS`
    :param params: its parameters (absolute file paths)
    :param timeout_s: how long to wait for the answer
    :raises DaemonUnavailable: no socket there, or nobody listening on it
    :raises SscardError: the daemon did not answer in time, or answered nonsense
    """
    path = Path(path)
    body = json.dumps({"request": request, "params": dict(params)}).encode("utf-8") + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        with _socket_errors(
            late=f"the daemon on {path} did not accept within {timeout_s:g} s",
            broken=f"cannot reach the daemon on {path}",
        ):
            try:
                with _sun_path(path) as address:
                    client.connect(address)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonUnavailable(f"no daemon answers on {path}") from exc
        with _socket_errors(
            late=f"the daemon on {path} did not answer {request} within {timeout_s:g} s",
            broken=f"the daemon on {path} broke off",
        ):
            client.sendall(body)
            client.shutdown(socket.SHUT_WR)
            raw = _read_all(client)
    try:
        return Answer.from_json(json.loads(raw))
    except ValueError as exc:
        raise SscardError(f"the daemon on {path} answered no JSON") from exc


@contextlib.contextmanager
def _socket_errors(*, late: str, broken: str) -> Iterator[None]:
    """Turn a socket's timeout into ``SscardError(late)`` and any other ``OSError`` into
    ``SscardError(f"{broken}: {strerror}")``, chained.

    :raises SscardError: as said
    """
    try:
        yield
    except TimeoutError as exc:
        raise SscardError(late) from exc
    except OSError as exc:
        raise SscardError(f"{broken}: {exc.strerror}") from exc


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"request over {MAX_REQUEST_BYTES} bytes")
    return data


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _send(connection: socket.socket, answer: Answer) -> None:
    with contextlib.suppress(OSError):  # a client that went away misses its answer
        connection.sendall(json.dumps(answer.to_json(), ensure_ascii=False).encode("utf-8"))


def _remove_stale(path: Path) -> None:
    """Remove a socket file nobody listens on (a daemon that was killed); refuse when another
    daemon answers there, or when the path is something else than a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SscardError(f"{path} exists and is no socket: remove it or set [daemon] admin_socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            with _sun_path(path) as address:
                probe.connect(address)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise SscardError(f"cannot check the admin socket {path}: {exc.strerror}") from exc
        else:
            raise SscardError(f"another daemon answers on the admin socket {path}")
    path.unlink(missing_ok=True)
    log.info("event=admin_socket_stale_removed path=%s", path)


@contextlib.contextmanager
def _sun_path(path: Path) -> Iterator[str]:
    """An address for ``bind``/``connect``: the path itself, or, when it is longer than a
    socket address holds, the same file reached through ``/proc/self/fd`` of its folder."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _names(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("scenarios must be a list of names or files")
    return list(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("a file path must be a non-empty string")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _failure(message: str) -> Answer:
    return _failure_line(f"sscard: {message}")


def _failure_line(line: str) -> Answer:
    return Answer((), (" ".join(line.split()),), operator.EXIT_FAILURE)
