"""The host API's one PIN rate limit (terminal/host/pin_limit.py) shared by every route that sends
the PIN, settlement included, and the ``[payments] tear_window_s`` reaching the settlement of
both host services (``sscard host serve`` and the daemon's worker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request

from terminal.daemon import worker as worker_module
from terminal.daemon.metrics import DaemonMetrics
from terminal.daemon.worker import CARD, DecisionWorker, Job
from terminal.host import service as service_module
from terminal.host.api import HostConfig, PinRequest, RegisterRequest, create_app
from terminal.host.desk import SETTLE, Desk, DeskAction
from terminal.host.payments_api import SettleRequest
from terminal.host.pin_limit import PIN_WINDOW_S, PinLimiter
from terminal.host.service import EventHub, PcscHostService
from terminal.pipeline import ACCEPT, Decision
from terminal.reasons import Reason
from terminal.settlement import Settled

BILL = "95.00|30.00+60.00|20261129101500|"
SETTLED = Settled(Decision(ACCEPT, Reason.OK, seq=3), 0, "01|…")


def test_the_limiter_counts_each_client_within_a_sliding_minute() -> None:
    now = [100.0]
    limiter = PinLimiter(2, clock=lambda: now[0])
    assert limiter.allow("a") and limiter.allow("a")
    assert not limiter.allow("a")  # the third of the minute
    assert limiter.allow("b")  # another client has its own count
    now[0] += PIN_WINDOW_S + 0.1
    assert limiter.allow("a")
    refusal = limiter.refusal()
    assert refusal.status_code == 429 and json.loads(refusal.body)["code"] == -1


class PinService:
    """A host service that counts the PIN routes it is asked for."""

    def __init__(self) -> None:
        self.events = EventHub()
        self.calls: list[str] = []

    def verify_pin(self, reader: str | None, pin: str, wait_s: float) -> dict[str, Any]:
        self.calls.append("verify")
        return {"code": -51, "reason": "wrong PIN", "tries_left": 2}

    def hospital_register(
        self, pin: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        self.calls.append("register")
        return {"outcome": "refuse", "reason": "pin_wrong"}

    def hospital_settle(
        self, pin: str, pay_info: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        self.calls.append("settle")
        return {"code": -51, "result": "", "decision": {}}


def route(app: FastAPI, path: str) -> Callable[..., Any]:
    """The endpoint of ``path``, also inside an included router (FastAPI keeps the router
    included as one entry holding ``original_router``)."""
    routes = list(app.routes)
    while routes:
        found = routes.pop()
        if isinstance(found, APIRoute) and found.path == path:
            return found.endpoint
        routes += getattr(getattr(found, "original_router", None), "routes", [])
    raise LookupError(path)


def request(peer: str = "127.0.0.1") -> Request:
    return Request({"type": "http", "headers": [], "client": (peer, 4000)})


@pytest.mark.parametrize("first", ["verify", "register"])
def test_settle_shares_the_pin_limit_of_the_other_pin_routes(first: str) -> None:
    service = PinService()
    app = create_app(service, HostConfig(pin_attempts_per_minute=2))  # type: ignore[arg-type]
    settle = route(app, "/v1/hospital/settle")
    if first == "verify":
        route(app, "/v1/card/pin/verify")(request(), PinRequest(pin="000000"))
    else:
        route(app, "/v1/hospital/register")(request(), RegisterRequest(pin="000000"))
    body = SettleRequest(pin="000000", pay_info=BILL)
    assert settle(request(), body).status_code == 422  # the second attempt: sent to the card
    limited = settle(request(), body)  # the third: refused before the card
    assert limited.status_code == 429 and json.loads(limited.body)["code"] == -1
    assert service.calls == [first, "settle"]
    assert settle(request("127.0.0.2"), body).status_code == 422  # another client
    over = route(app, "/v1/card/pin/verify")(request(), PinRequest(pin="000000"))
    assert over.status_code == 429  # and settlements count against a verification too


class Recorder:
    """Stands in for MedicalSettlement: keeps what it was built with."""

    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, pipeline: object, module: object, **kwargs: Any) -> None:
        Recorder.built.append(kwargs)

    def settle(self, connection: object, pin: str, pay_info: str) -> Settled:
        return SETTLED


class Card:
    """A card connection that answers nothing (the settlement is a :class:`Recorder`)."""

    def __enter__(self) -> Card:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return b"", 0x9000

    def close(self) -> None:
        return None


class OneCard:
    """A PC/SC stand-in with :class:`Card` always presented."""

    def cards_present(self) -> dict[str, bool]:
        return {}

    def wait_for_card(self, timeout: float, **_kwargs: object) -> Card:
        return Card()


def test_host_serve_settles_with_the_configured_tear_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Recorder.built.clear()
    monkeypatch.setattr(service_module, "MedicalSettlement", Recorder)
    store = SimpleNamespace(audit=None)
    host = PcscHostService(
        store,  # type: ignore[arg-type]
        "T1",
        pcsc=OneCard(),  # type: ignore[arg-type]
        module=object(),  # type: ignore[arg-type]
        tear_window_s=42.0,
    )
    monkeypatch.setattr(host, "_pipeline", lambda scenario: object())
    assert host.hospital_settle("123456", BILL, None, 0, "test")["code"] == 0
    assert Recorder.built == [{"tear_window_s": 42.0}]


def test_the_daemon_worker_settles_with_the_configured_tear_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Recorder.built.clear()
    monkeypatch.setattr(worker_module, "MedicalSettlement", Recorder)
    desk = Desk()
    terminal = SimpleNamespace(
        module=object(), pipeline=object(), settings=SimpleNamespace(tear_window_s=42.0)
    )
    daemon = SimpleNamespace(
        desk=desk,
        terminal=terminal,
        store_lock=threading.Lock(),
        metrics=DaemonMetrics(),
        after_decision=lambda: None,
    )
    worker = DecisionWorker(daemon)  # type: ignore[arg-type]
    action = DeskAction(SETTLE, pin="123456", pay_info=BILL)
    job = Job(CARD, "Virtual PCD 00 00", 0.0, connection=Card())  # type: ignore[arg-type]
    worker._settle(job, action)
    assert Recorder.built == [{"tear_window_s": 42.0}]
    assert action.result is not None and action.result.settled == SETTLED.to_json()
    assert job.decision == SETTLED.decision and worker.decided == 1
