"""National (opaque) e-card codes: decoded by the platform over real HTTP, and what happens when
the platform cannot be reached — refused, or (low-risk services) accepted as deferred."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pipeline_support import World

from offline_store import canonical_ecard_id
from sync.auth import NonceCache, sign_request, verify_request
from terminal.ecard_flow import DEFERRED_FIELD, CodeVerifier, process_code
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

TOKEN = "7c1f" * 16
ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "ESSC-OK-1": (
        200,
        {
            "ok": True,
            "token": TOKEN,
            "region": "440100",
            "category": "3",
            "not_after": "2030-01-01",
            "identity": {
                "name": "陈静怡",
                "ssn": "440000199003071027",
                "sex": "2",
                "ethnicity": "01",
                "birth_date": "1990-03-07",
            },
        },
    ),
    "ESSC-REVOKED": (422, {"ok": False, "reason": "revoked"}),
    "ESSC-BROKEN": (500, {"error": "database down"}),
    "ESSC-SLOW": (200, {"ok": True}),
}


class Platform:
    """A decode endpoint on loopback: a table of codes, the requests it saw, a delay."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self.stopped = False
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                platform.seen.append({"path": self.path, **body})
                platform.headers.append(dict(self.headers))
                platform.bodies.append(raw)
                status, answer = ANSWERS.get(
                    body["code"], (404, {"ok": False, "reason": "unknown"})
                )
                if body["code"] == "ESSC-SLOW":
                    time.sleep(1.5)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-platform")
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def platform() -> Iterator[Platform]:
    running = Platform()
    yield running
    running.stop()


def verifier(url: str | None, timeout: float = 1.0) -> CodeVerifier:
    return CodeVerifier(decode_url=url, decode_timeout_s=timeout)


def test_a_national_code_is_decoded_by_the_platform(world: World, platform: Platform) -> None:
    decision = process_code(world.pipeline("gate"), verifier(platform.url), "ESSC-OK-1")
    assert decision.reason == Reason.OK and decision.detail["credential"] == "national"
    assert platform.seen == [
        {
            "path": "/v1/ecard/decode",
            "code": "ESSC-OK-1",
            "terminal_id": "T-TEST-01",
            "scenario": "gate",
        }
    ]
    row = world.store.journal.last()
    assert row is not None and row.outcome == "accept"
    assert row.credential_token == world.store.card_hash(canonical_ecard_id(TOKEN))
    assert row.personal_fields == ()  # a gate keeps no identity


def test_the_hotel_gets_the_identity_the_platform_returns(world: World, platform: Platform) -> None:
    decision = process_code(
        world.pipeline("hotel"), verifier(platform.url), "ESSC-OK-1", room="0302"
    )
    assert decision.reason == Reason.OK and decision.record is not None
    assert decision.record["ssn"] == "440000199003071027" and decision.record["room"] == "0302"


def test_the_platform_refusing_a_code(world: World, platform: Platform) -> None:
    decision = process_code(world.pipeline("gate"), verifier(platform.url), "ESSC-REVOKED")
    assert decision.reason == Reason.QR_ONLINE_REFUSED
    assert decision.detail == {"platform_reason": "revoked"}


def test_a_deny_listed_token_is_refused_with_its_reason(world: World, platform: Platform) -> None:
    token_hash = world.store.card_hash(canonical_ecard_id(TOKEN))
    entry = {"op": "add", "hash": token_hash, "reason": "lost", "effective": "2026-11-01"}
    world.deny("delta", 2, [entry], base=1)
    decision = process_code(world.pipeline("gate"), verifier(platform.url), "ESSC-OK-1")
    assert decision.reason == Reason.DENY_LOST


@pytest.mark.parametrize("code", ["ESSC-BROKEN", "ESSC-SLOW"])
def test_a_failing_or_slow_platform_counts_as_unreachable(
    world: World, platform: Platform, code: str
) -> None:
    started = time.monotonic()
    decision = process_code(world.pipeline("transit"), verifier(platform.url, 0.5), code)
    assert decision.reason == Reason.QR_ONLINE_UNAVAILABLE
    assert time.monotonic() - started < 1.4  # the timeout, not the platform, decides


def test_offline_the_profile_decides_refuse_or_defer(world: World, platform: Platform) -> None:
    url = platform.url
    platform.stop()  # the network is down
    refused = process_code(world.pipeline("transit"), verifier(url), "ESSC-OK-1")
    assert refused.reason == Reason.QR_ONLINE_UNAVAILABLE and refused.outcome == "refuse"
    deferred = process_code(world.pipeline("gate"), verifier(url), "ESSC-OK-1")
    assert deferred.reason == Reason.QR_DEFERRED and deferred.accepted
    row = world.store.journal.last()
    assert row is not None and row.outcome == "deferred"
    assert row.personal_fields == (DEFERRED_FIELD,)  # the code, encrypted, for the next sync
    assert world.store.journal.read_personal(row.seq, who="sync") == {DEFERRED_FIELD: "ESSC-OK-1"}


def test_no_platform_configured_is_offline(world: World) -> None:
    decision = process_code(world.pipeline("transit"), verifier(None), "ESSC-OK-1")
    assert decision.reason == Reason.QR_ONLINE_UNAVAILABLE


def test_an_overlong_scan_is_refused_before_anything_else(world: World) -> None:
    decision = process_code(world.pipeline("gate"), verifier(None), "X" * 5000)
    assert decision.reason == Reason.QR_BAD_ENCODING


def test_decode_requests_are_signed_like_every_platform_call(
    world: World, platform: Platform
) -> None:
    key = bytes(range(32))

    def signer(method: str, path: str, body: bytes) -> dict[str, str]:
        return sign_request(method, path, body, terminal_id="T-TEST-01", key_id="k1", secret=key)

    checker = CodeVerifier(decode_url=platform.url, decode_timeout_s=1.0, signer=signer)
    assert process_code(world.pipeline("gate"), checker, "ESSC-OK-1").reason == Reason.OK
    terminal = verify_request(
        "POST",
        "/v1/ecard/decode",
        platform.headers[0],
        platform.bodies[0],
        key_for=lambda t, k: key if (t, k) == ("T-TEST-01", "k1") else None,
        nonces=NonceCache(),
    )
    assert terminal == "T-TEST-01"
