"""The platform on each database it supports (the ``platform_db`` fixture: an SQLite file, and a
schema of its own on a throwaway PostgreSQL cluster, tests/postgres.py). Concurrent batches of
one terminal never store or count a row twice."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_support import LivePlatform, chain_rows, live_platform
from sqlalchemy import select

from ecard import parse_trust_list
from offline_store import DenyReason, canonical_card_id, ed25519_verifier
from platform_server.db import request_nonce
from platform_server.nonces import PURGE_INTERVAL_S
from sync.recovery import fetch_own_rows
from sync.transport import SignedTransport

pytestmark = pytest.mark.emulated


@pytest.fixture
def live(platform_db: str | None, tmp_path: Path) -> Iterator[LivePlatform]:
    with live_platform(tmp_path, {"T1": ("gate",), "T2": ("hotel",)}, db_url=platform_db) as run:
        yield run


def test_batches_dedup_gaps_and_the_ack_cursor(live: LivePlatform) -> None:
    client = live.client()
    rows = chain_rows("T1", 300)
    assert client.upload(rows[:100]).json()["ack_seq"] == 100
    assert client.upload(rows[150:]).json()["ack_seq"] == 100
    answer = client.upload(rows[50:150]).json()
    assert answer == {"ack_seq": 300, "accepted": 50, "duplicates": 50, "rejected": []}
    [summary] = live.platform.verify_chains("T1")
    assert summary.ok and summary.rows == summary.counted == 300


def test_concurrent_overlapping_batches_store_and_count_each_row_once(live: LivePlatform) -> None:
    rows = chain_rows("T1", 2000)
    accepted: list[int] = []
    errors: list[str] = []

    def upload(start: int) -> None:
        client = live.client()
        for offset in range(start, 2000, 250):
            answer = client.upload(rows[max(0, offset - 100) : offset + 250])
            if answer.status_code != 200:
                errors.append(answer.text)
                return
            accepted.append(answer.json()["accepted"])

    threads = [threading.Thread(target=upload, args=(start,)) for start in (0, 0, 125)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert sum(accepted) == 2000
    [summary] = live.platform.verify_chains("T1")
    assert summary.ok and summary.rows == summary.counted == 2000 and summary.ack_seq == 2000


def test_lists_and_decode_on_the_database(live: LivePlatform) -> None:
    client = live.client()
    verify = ed25519_verifier((live.keys_dir / "deny-signing.pub.pem").read_bytes())
    live.platform.deny(canonical_card_id("440100", "A01023450"), DenyReason.LOST)
    delta = client.get("/v1/deny?since=1")
    assert delta.headers["x-sscard-deny-kind"] == "delta"
    verify(delta.content, base64.b64decode(delta.headers["x-sscard-deny-signature"]))
    trust = client.get("/v1/trust")
    root = (live.keys_dir / "trust-root.pub.pem").read_bytes()
    assert parse_trust_list(trust.content, root, live.clock()).version == 1
    card = {
        "city_code": "440100",
        "card_number": "A01023450",
        "category": "3",
        "expiry_date": dt.date(2031, 3, 14),
    }
    issued = live.platform.issue_ecard({"card": card})
    decoded = client.post(
        "/v1/ecard/decode", {"code": issued.code, "terminal_id": "T1", "scenario": "gate"}
    )
    assert decoded.status_code == 200 and decoded.json()["token"] == issued.token
    beat = {
        "software_version": "0.1.0",
        "deny_version": 2,
        "trust_version": 1,
        "backlog": 0,
        "clock_offset_s": 0.25,
    }
    assert client.post("/v1/heartbeat", beat).status_code == 200
    assert live.platform.list_terminals("T1")[0].clock_offset_s == 0.25


def test_a_replay_after_a_restart_is_refused_and_expired_nonces_are_purged(
    live: LivePlatform,
) -> None:
    """Nonces live in the database (request_nonce): a restarted platform still knows them
    until their timestamps are over, then deletes them (issue 10 finding 8)."""
    client = live.client()
    first = client.get("/v1/time", nonce="0a" * 16)
    assert first.status_code == 200
    live.restart()
    replay = client.get("/v1/time", nonce="0a" * 16)
    assert replay.status_code == 401 and replay.json()["code"] == "replayed_nonce"
    assert client.get("/v1/time").status_code == 200
    live.clock.now += 300 + PURGE_INTERVAL_S + 1
    assert client.get("/v1/time", nonce="0a" * 16).status_code == 200  # its time is over
    with live.platform.engine.connect() as conn:
        kept = conn.execute(select(request_nonce.c.nonce)).scalars().all()
    assert kept == ["0a" * 16]


def test_a_terminal_fetches_its_own_rows_back_as_uploaded(live: LivePlatform) -> None:
    rows = chain_rows("T1", 300)
    assert live.client().upload(rows).json()["ack_seq"] == 300
    assert live.client("T2").upload(chain_rows("T2", 5)).json()["ack_seq"] == 5
    answer = live.client().get("/v1/journal?after=250")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"rows": rows[250:], "more": False}
    assert live.client().get("/v1/journal").json()["rows"] == rows  # after=0 by default
    theirs = live.client("T2").get("/v1/journal?after=3").json()["rows"]
    assert [row["terminal_id"] for row in theirs] == ["T2", "T2"]  # never another's rows
    refused = live.client().get("/v1/journal?after=-1")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_query")
    refused = live.client().get("/v1/journal?since=1")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_query")


def test_the_rows_come_back_in_pages(live: LivePlatform) -> None:
    rows = chain_rows("T1", 1500)
    assert live.client().upload(rows).json()["ack_seq"] == 1500
    first = live.client().get("/v1/journal?after=100").json()
    assert (len(first["rows"]), first["more"]) == (1000, True)
    last = first["rows"][-1]["seq"]
    second = live.client().get(f"/v1/journal?after={last}").json()
    assert (second["rows"], second["more"]) == (rows[1100:], False)


def test_the_sync_client_fetches_the_pages_it_needs(live: LivePlatform) -> None:
    rows = chain_rows("T1", 2500)
    assert live.client().upload(rows).json()["ack_seq"] == 2500
    transport = SignedTransport(live.url, live.terminals["T1"], timeout_s=5.0, clock=live.clock)
    try:
        assert fetch_own_rows(transport, 10, 2500) == rows[10:]  # three pages
        assert fetch_own_rows(transport, 10, 900) == rows[10:1010]  # one page is enough
        assert fetch_own_rows(transport, 2500, 2600) == []
        assert fetch_own_rows(transport, 5, 5) == []  # nothing to ask for
    finally:
        transport.session.close()
