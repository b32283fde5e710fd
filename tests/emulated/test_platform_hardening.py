"""The reference platform against bad input, log injection and replays (issue 10, findings 6–8),
on loopback: every malformed request is a 4xx problem document, never a 500; every request
value in a log line is quoted on one line; nonces are kept per terminal, bounded, in the
database, and refused again after a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fuzz_support import assert_problem, raw_exchange
from platform_support import NOW, LivePlatform, chain_rows, live_platform
from sqlalchemy import create_engine, delete, func, select, update

from platform_server import Platform, PlatformServer, create_app
from platform_server.db import (
    META_SCHEMA,
    SCHEMA_VERSION,
    journal_lost,
    journal_payment,
    meta,
    payment,
    request_nonce,
)
from platform_server.keys import PlatformKeys
from platform_server.nonces import PURGE_INTERVAL_S
from platform_server.terminals import Credentials
from sync.auth import H_KEY_ID, H_NONCE, H_SIGNATURE, H_TERMINAL, H_TIMESTAMP, NonceCache, canonical

pytestmark = pytest.mark.emulated

DEEP = 30_000  # "[" * DEEP + "]" * DEEP is 60 KB: under the 64 KiB limit of a small body
HEARTBEAT = {
    "software_version": "0.1.0",
    "deny_version": None,
    "trust_version": None,
    "backlog": 0,
    "clock_offset_s": 0.0,
}


@pytest.fixture
def live(platform_db: str | None, tmp_path: Path) -> Iterator[LivePlatform]:
    with live_platform(tmp_path, {"T1": ("gate",), "T2": ("gate",)}, db_url=platform_db) as running:
        yield running


def signed(
    credentials: Credentials, method: str, target: str, body: bytes, **values: str
) -> dict[str, bytes]:
    """The five headers, signed over whatever values are given (as Latin-1 on the wire).

    :param values: ``terminal``, ``key_id``, ``timestamp``, ``nonce`` or ``signature`` to use
    """
    terminal = values.get("terminal", credentials.terminal_id)
    key_id = values.get("key_id", credentials.key_id)
    stamp = values.get("timestamp", str(int(NOW)))
    nonce = values.get("nonce", secrets.token_hex(16))
    text = canonical(method, target, stamp, nonce, body, key_id=key_id)
    signature = values.get("signature", hmac.new(credentials.key, text, hashlib.sha256).hexdigest())
    headers = {
        H_TERMINAL: terminal,
        H_KEY_ID: key_id,
        H_TIMESTAMP: stamp,
        H_NONCE: nonce,
        H_SIGNATURE: signature,
    }
    return {name: value.encode("latin-1") for name, value in headers.items()}


def send(
    live: LivePlatform, method: str, target: str, body: bytes = b"", **values: str
) -> requests.Response:
    headers = signed(live.terminals["T1"], method, target, body, **values)
    if body:
        headers["Content-Type"] = b"application/json"
    return requests.request(
        method, live.url.rstrip("/") + target, data=body, headers=headers, timeout=30
    )


def problem(answer: requests.Response, status: int) -> str:
    assert answer.status_code == status, answer.text[:300]
    document = assert_problem(answer.status_code, answer.headers["content-type"], answer.content)
    return str(document["code"])


# --- finding 6: bad input is a 4xx problem document --------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/heartbeat", "/v1/journal/batch", "/v1/ecard/decode", "/v1/cards/status"]
)
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_json_nested_60_kb_deep_is_a_400_problem(
    live: LivePlatform, path: str, opening: bytes
) -> None:
    """Each of these answered 500 (RecursionError in json.loads)."""
    closing = b"]" if opening == b"[" else b"}"
    depth = DEEP if opening == b"[" else 10_000
    body = opening * depth + b"1" + closing * depth
    answer = send(live, "POST", path, body)
    assert problem(answer, 400) == "bad_json"
    assert "nests deeper than 32" in answer.json()["detail"]


@pytest.mark.parametrize("stamp", ["²", "¹", "1795953600²", "9" * 5000, "+1795953600", "0x6b0b"])
def test_a_timestamp_of_other_digits_is_stale_not_a_crash(live: LivePlatform, stamp: str) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises: this answered 500."""
    answer = send(live, "GET", "/v1/time", timestamp=stamp)
    assert problem(answer, 401) == "stale_timestamp"


@pytest.mark.parametrize("signature", ["é" * 64, "ÿ" * 64, "0" * 63 + "²"])
def test_a_signature_of_other_characters_is_a_bad_signature(
    live: LivePlatform, signature: str
) -> None:
    """hmac.compare_digest raised TypeError on a non-ASCII str: a 500."""
    answer = send(live, "GET", "/v1/time", signature=signature)
    assert problem(answer, 401) == "bad_signature"


@pytest.mark.parametrize(
    "query", ["since=%C2%B2", "since=%D9%A3", "since=1%C2%B2", "since=" + "9" * 4400]
)  # ², ٣ (Arabic-Indic 3), 1²; more digits than int() takes
def test_a_version_query_of_other_digits_is_400(live: LivePlatform, query: str) -> None:
    answer = send(live, "GET", f"/v1/deny?{query}")
    assert problem(answer, 400) == "invalid_query"


def test_a_content_length_of_more_digits_than_an_int64_is_413(live: LivePlatform) -> None:
    request = (
        b"POST /v1/heartbeat HTTP/1.1\r\nHost: platform\r\nContent-Length: "
        + b"9" * 20  # over any int64; h11 itself refuses more than 20 digits (400)
        + b"\r\n\r\n{}"
    )
    status, headers, body = raw_exchange("127.0.0.1", live.server.port, request)
    assert status == 413 and assert_problem(status, headers["content-type"], body)["code"] == (
        "too_large"
    )


@pytest.mark.parametrize(
    "length",
    [b"\xb2", b"1\xb2", b"\xd9\xa3", b"-1", b"1 2", b"0x10"],
    ids=["superscript", "digit-superscript", "arabic-indic", "negative", "two", "hex"],
)
def test_a_content_length_off_its_format_is_a_400_problem(
    live: LivePlatform, length: bytes
) -> None:
    """Refused by the HTTP layer before the application, as a problem document too."""
    request = (
        b"POST /v1/heartbeat HTTP/1.1\r\nHost: platform\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\n\r\n{}"
    )
    status, headers, body = raw_exchange("127.0.0.1", live.server.port, request)
    document = assert_problem(status, headers["content-type"], body)
    assert status == 400 and document["code"] == "bad_request"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"software_version": "\xff\xfe"}', "not UTF-8"),
        (b'{"software_version": "\xed\xa0\x80"}', "not UTF-8"),
        (b'{"software_version": "\\ud800", "backlog": 0}', "lone UTF-16 surrogate"),
        (b'{"backlog": 1e400}', "out of the range"),
        (b'{"backlog": ' + b"9" * 5000 + b"}", "not JSON"),
    ],
)
def test_bodies_that_are_not_json_text_are_bad_json(
    live: LivePlatform, body: bytes, detail: str
) -> None:
    answer = send(live, "POST", "/v1/heartbeat", body)
    assert problem(answer, 400) == "bad_json"
    assert detail in answer.json()["detail"]


def test_a_decode_request_holding_a_lone_surrogate_is_refused_before_the_database(
    live: LivePlatform,
) -> None:
    body = b'{"code": "CNSSC\\udfff", "terminal_id": "T1", "scenario": "gate"}'
    assert problem(send(live, "POST", "/v1/ecard/decode", body), 400) == "bad_json"


@pytest.mark.parametrize(
    ("path", "size"),
    [("/v1/heartbeat", 64 * 1024 + 1), ("/v1/ecard/decode", 300 * 1024), ("/v1/time", 70_000)],
)
def test_a_huge_body_is_a_413_problem(live: LivePlatform, path: str, size: int) -> None:
    method = "GET" if path == "/v1/time" else "POST"
    body = b"[" + b" " * (size - 2) + b"]"
    assert problem(send(live, method, path, body), 413) == "too_large"


# --- finding 7: request values in log lines ----------------------------------------------


def test_a_newline_in_the_path_and_esc_in_the_terminal_header_stay_on_one_quoted_line(
    live: LivePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    """``%0a`` decoded into the path wrote a forged ERROR line; ESC reached the terminal."""
    forged = "/v1/time%0a2026-11-29 08:00:00 ERROR event=forged"
    with caplog.at_level(logging.INFO, logger="platform_server"):
        answer = requests.get(
            live.url.rstrip("/") + forged,
            headers={H_TERMINAL: b"T1\x1b[31m\x1b]0;owned\x07", H_KEY_ID: b"k\x1b[2J"},
            timeout=30,
        )
        # inside the block: the access line is written after the answer, and leaving the block
        # sets the logger's level back, which would drop a line not yet written
        access = wait_for_line(caplog, "event=http_request", "forged")
    assert answer.status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("platform_server")]
    assert 'path="/v1/time\\n2026-11-29 08:00:00 ERROR event=forged"' in access
    assert 'terminal="T1\\x1b[31m\\x1b]0;owned\\x07"' in access
    for line in lines:
        assert "\n" not in line and "\x1b" not in line, line


def wait_for_line(caplog: pytest.LogCaptureFixture, *words: str) -> str:
    """The one platform log line holding every word; the access line is written after the
    answer is sent, so the client can read the answer first."""
    deadline = time.monotonic() + 30
    while True:
        found = [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("platform_server") and all(w in r.getMessage() for w in words)
        ]
        if found or time.monotonic() > deadline:
            [line] = found
            return line
        time.sleep(0.01)


def test_a_refused_signature_logs_the_quoted_path(
    live: LivePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="platform_server"):
        answer = send(live, "GET", "/v1/time", signature="0" * 64)
    assert answer.status_code == 401
    refused = [r.getMessage() for r in caplog.records if "event=request_refused" in r.getMessage()]
    assert refused == ['event=request_refused path="/v1/time" code=bad_signature']


# --- finding 8: nonces -------------------------------------------------------------------


def stored_nonces(live: LivePlatform) -> int:
    engine = create_engine(live.db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(request_nonce)).scalar_one())
    finally:
        engine.dispose()


def test_a_replay_after_a_restart_is_refused(live: LivePlatform) -> None:
    """The nonce cache lived in the process: a restart opened a 300 s replay window."""
    upload = live.client().upload(chain_rows("T1", 1))
    assert upload.status_code == 200
    captured = upload.request
    live.restart()
    replay = requests.post(
        live.url.rstrip("/") + "/v1/journal/batch",
        data=captured.body,
        headers=dict(captured.headers),
        timeout=30,
    )
    assert problem(replay, 401) == "replayed_nonce"
    assert live.client().get("/v1/time").status_code == 200  # fresh requests still pass


def test_a_nonce_seen_by_another_process_on_the_same_database_is_refused(
    live: LivePlatform,
) -> None:
    nonce = "5e" * 16
    assert live.client().get("/v1/time", nonce=nonce).status_code == 200
    other = create_app(live.db, live.keys_dir, clock=live.clock)
    server = PlatformServer(other, "127.0.0.1", 0)
    url = server.start()
    try:
        client = live.client()
        client.url = url.rstrip("/")
        assert problem(client.get("/v1/time", nonce=nonce), 401) == "replayed_nonce"
    finally:
        server.stop()


def test_a_nonce_is_only_the_documented_format(live: LivePlatform) -> None:
    client = live.client()
    for nonce in ("AB" * 16, "ab" * 15, "ab" * 16 + "0", "zz" * 16):
        assert problem(client.get("/v1/time", nonce=nonce), 401) == "replayed_nonce"
    assert stored_nonces(live) == 0
    assert client.get("/v1/time", nonce="ab" * 16).status_code == 200
    assert stored_nonces(live) == 1


def test_expired_nonces_are_purged_from_the_database(live: LivePlatform) -> None:
    client = live.client()
    for _ in range(3):
        assert client.get("/v1/time").status_code == 200
    assert stored_nonces(live) == 3
    live.clock.now += 300 + PURGE_INTERVAL_S + 1
    assert client.get("/v1/time").status_code == 200
    assert stored_nonces(live) == 1


def test_one_terminal_over_its_share_is_told_to_wait_and_cannot_flush_another(
    tmp_path: Path,
) -> None:
    """One pool of 10^6 for all: a terminal could push out another's nonces and replay them."""
    with live_platform(tmp_path, {"T1": ("gate",), "T2": ("gate",)}) as live:
        live.server.stop()
        engine_platform = Platform(
            live.platform.engine,
            PlatformKeys.load(live.keys_dir),
            live.clock,
            NonceCache(per_terminal=3),
        )
        live.server = PlatformServer(create_app("", "", platform=engine_platform), "127.0.0.1")
        live.url = live.server.start()
        victim, flood = live.client("T2"), live.client("T1")
        kept = victim.get("/v1/time")
        assert kept.status_code == 200
        for _ in range(3):
            assert flood.get("/v1/time").status_code == 200
        limited = flood.get("/v1/time")
        assert problem(limited, 429) == "rate_limited"
        assert limited.headers["retry-after"] == "301"
        again = requests.get(kept.url, headers=dict(kept.request.headers), timeout=30)
        assert problem(again, 401) == "replayed_nonce"
        assert victim.get("/v1/time").status_code == 200  # T2's share is its own
        live.clock.now += 301
        assert flood.get("/v1/time").status_code == 200


def test_a_database_of_schema_1_gains_the_nonce_payment_and_gap_tables(tmp_path: Path) -> None:
    with live_platform(tmp_path, {"T1": ("gate",)}) as live:
        db = live.db
    engine = create_engine(db)
    with engine.begin() as conn:
        request_nonce.drop(conn)
        payment.drop(conn)
        journal_payment.drop(conn)
        journal_lost.drop(conn)
        conn.execute(update(meta).where(meta.c.key == META_SCHEMA).values(value="1"))
    engine.dispose()
    with Platform.open(db) as platform, platform.engine.connect() as conn:
        version = conn.execute(select(meta.c.value).where(meta.c.key == META_SCHEMA)).scalar()
        assert version == str(SCHEMA_VERSION) == "4"
        conn.execute(delete(request_nonce))  # the tables are there
        conn.execute(delete(payment))
        conn.execute(delete(journal_payment))
        conn.execute(delete(journal_lost))


def test_bad_input_leaves_no_trace_in_the_nonce_table(live: LivePlatform) -> None:
    """Only a request whose signature and timestamp pass is remembered."""
    send(live, "GET", "/v1/time", signature="0" * 64)
    send(live, "GET", "/v1/time", timestamp="²")
    assert stored_nonces(live) == 0


def test_an_unsigned_garbage_request_line_is_a_problem_document(live: LivePlatform) -> None:
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=10) as conn:
        conn.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["code"] == "bad_request"


def test_an_unexpected_failure_is_a_bare_500_problem_without_its_trace(
    live: LivePlatform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The last resort stays: nothing of the exception reaches the client or the log line."""

    message = "SELECT " + "-".join(["secret", "key", "value"])  # the frames show source lines

    def broken(*args: object) -> float:
        raise RuntimeError(message)

    monkeypatch.setattr(Platform, "heartbeat", broken)
    with caplog.at_level(logging.INFO, logger="platform_server"):
        answer = live.client().post("/v1/heartbeat", HEARTBEAT)
    assert answer.status_code == 500
    document = assert_problem_5xx(answer)
    assert document == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "code": "internal_error",
        "detail": "the platform could not answer",
    }
    [line] = [r.getMessage() for r in caplog.records if "event=internal_error" in r.getMessage()]
    assert "error=RuntimeError" in line and "secret-key-value" not in line


def assert_problem_5xx(answer: requests.Response) -> dict[str, object]:
    assert answer.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in answer.text and "secret" not in answer.text
    return dict(answer.json())


def test_a_stop_signal_before_uvicorn_serves_is_not_lost(live: LivePlatform) -> None:
    """SIGTERM between the URL printed and uvicorn's own handlers: it used to be only logged,
    and the server then served on, deaf to the stop it had been sent."""
    from platform_server.server import _quiet_signals

    server = PlatformServer(create_app(live.db, live.keys_dir, clock=live.clock), "127.0.0.1", 0)
    try:
        before = signal.getsignal(signal.SIGTERM)
        with _quiet_signals(server.server):
            signal.raise_signal(signal.SIGTERM)
        assert server.server.should_exit
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        server.socket.close()
