"""The reference platform's HTTP API (docs/sync.md, sync/openapi.yaml), on FastAPI.

Each route reads its body (bounded), checks the request signature (:mod:`sync.auth`), parses
strictly, makes one :class:`~platform_server.service.Platform` call and formats the answer.
Every error is a problem document (:mod:`platform_server.problems`). Bodies are read whole
before anything else, so the signature covers exactly the bytes that are parsed.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from platform_server import batch, cards, deferred, journal, operator_api
from platform_server.ecard import DecodeRefused, DecodeRequest
from platform_server.errors import Busy, PlatformError
from platform_server.keys import PlatformKeys
from platform_server.problems import ProblemError, problem, status_of
from platform_server.service import Clock, Platform
from platform_server.terminals import HeartbeatReport
from sync.auth import AuthError, NonceLimit
from sync.wire import MalformedBody, ascii_uint, load_json, quote

__all__ = ["MAX_BODY_BYTES", "MAX_CONCURRENT_BATCHES", "create_app"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # every body but a journal batch
MAX_CONCURRENT_BATCHES = 4  # more batches at once are answered 503 + Retry-After
DRAIN_FACTOR = 4  # an oversized body is read and dropped up to this many times the limit
RETRY_AFTER_S = 1
INT64_MAX = 2**63 - 1
INT64_DIGITS = 19
JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"
CBOR_TYPE = "application/cbor"
H_DENY_SIGNATURE = "X-Sscard-Deny-Signature"
H_DENY_VERSION = "X-Sscard-Deny-Version"
H_DENY_KIND = "X-Sscard-Deny-Kind"
H_TRUST_VERSION = "X-Sscard-Trust-Version"
TERMINAL_SHOWN = 40  # characters of the terminal header in a log line (an id has at most 32)
FRAMES_LIMIT = 2000
NO_STORE = {"Cache-Control": "no-store"}  # answers that hold keys or a person's status
CODES_BY_STATUS = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def _version() -> str:
    try:
        return importlib.metadata.version("sscard-terminal")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


VERSION = _version()


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A request as it was signed.

    :param method: the HTTP method
    :param path: the path and query exactly as received
    :param headers: the headers
    :param body: the body bytes
    """

    method: str
    path: str
    headers: Any
    body: bytes


@dataclass(frozen=True, slots=True)
class Call:
    """A request to a route whose signature checked (:func:`sync.auth.verify_request`).

    :param platform: the platform serving it
    :param raw: the request as it was signed
    :param terminal_id: the terminal that signed it
    :param key: that terminal's public key (the secrets are encrypted to it)
    """

    platform: Platform
    raw: RawRequest
    terminal_id: str
    key: bytes

    def json(self) -> Any:
        """The body as JSON, at most :data:`MAX_BODY_BYTES`.

        :raises MalformedBody: it is not JSON, or too deep
        """
        return load_json(self.raw.body, max_bytes=MAX_BODY_BYTES)


async def _small_body(request: Request) -> RawRequest:
    return await _raw(request, MAX_BODY_BYTES)


async def _batch_body(request: Request) -> AsyncIterator[RawRequest]:
    slots: threading.BoundedSemaphore = request.app.state.batch_slots
    if not slots.acquire(blocking=False):
        raise ProblemError(
            503,
            "busy",
            f"more than {MAX_CONCURRENT_BATCHES} batches at once; retry",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        yield await _raw(request, batch.MAX_BATCH_BYTES)
    finally:
        slots.release()


SmallBody = Annotated[RawRequest, Depends(_small_body)]
BatchBody = Annotated[RawRequest, Depends(_batch_body)]


def _signed(request: Request, raw: SmallBody) -> Call:
    """The signature checked first (401 before any other refusal); the query is the route's."""
    platform: Platform = request.app.state.platform
    terminal_id, _, key = platform.authenticate(raw.method, raw.path, raw.headers, raw.body)
    return Call(platform, raw, terminal_id, key)


def _plain(call: Annotated[Call, Depends(_signed)]) -> Call:
    """Signed, without a query."""
    _no_query(call.raw)
    return call


def _json_post(call: Annotated[Call, Depends(_plain)]) -> Call:
    """Signed, without a query, with a JSON body."""
    _json_body(call.raw)
    return call


def _since(call: Annotated[Call, Depends(_signed)]) -> int | None:
    """``?since=``: the version of a list the terminal holds, ``None`` without one (after the
    signature: a request that is not signed is answered 401 whatever its query)."""
    return _uint_query(call.raw, "since")


def _uint_query(raw: RawRequest, name: str) -> int | None:
    """The route's one query parameter ``name``, a non-negative int64; ``None`` without it."""
    value = _query(raw, {name}).get(name)
    if value is None:
        return None
    number = ascii_uint(value, INT64_DIGITS)
    if number is None or number > INT64_MAX:
        raise ProblemError(400, "invalid_query", f"{name} must be a non-negative integer")
    return number


def _batch_post(request: Request, raw: BatchBody) -> Call:
    """A journal batch: as :func:`_json_post`, with the batch's larger body limit."""
    return _json_post(_plain(_signed(request, raw)))


Signed = Annotated[Call, Depends(_signed)]
Since = Annotated[int | None, Depends(_since)]
Plain = Annotated[Call, Depends(_plain)]
JsonPost = Annotated[Call, Depends(_json_post)]
BatchPost = Annotated[Call, Depends(_batch_post)]
router = APIRouter()


def create_app(
    db_url: str,
    keys: PlatformKeys | str | Path,
    *,
    clock: Clock = time.time,
    platform: Platform | None = None,
) -> FastAPI:
    """The platform's ASGI application.

    :param db_url: the database (``sqlite:///…``, ``postgresql+psycopg://…`` or a file path)
    :param keys: the keys folder, or loaded keys
    :param clock: wall clock, seconds since 1970 (tests move it)
    :param platform: an open platform to serve instead (``db_url`` and ``keys`` are then
        ignored); it is closed with the application
    :raises PlatformConfigError: the database or the keys cannot be used
    """
    served = platform or Platform.open(db_url, keys, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        served.close()

    app = FastAPI(
        title="sscard reference platform",
        version=VERSION,
        lifespan=lifespan,
        openapi_url=None,  # the contract is the hand-written sync/openapi.yaml
        docs_url=None,
        redoc_url=None,
    )
    app.state.platform = served
    app.state.batch_slots = threading.BoundedSemaphore(MAX_CONCURRENT_BATCHES)
    app.add_middleware(_AccessLog)
    _handlers(app)
    app.include_router(router)
    app.include_router(operator_api.router)
    return app


@router.get("/v1/health")
def health() -> JSONResponse:
    """Unsigned: the platform is up, and its software version.

    :raises: nothing
    """
    return JSONResponse({"ok": True, "version": VERSION})


@router.get("/v1/time")
def server_time(call: Plain) -> JSONResponse:
    """The platform's clock.

    :param call: the signed request
    :raises: nothing beyond the signature and the query
    """
    return JSONResponse({"server_time": call.platform.clock()})


@router.post("/v1/journal/batch")
def journal_batch(call: BatchPost) -> JSONResponse:
    """Store a batch of journal rows; the ack cursor and the rejections.

    :param call: the signed request, a JSON batch of at most 8 MiB
    :raises InvalidInput: 400, the batch breaks the row format
    :raises NotFound: 404, an unregistered terminal
    :raises Busy: 503, the database stayed locked
    """
    rows = batch.parse_batch(call.raw.body)
    return JSONResponse(call.platform.upload(call.terminal_id, rows).to_json())


@router.get("/v1/journal")
def journal_rows(call: Signed) -> JSONResponse:
    """The signing terminal's own stored rows after ``?after=`` (default 0), at most
    :data:`journal.MAX_PAGE_ROWS`, as uploaded: what it re-fetches to recover a damaged
    journal (docs/sync.md §5.8).

    :param call: the signed request
    :raises NotFound: 404, an unregistered terminal
    """
    rows = call.platform.journal_rows(call.terminal_id, _uint_query(call.raw, "after") or 0)
    return JSONResponse({"rows": rows, "more": len(rows) == journal.MAX_PAGE_ROWS})


@router.get("/v1/deny")
def deny(call: Signed, since: Since) -> Response:
    """The signed deny-list delta or snapshot from ``since``; 204 when current.

    :param call: the signed request
    :param since: the deny-list version the terminal holds
    :raises PlatformConfigError: 500, no keys folder to sign the list with
    """
    found = call.platform.deny_file(since)
    if found is None:
        return Response(status_code=204, headers={H_DENY_VERSION: str(since)})
    return Response(
        found.body,
        media_type=NDJSON_TYPE,
        headers={
            H_DENY_SIGNATURE: base64.b64encode(found.signature).decode("ascii"),
            H_DENY_VERSION: str(found.version),
            H_DENY_KIND: str(found.kind),
        },
    )


@router.get("/v1/trust")
def trust_list(call: Signed, since: Since) -> Response:
    """The signed trust list, whole; 204 when the terminal's copy is current.

    :param call: the signed request
    :param since: the trust-list version the terminal holds
    :raises PlatformConfigError: 500, no keys folder
    """
    found = call.platform.trust_list()
    headers = {H_TRUST_VERSION: str(found.version)}
    if since == found.version:
        return Response(status_code=204, headers=headers)
    return Response(found.raw, media_type=CBOR_TYPE, headers=headers)


@router.get("/v1/catalogue")
def catalogue(call: Signed) -> Response:
    """The catalogue items covering a region (default: the terminal's); 304 on a matching
    ``If-None-Match``.

    :param call: the signed request, ``?region=`` six digits or nothing
    :raises InvalidInput: 400 ``invalid_region``
    """
    region = _query(call.raw, {"region"}).get("region")
    if region is None:
        region = call.platform.list_terminals(call.terminal_id)[0].region
    found = call.platform.catalogue_for(region)
    headers = {"ETag": found.etag}
    if call.raw.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=JSON_TYPE, headers=headers)


@router.get("/v1/secrets")
def secrets(call: Plain) -> JSONResponse:
    """The pepper, the pinned public keys and the audience keys, encrypted to the terminal.

    :param call: the signed request; its key is the one the envelope is sealed to
    :raises NotFound: 404, an unknown terminal
    """
    envelope = call.platform.secrets_for(call.terminal_id, call.key)
    return JSONResponse(envelope, headers=NO_STORE)


@router.post("/v1/heartbeat")
def heartbeat(call: JsonPost) -> JSONResponse:
    """Record a heartbeat; the platform's clock.

    :param call: the signed request, a JSON heartbeat report
    :raises InvalidInput: 400, the report breaks its format
    :raises Busy: 503, the database stayed locked
    """
    report = HeartbeatReport.parse(call.json())
    return JSONResponse({"server_time": call.platform.heartbeat(call.terminal_id, report)})


@router.post("/v1/ecard/decode")
def ecard_decode(call: JsonPost) -> JSONResponse:
    """Decode an opaque national e-card code; a refusal is ``422 {"ok": false, "reason"}``.

    :param call: the signed request, a JSON decode request
    :raises InvalidInput: 400, the request breaks its format
    """
    request = DecodeRequest.parse(call.json())
    try:
        answer = call.platform.decode(call.terminal_id, request)
    except DecodeRefused as exc:
        return JSONResponse({"ok": False, "reason": str(exc.reason)}, status_code=422)
    return JSONResponse(answer, headers=NO_STORE)


@router.post("/v1/ecard/confirm")
def ecard_confirm(call: JsonPost) -> JSONResponse:
    """Judge a deferred national e-card code as of its scan (docs/sync.md §12).

    :param call: the signed request, a JSON confirmation request
    :raises NotFound: 404 ``not_deferred`` or ``code_mismatch``
    :raises InvalidInput: 400, the request breaks its format
    """
    request = deferred.parse_request(call.json())
    verdict = call.platform.confirm_deferred(call.terminal_id, request)
    return JSONResponse(verdict.to_json(), headers=NO_STORE)


@router.post("/v1/cards/status")
def card_status(call: JsonPost) -> JSONResponse:
    """One card's entry on the current deny list (a terminal whose own list is stale).

    :param call: the signed request, a JSON card hash
    :raises InvalidInput: 400, the card hash is not one
    """
    card_hash = cards.parse_request(call.json())
    found = call.platform.card_status(call.terminal_id, card_hash)
    return JSONResponse(found.to_json(), headers=NO_STORE)


async def _raw(request: Request, limit: int) -> RawRequest:
    """Read the whole body, refusing one over ``limit`` (413) after draining a bounded amount
    of it, so the client reads the answer instead of a reset connection."""
    declared = request.headers.get("content-length")
    length = None if declared is None else ascii_uint(declared, INT64_DIGITS)
    if declared is not None and length is None:
        if declared.isascii() and declared.isdigit():  # more digits than any int64
            raise ProblemError(413, "too_large", f"the body is over {limit} bytes")
        raise ProblemError(400, "bad_request", "Content-Length is not a number")
    if length is not None and length > DRAIN_FACTOR * limit:
        raise ProblemError(413, "too_large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * limit:
            break
    if size > limit:
        raise ProblemError(413, "too_large", f"the body is over {limit} bytes")
    scope = request.scope
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    target = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    return RawRequest(request.method, target, request.headers, b"".join(chunks))


def _json_body(raw: RawRequest) -> None:
    kind = raw.headers.get("content-type")
    if kind is not None and kind.split(";")[0].strip().lower() != JSON_TYPE:
        raise ProblemError(415, "unsupported_media_type", "the body must be application/json")


def _query(raw: RawRequest, allowed: set[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            urlsplit(raw.path).query, keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except UnicodeDecodeError:
        raise ProblemError(400, "invalid_query", "the query is not UTF-8") from None
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - allowed)
    if unknown or len(names) != len(set(names)):
        raise ProblemError(
            400, "invalid_query", f"the query takes each of {sorted(allowed)} at most once"
        )
    return dict(pairs)


def _no_query(raw: RawRequest) -> None:
    _query(raw, set())


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, exc: ProblemError) -> Response:
        return problem(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(AuthError)
    async def on_auth(request: Request, exc: AuthError) -> Response:
        log.info("event=request_refused path=%s code=%s", quote(request.url.path), exc.failure)
        return problem(401, str(exc.failure), str(exc))

    @app.exception_handler(MalformedBody)
    async def on_malformed(request: Request, exc: MalformedBody) -> Response:
        return problem(exc.status, exc.code, str(exc))

    @app.exception_handler(NonceLimit)
    async def on_nonce_limit(request: Request, exc: NonceLimit) -> Response:
        status, code = (503, "busy") if exc.whole else (429, "rate_limited")
        log.warning("event=request_limited path=%s code=%s", quote(request.url.path), code)
        return problem(status, code, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(PlatformError)
    async def on_platform(request: Request, exc: PlatformError) -> Response:
        status = status_of(exc)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Busy) else None
        detail = str(exc) if status < 500 else "the platform could not answer"
        return problem(status, exc.code, detail, headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        code = CODES_BY_STATUS.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return problem(400, "bad_request", "the request does not have its format")


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _AccessLog:
    """One log line per request: method, path, status, time and the terminal header (never a
    body or a query value); every value from the request goes through :func:`sync.wire.quote`,
    so a ``%0a`` in a path or an ESC in a header cannot forge a line or reach a terminal."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            # handled here, not by the server: a driver's message may quote statement
            # parameters, so only the type and the frames are logged
            frames = "".join(traceback.format_tb(exc.__traceback__)[-3:]).replace("\n", " | ")
            log.error(
                "event=internal_error path=%s error=%s frames=%s",
                quote(scope["path"]),
                type(exc).__name__,
                quote(frames, FRAMES_LIMIT),
            )
            if status == 0:
                answer = problem(500, "internal_error", "the platform could not answer")
                await answer(scope, receive, sending)
        finally:
            log.info(
                "event=http_request method=%s path=%s status=%d ms=%.1f terminal=%s",
                quote(scope["method"]),
                quote(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
                _terminal_header(scope),
            )


def _terminal_header(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-sscard-terminal":
            return quote(value, TERMINAL_SHOWN)
    return "-"
