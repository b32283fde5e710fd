"""The platform's side of the operating policy: ``POST /v1/cards/status`` answers one card's
entry on the current deny list (signed, by keyed hash only, never logged), and journal rows
carrying flags (``stale_list:deny_list``) are accepted, chain-checked and stored with them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_support import LivePlatform, chain_rows, live_platform, record, seal
from sqlalchemy import select

from offline_store import DenyReason, JournalEntry, Store, canonical_card_id
from platform_server.db import journal
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.transport import Credentials

pytestmark = pytest.mark.emulated

CARD = canonical_card_id("360100", "J36007413")


@pytest.fixture
def live(platform_db: str | None, tmp_path: Path) -> Iterator[LivePlatform]:
    with live_platform(
        tmp_path, {"T1": ("transit",), "T2": ("hotel",)}, db_url=platform_db
    ) as running:
        yield running


def test_a_card_status_answers_the_current_entry_by_hash(
    live: LivePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = live.client()
    card_hash = live.platform.card_hash(CARD)
    before = client.post("/v1/cards/status", {"card_hash": card_hash})
    assert before.status_code == 200 and before.headers["cache-control"] == "no-store"
    assert before.json() == {
        "card_hash": card_hash,
        "listed": False,
        "reason": None,
        "effective": None,
        "version": 1,
    }
    live.platform.deny(CARD, DenyReason.LOST, effective=dt.date(2026, 11, 20))
    listed = client.post("/v1/cards/status", {"card_hash": card_hash}).json()
    assert (listed["listed"], listed["reason"], listed["effective"], listed["version"]) == (
        True,
        "lost",
        "2026-11-20",
        2,
    )
    live.platform.undeny(CARD)  # 解挂
    assert client.post("/v1/cards/status", {"card_hash": card_hash}).json()["listed"] is False
    assert card_hash not in caplog.text  # neither the access log nor the platform's own line


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"card_hash": "ABC"}', 400, "invalid_body"),
        (b'{"card_hash": "' + b"a" * 64 + b'", "ssn": "x"}', 400, "invalid_body"),
        (b"[]", 400, "invalid_body"),
        (b"{", 400, "bad_json"),
    ],
)
def test_a_malformed_card_status_request_is_a_problem(
    live: LivePlatform, body: bytes, status: int, code: str
) -> None:
    answer = live.client().request("POST", "/v1/cards/status", body)
    assert answer.status_code == status and answer.json()["code"] == code


def test_a_card_status_needs_a_signature(live: LivePlatform) -> None:
    body = json.dumps({"card_hash": "a" * 64}).encode()
    answer = live.client().request("POST", "/v1/cards/status", body, sign=False)
    assert answer.status_code == 401 and answer.json()["code"] == "unsigned"


def test_rows_with_flags_chain_and_are_stored_with_them(live: LivePlatform) -> None:
    client = live.client()
    first = chain_rows("T1", 1)
    flagged = seal(
        record("T1", 2, scenario="transit", flags=["online:catalogue", "stale_list:deny_list"]),
        first[0]["hash"],
    )
    plain = seal(record("T1", 3), flagged["hash"])
    answer = client.upload([*first, flagged, plain]).json()
    assert answer == {"ack_seq": 3, "accepted": 3, "duplicates": 0, "rejected": []}
    with live.platform.engine.connect() as conn:
        query = select(journal.c.seq, journal.c.record).where(journal.c.terminal_id == "T1")
        stored = {seq: text for seq, text in conn.execute(query)}
    assert json.loads(stored[2])["flags"] == ["online:catalogue", "stale_list:deny_list"]
    assert "flags" not in json.loads(stored[3])
    (summary,) = live.platform.verify_chains("T1")
    assert summary.ok and summary.rows == 3


@pytest.mark.parametrize(
    "flags",
    [[], ["Stale"], ["a:b:c"], ["x", "x"], [f"f{n}" for n in range(17)], "stale_list", [1]],
)
def test_malformed_flags_refuse_the_batch(live: LivePlatform, flags: object) -> None:
    row = seal(record("T1", 1, flags=flags), "0" * 64)
    answer = live.client().upload([row])
    assert answer.status_code == 400 and "rows[0].flags" in answer.json()["detail"]


def test_flagged_rows_of_a_real_offline_store_upload_through_the_sync_client(
    live: LivePlatform, tmp_path: Path
) -> None:
    credentials = live.terminals["T1"]
    config = SyncConfig(
        url=live.url,
        credentials=Credentials("T1", credentials.key_id, credentials.key),
    )
    with Store.open(tmp_path / "store.db", journal_key=bytes(range(32))) as store:
        for flags in ((), ("stale_list:deny_list",), ("online:catalogue", "stale_list:deny_list")):
            store.journal.append(
                JournalEntry(
                    "transit", "0301", "", "accept", "ok", 200, terminal_id="T1", flags=flags
                )
            )
        with SyncClient(config, store, clock=live.clock) as client:
            report = client.upload()
    assert report.acked_seq == 3 and report.accepted == 3
    (summary,) = live.platform.verify_chains("T1")
    assert summary.ok and summary.rows == 3
