"""The local HTTP + WebSocket API (issue 14): FastAPI over a :class:`HostService`.

Security: the ``Host`` header must name the bound address (no DNS rebinding); a request with an
``Origin`` outside the allow-list is refused (403) and CORS is answered only for allowed origins;
a bearer token is required whenever one is configured, and always on a non-loopback bind.
Errors carry the national code and a one-line reason: ``{"code": -11, "reason": "…"}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from apdu.errors import SscardError
from platform_server.server import is_loopback
from terminal.host.payments_api import payments_router
from terminal.host.pin_limit import PinLimiter
from terminal.host.service import HostService
from terminal.outcomes import classify

MAX_WAIT_S = 60.0
CONSOLE = Path(__file__).parent / "console"


class CheckinRequest(BaseModel):
    """``POST /v1/hotel/checkin``: the room the desk assigns; the holder presents the card."""

    room: str = Field(min_length=1, max_length=16)
    reader: str | None = None
    wait: float = 0.0


class PinRequest(BaseModel):
    """``POST /v1/card/pin/verify``: the PIN travels in the body, never in the URL."""

    pin: str = Field(repr=False)
    reader: str | None = None
    wait: float = 0.0


class RegisterRequest(BaseModel):
    """``POST /v1/hospital/register``: the holder's PIN (typed on the console or the HIS page),
    in the body; the holder presents the card."""

    pin: str = Field(repr=False)
    reader: str | None = None
    wait: float = 0.0


@dataclass(slots=True)
class HostConfig:
    """How the API is exposed.

    :param host: the bound address
    :param port: the bound port
    :param origins: the browser origins allowed to call the API
    :param token: the bearer token, or empty (allowed only on a loopback bind)
    """

    host: str = "127.0.0.1"
    port: int = 8321
    origins: list[str] = field(default_factory=list)
    token: str = ""
    pin_attempts_per_minute: int = 5
    tls: bool = False

    def check(self) -> None:
        """:raises ValueError: on a non-loopback bind without a token."""
        if not is_loopback(self.host) and not self.token:
            raise ValueError(f"a bearer token is required to bind {self.host}")


def _error(status: int, code: int, reason: str) -> JSONResponse:
    return JSONResponse({"code": code, "reason": reason}, status_code=status)


def _wait(wait: float) -> float:
    return min(max(wait, 0.0), MAX_WAIT_S)


def _client(request: Request) -> str:
    """Who is reading, for the audit: the browser origin, else the peer address."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin
    peer = request.client.host if request.client else "unknown"
    return f"local {peer}"


def create_app(service: HostService, config: HostConfig) -> FastAPI:
    """The API app serving ``service``.

    :param service: the running terminal
    :param config: binding, origins and token
    """
    config.check()
    app = FastAPI(title="sscard host API", version="1")
    hosts = {f"{config.host}:{config.port}"}
    if is_loopback(config.host):
        hosts |= {f"{h}:{config.port}" for h in ("127.0.0.1", "localhost", "[::1]")}
    # the console is served by the API itself: its own origins are allowed
    origins = set(config.origins) | {f"http{'s' if config.tls else ''}://{h}" for h in hosts}

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, -1, f"bad request: {where}: {first.get('msg', 'invalid')}")

    def _cors(response: Response, origin: str | None) -> Response:
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if request.headers.get("host", "") not in hosts:
            return _error(421, -1, "Host header does not name this terminal")
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return _error(403, -1, "origin not allowed")
        if request.method == "OPTIONS" and origin is not None:
            response = Response(status_code=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            return _cors(response, origin)
        if config.token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
                return _error(401, -1, "bearer token required")
        return _cors(await call_next(request), origin)

    @app.get("/v1/readers")
    def readers() -> Any:
        return {"readers": service.readers()}

    @app.get("/v1/card")
    def card(request: Request, reader: str | None = None, wait: float = Query(0.0)) -> Any:
        out = service.read_card(reader, _wait(wait), _client(request))
        return JSONResponse(out, status_code=200 if out["ok"] else 422)

    @app.get("/v1/card/ireadcardbas")
    def ireadcardbas(request: Request, reader: str | None = None, wait: float = Query(0.0)) -> Any:
        line, code = service.ireadcardbas(reader, _wait(wait), _client(request))
        return JSONResponse({"code": code, "result": line}, status_code=200 if code == 0 else 422)

    limiter = PinLimiter(config.pin_attempts_per_minute)  # one for every route sending a PIN
    _pin_route(app, service, limiter)
    app.include_router(payments_router(service, _wait, _client, limiter))
    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")

    @app.post("/v1/hotel/checkin")
    def hotel_checkin(request: Request, body: CheckinRequest) -> Any:
        try:
            out = service.hotel_checkin(body.room, body.reader, _wait(body.wait), _client(request))
        except SscardError as exc:
            failure = classify(exc)
            return _error(422, failure.code, failure.reason)
        return JSONResponse(out, status_code=200)

    @app.get("/healthz")
    def healthz() -> Any:
        out = service.healthz()
        return JSONResponse(out, status_code=200 if out["ok"] else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return service.metrics()

    _event_routes(app, service, config, hosts, origins)
    return app


def _event_routes(
    app: FastAPI, service: HostService, config: HostConfig, hosts: set[str], origins: set[str]
) -> None:
    """``/v1/events`` (server-sent events) and ``/v1/ws`` (WebSocket): the same event stream."""

    @app.get("/v1/events")
    def events() -> StreamingResponse:
        q = service.events.subscribe()

        def stream() -> Iterator[str]:
            try:
                yield ": subscribed\n\n"
                while True:
                    try:
                        event = q.get(timeout=15)
                    except queue.Empty:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:  # the server stops
                        return
                    yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            finally:
                service.events.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.websocket("/v1/ws")
    async def ws(websocket: WebSocket) -> None:
        host = websocket.headers.get("host", "")
        origin = websocket.headers.get("origin")
        token_ok = not config.token or hmac.compare_digest(
            websocket.query_params.get("token", "").encode(), config.token.encode()
        )
        if host not in hosts or (origin is not None and origin not in origins) or not token_ok:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        q = service.events.subscribe()
        try:
            await websocket.send_json({"type": "subscribed"})
            while True:
                try:
                    event = await asyncio.to_thread(q.get, True, 1.0)
                except queue.Empty:
                    continue
                if event is None:  # the server stops
                    await websocket.close(code=1001)
                    break
                await websocket.send_json(event)
        except WebSocketDisconnect:
            pass
        finally:
            service.events.unsubscribe(q)


def _pin_route(app: FastAPI, service: HostService, limiter: PinLimiter) -> None:
    """``POST /v1/card/pin/verify`` and ``POST /v1/hospital/register``, which send the PIN:
    counted by ``limiter`` (shared with ``POST /v1/hospital/settle``)."""

    @app.post("/v1/card/pin/verify")
    def pin_verify(request: Request, body: PinRequest) -> Any:
        if not limiter.allow(_client(request)):
            return limiter.refusal()
        out = service.verify_pin(body.reader, body.pin, _wait(body.wait))
        return JSONResponse(out, status_code=200 if out["code"] == 0 else 422)

    @app.post("/v1/hospital/register")
    def hospital_register(request: Request, body: RegisterRequest) -> Any:
        client = _client(request)
        if not limiter.allow(client):  # a registration sends the PIN: the same limit
            return limiter.refusal()
        try:
            out = service.hospital_register(body.pin, body.reader, _wait(body.wait), client)
        except SscardError as exc:
            failure = classify(exc)
            return _error(422, failure.code, failure.reason)
        return JSONResponse(out, status_code=200)
