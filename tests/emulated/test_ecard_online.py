"""National e-card codes: decoded by the platform over real HTTP (signed, through the terminal's
one transport), what happens when the platform cannot be reached — refused, or (low-risk
services) accepted as deferred, never the same code twice and never more than the profile's
cap — and texts that are no code at all, which go nowhere."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import World

from offline_store import JournalEntry, canonical_ecard_id
from sync.auth import NonceCache, verify_request
from sync.transport import Credentials, SignedTransport
from terminal.ecard_flow import DEFERRED_FIELD, CodeVerifier, defer_or_refuse, process_code
from terminal.profiles import Profile, load_profile, parse_profile
from terminal.reasons import TEXTS, Reason

pytestmark = pytest.mark.emulated

KEY = bytes(range(32))
TERMINAL = "T-TEST-01"
VALID_OPEN = (Path(__file__).resolve().parents[1] / "vectors" / "qr" / "valid-es256.txt").read_text(
    encoding="ascii"
)


def national(label: str) -> str:
    """A code in the reference platform's form: CNSSC + Base32 of 20 bytes."""
    return "CNSSC" + base64.b32encode(label.encode().ljust(20, b"\0")).decode()


OK, REVOKED, BROKEN, SLOW = (
    national("ok-1"),
    national("revoked"),
    national("broken"),
    national("slow"),
)
TOKEN = "7c1f" * 16
ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    OK: (
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
    REVOKED: (422, {"ok": False, "reason": "revoked"}),
    BROKEN: (500, {"error": "database down"}),
    SLOW: (200, {"ok": True}),
}
NOT_CODES = [
    "hello world",
    "SSC2:" + VALID_OPEN[5:],
    "ssc1:" + VALID_OPEN[5:],
    OK.lower(),
    "CNSSC-OK-1",
    "281234567890123456",
]


class Platform:
    """A decode endpoint on loopback that checks every request's signature: a table of codes,
    the requests it saw, a delay."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self.stopped = False
        self.nonces = NonceCache()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                platform.headers.append(dict(self.headers))
                platform.bodies.append(raw)
                signed = platform.signed(self.path, dict(self.headers), raw)
                body = json.loads(raw)
                platform.seen.append({"path": self.path, **body})
                status, answer = (
                    ANSWERS.get(body["code"], (422, {"ok": False, "reason": "unknown_code"}))
                    if signed
                    else (401, {"code": "bad_signature"})
                )
                if body["code"] == SLOW:
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
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="test-platform"
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def signed(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        try:
            verify_request(
                "POST",
                path,
                headers,
                body,
                key_for=lambda t, k: KEY if (t, k) == (TERMINAL, "k1") else None,
                nonces=self.nonces,
            )
        except Exception:
            return False
        return True

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


def verifier(url: str | None, timeout: float = 1.0, key: bytes = KEY) -> CodeVerifier:
    transport = None
    if url is not None:
        transport = SignedTransport(url, Credentials(TERMINAL, "k1", key), timeout_s=5.0)
    return CodeVerifier(transport=transport, decode_timeout_s=timeout)


def refusing_bus() -> Profile:
    """A bus validator that refuses national codes it cannot have decoded (the built-in one
    defers them: issue 11 §3)."""
    data = {
        "scenario": "transit",
        "catalogue_item": "0301",
        "transit": {"fare_fen": 200},
        "qr": {"opaque_offline": "refuse"},
    }
    return parse_profile(data, "refusing-bus.toml", "transit")


def confirm(world: World, seq: int) -> None:
    """What a sync does once the platform confirmed a deferred code: a follow-up row."""
    world.store.journal.append(
        JournalEntry("gate", "0501", "", "accept", "ecard_confirmed", None, ref_seq=seq)
    )


def gate_with_cap(cap: int) -> Profile:
    data = {
        "scenario": "gate",
        "catalogue_item": "0501",
        "gate": {},
        "qr": {"opaque_offline": "defer", "max_deferred": cap},
    }
    return parse_profile(data, "capped-gate.toml", "gate")


def test_a_national_code_is_decoded_by_the_platform(world: World, platform: Platform) -> None:
    decision = process_code(world.pipeline("gate"), verifier(platform.url), OK)
    assert decision.reason == Reason.OK and decision.detail["credential"] == "national"
    assert platform.seen == [
        {"path": "/v1/ecard/decode", "code": OK, "terminal_id": TERMINAL, "scenario": "gate"}
    ]
    row = world.store.journal.last()
    assert row is not None and row.outcome == "accept"
    assert row.credential_token == world.store.card_hash(canonical_ecard_id(TOKEN))
    assert row.personal_fields == ()  # a gate keeps no identity


def test_decode_requests_are_signed_like_every_platform_call(
    world: World, platform: Platform
) -> None:
    assert process_code(world.pipeline("gate"), verifier(platform.url), OK).reason == Reason.OK
    terminal = verify_request(
        "POST",
        "/v1/ecard/decode",
        platform.headers[0],
        platform.bodies[0],
        key_for=lambda t, k: KEY if (t, k) == (TERMINAL, "k1") else None,
        nonces=NonceCache(),
    )
    assert terminal == TERMINAL


def test_the_hotel_gets_the_identity_the_platform_returns(world: World, platform: Platform) -> None:
    decision = process_code(world.pipeline("hotel"), verifier(platform.url), OK, room="0302")
    assert decision.reason == Reason.OK and decision.record is not None
    assert decision.record["ssn"] == "440000199003071027" and decision.record["room"] == "0302"


def test_the_platform_refusing_a_code(world: World, platform: Platform) -> None:
    decision = process_code(world.pipeline("gate"), verifier(platform.url), REVOKED)
    assert decision.reason == Reason.QR_ONLINE_REFUSED
    assert decision.detail == {"platform_reason": "revoked"}


def test_a_deny_listed_token_is_refused_with_its_reason(world: World, platform: Platform) -> None:
    token_hash = world.store.card_hash(canonical_ecard_id(TOKEN))
    entry = {"op": "add", "hash": token_hash, "reason": "lost", "effective": "2026-11-01"}
    world.deny("delta", 2, [entry], base=1)
    decision = process_code(world.pipeline("gate"), verifier(platform.url), OK)
    assert decision.reason == Reason.DENY_LOST


@pytest.mark.parametrize("code", [BROKEN, SLOW])
def test_a_failing_or_slow_platform_counts_as_unreachable(
    world: World, platform: Platform, code: str
) -> None:
    started = time.monotonic()
    decision = process_code(world.pipeline(refusing_bus()), verifier(platform.url, 0.5), code)
    assert decision.reason == Reason.QR_ONLINE_UNAVAILABLE
    assert time.monotonic() - started < 1.4  # one attempt: the timeout, not the platform, decides
    assert len(platform.seen) == 1  # never retried while the holder waits


def test_a_refused_signature_counts_as_unreachable(world: World, platform: Platform) -> None:
    wrong = verifier(platform.url, key=bytes(32))
    assert process_code(world.pipeline(refusing_bus()), wrong, OK).reason == (
        Reason.QR_ONLINE_UNAVAILABLE
    )
    deferred = process_code(world.pipeline("gate"), wrong, OK)
    assert deferred.reason == Reason.QR_DEFERRED and deferred.record is None


def test_offline_the_profile_decides_refuse_or_defer(world: World, platform: Platform) -> None:
    url = platform.url
    platform.stop()  # the network is down
    refused = process_code(world.pipeline(refusing_bus()), verifier(url), OK)
    assert refused.reason == Reason.QR_ONLINE_UNAVAILABLE and refused.outcome == "refuse"
    deferred = process_code(world.pipeline("gate"), verifier(url), OK)
    assert deferred.reason == Reason.QR_DEFERRED and deferred.accepted
    row = world.store.journal.last()
    assert row is not None and row.outcome == "deferred"
    assert row.personal_fields == (DEFERRED_FIELD,)  # the code, encrypted, for the next sync
    assert world.store.journal.read_personal(row.seq, who="sync") == {DEFERRED_FIELD: OK}


def test_no_platform_configured_is_offline(world: World) -> None:
    decision = process_code(world.pipeline(refusing_bus()), verifier(None), OK)
    assert decision.reason == Reason.QR_ONLINE_UNAVAILABLE


def test_an_overlong_scan_is_refused_before_anything_else(world: World) -> None:
    decision = process_code(world.pipeline("gate"), verifier(None), "X" * 5000)
    assert decision.reason == Reason.QR_BAD_ENCODING


# --- issue 10, finding 3: only a national code goes online or is deferred -----------------


@pytest.mark.parametrize("text", NOT_CODES)
def test_text_that_is_no_code_is_never_sent_nor_deferred(
    world: World, platform: Platform, text: str
) -> None:
    for profile in ("gate", "transit", "hotel"):
        decision = process_code(world.pipeline(profile), verifier(platform.url), text, room="1")
        assert decision.reason == Reason.QR_BAD_ENCODING, profile
    assert platform.seen == []  # not one request
    url = platform.url
    platform.stop()
    offline = process_code(world.pipeline("gate"), verifier(url), text)
    assert offline.reason == Reason.QR_BAD_ENCODING and not offline.accepted
    assert process_code(world.pipeline("gate"), verifier(None), text).reason == (
        Reason.QR_BAD_ENCODING
    )
    assert world.store.journal.count(outcome="deferred") == 0
    assert world.store.journal.count(outcome="accept") == 0


def test_a_deferred_code_is_a_replay_the_second_time(world: World) -> None:
    gate = world.pipeline("gate")
    assert process_code(gate, verifier(None), OK).reason == Reason.QR_DEFERRED
    for _ in range(2):
        again = process_code(gate, verifier(None), OK)
        assert again.reason == Reason.QR_REPLAY and not again.accepted
    assert world.store.journal.count(outcome="deferred") == 1
    world.clock.now += 23 * 3600  # still remembered a day later
    assert process_code(gate, verifier(None), OK).reason == Reason.QR_REPLAY


def test_a_code_accepted_online_is_neither_sent_again_nor_deferred(
    world: World, platform: Platform
) -> None:
    online = verifier(platform.url)
    assert process_code(world.pipeline("hotel"), online, OK, room="0302").reason == Reason.OK
    again = process_code(world.pipeline("hotel"), online, OK, room="0302")
    assert again.reason == Reason.QR_REPLAY and again.record is None
    assert len(platform.seen) == 1  # the replay never reached the platform
    url = platform.url
    platform.stop()
    assert process_code(world.pipeline("gate"), verifier(url), OK).reason == Reason.QR_REPLAY


def test_a_refused_code_is_not_remembered(world: World, platform: Platform) -> None:
    url = platform.url
    offline = verifier("http://127.0.0.1:9")  # nothing listens on the discard port
    assert process_code(world.pipeline(refusing_bus()), offline, OK).reason == (
        Reason.QR_ONLINE_UNAVAILABLE
    )
    assert process_code(world.pipeline("transit"), verifier(url), OK).reason == Reason.OK


def test_beyond_the_cap_deferred_codes_are_refused_until_a_sync_confirms_them(
    world: World,
) -> None:
    capped = world.pipeline(gate_with_cap(2))
    codes = [national(f"cap-{n}") for n in range(4)]
    assert [process_code(capped, verifier(None), c).reason for c in codes[:2]] == [
        Reason.QR_DEFERRED,
        Reason.QR_DEFERRED,
    ]
    full = process_code(capped, verifier(None), codes[2])
    assert full.reason == Reason.QR_DEFERRED_LIMIT and full.outcome == "refuse"
    assert full.detail == {"deferred": 2, "max_deferred": 2}
    shown = full.to_json()
    assert shown["prompt_zh"] == TEXTS[Reason.QR_DEFERRED_LIMIT].zh and shown["hotline"]
    # refusals do not count, and a refused code was not remembered: it may come again
    assert process_code(capped, verifier(None), codes[2]).reason == Reason.QR_DEFERRED_LIMIT
    # uploaded is not confirmed: the platform holds the rows, but has not checked the codes
    last = world.store.journal.last()
    assert last is not None
    world.store.journal.acknowledge(last.seq)
    assert process_code(capped, verifier(None), codes[2]).reason == Reason.QR_DEFERRED_LIMIT
    # the sync had the platform confirm them (docs/qr-format.md §14.4): the count falls to zero
    for row in world.store.journal.unconfirmed_deferred():
        confirm(world, row.seq)
    assert process_code(capped, verifier(None), codes[2]).reason == Reason.QR_DEFERRED
    assert process_code(capped, verifier(None), codes[3]).reason == Reason.QR_DEFERRED
    assert process_code(capped, verifier(None), national("cap-x")).reason == (
        Reason.QR_DEFERRED_LIMIT
    )


def test_the_cap_counts_every_deferred_code_of_the_terminal(world: World) -> None:
    assert process_code(world.pipeline("gate"), verifier(None), national("a")).accepted
    assert process_code(world.pipeline("gate"), verifier(None), national("b")).accepted
    capped = world.pipeline(gate_with_cap(2))
    decision = defer_or_refuse(capped, national("c"))
    assert decision.reason == Reason.QR_DEFERRED_LIMIT


def test_the_one_function_that_defers_or_refuses(world: World) -> None:
    assert defer_or_refuse(world.pipeline(refusing_bus()), OK).reason == (
        Reason.QR_ONLINE_UNAVAILABLE
    )
    assert defer_or_refuse(world.pipeline(load_profile("hotel")), OK).reason == (
        Reason.QR_ONLINE_UNAVAILABLE
    )
    gate = world.pipeline("gate")
    assert defer_or_refuse(gate, OK).reason == Reason.QR_DEFERRED
    assert defer_or_refuse(gate, OK).reason == Reason.QR_REPLAY
