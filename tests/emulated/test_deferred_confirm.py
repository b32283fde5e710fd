"""The confirmation of deferred national e-card codes (docs/sync.md §12), with a reference
platform served on loopback from a thread, real store files and the real sync client:

* the platform judges a code as of its scan (the deferred row's wall time), not as of the sync;
* it answers only for a deferred row of the signing terminal that names this very code;
* the terminal never turns a code it cannot read back into a verdict (it waits, with an alarm);
* a deferred code keeps its row in the journal until a follow-up row confirms it, and the
  follow-up row hashes, uploads and chains like any other.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_support import NOW, PERSONAS, Clock, LivePlatform, live_platform

from offline_store import JournalEntry, JournalError, JournalRow, Store, canonical_ecard_id
from offline_store.chain import chain_hash
from offline_store.db import MIGRATIONS, migrate, open_database
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.deferred import DEFERRED_FIELD, PATH_CONFIRM, code_hash
from sync.outcomes import describe
from sync.reports import StepStatus
from sync.transport import Credentials

pytestmark = pytest.mark.emulated

TERMINAL = "T1"
HOUR = 3600.0


def persona(name: str) -> dict:
    return tomllib.loads((PERSONAS / f"{name}.toml").read_text(encoding="utf-8"))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LivePlatform]:
    with live_platform(
        tmp_path / "platform", {TERMINAL: ("gate", "transit"), "T2": ("gate",)}, clock=Clock()
    ) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path, live: LivePlatform) -> Iterator[Store]:
    opened = Store.open(
        tmp_path / "store.db",
        journal_key=os.urandom(32),
        pepper=live.platform.keys.pepper,
        clock=live.clock,
    )
    yield opened
    opened.close()


def client(live: LivePlatform, store: Store) -> SyncClient:
    credentials = live.terminals[TERMINAL]
    config = SyncConfig(  # no pruning: the tests look at the rows afterwards
        url=live.url,
        credentials=Credentials(TERMINAL, credentials.key_id, credentials.key),
        prune=False,
    )
    return SyncClient(config, store, clock=live.clock)


def defer(store: Store, code: str, scenario: str = "gate") -> int:
    """What the pipeline journals for a deferred code (terminal/ecard_flow.py)."""
    row = store.journal.append(
        JournalEntry(
            scenario,
            "0501",
            code_hash(code),
            "deferred",
            "qr_deferred",
            None,
            personal={DEFERRED_FIELD: code},
            terminal_id=TERMINAL,
        )
    )
    return row.seq


def test_a_code_is_judged_as_of_its_scan_not_as_of_the_sync(
    live: LivePlatform, store: Store
) -> None:
    valid_hour = live.platform.issue_ecard(persona("ordinary-2.0"), HOUR)
    lost_later = live.platform.issue_ecard(persona("elderly"), HOUR)
    live.clock.now += 10 * 60
    first, second = defer(store, valid_hour.code), defer(store, lost_later.code)
    live.clock.now += 2 * HOUR  # both codes have expired since; the elderly card is lost after
    tomorrow = dt.date.fromtimestamp(live.clock.now) + dt.timedelta(days=1)
    live.platform.deny(canonical_ecard_id(lost_later.token), "lost", effective=tomorrow)
    with client(live, store) as sync:
        sync.upload()
        report = sync.confirm_deferred()
    assert (report.confirmed, report.invalid, report.waiting) == (2, 0, 0)
    follow_ups = {row.ref_seq: row for row in store.journal.rows() if row.ref_seq}
    assert sorted(follow_ups) == [first, second]
    assert follow_ups[first].credential_token == store.card_hash(
        canonical_ecard_id(valid_hour.token)
    )
    assert report.upload is not None and report.upload.acked_seq == store.journal.backlog().last_seq
    codes = live.platform.deferred_codes(TERMINAL)
    assert [(c.seq, c.status) for c in codes] == [(first, "confirmed"), (second, "confirmed")]


def test_a_code_shown_after_its_end_or_a_card_listed_by_then_is_invalid(
    live: LivePlatform, store: Store
) -> None:
    short = live.platform.issue_ecard(persona("ordinary-2.0"), 60)
    listed = live.platform.issue_ecard(persona("student"), HOUR)
    today = dt.date.fromtimestamp(live.clock.now)
    live.platform.deny(canonical_ecard_id(listed.token), "cancelled", effective=today)
    live.clock.now += 120
    expired, cancelled = defer(store, short.code), defer(store, listed.code)
    with client(live, store) as sync:
        sync.upload()
        report = sync.confirm_deferred()
    assert (report.confirmed, report.invalid) == (0, 2)
    flags = {row.ref_seq: row.flags for row in store.journal.rows() if row.ref_seq}
    assert flags == {expired: ("invalid:code_expired",), cancelled: ("invalid:deny_cancelled",)}
    shown = {c.seq: (c.status, c.reason) for c in live.platform.deferred_codes()}
    assert shown == {expired: ("invalid", "code_expired"), cancelled: ("invalid", "deny_cancelled")}


def test_the_platform_answers_only_for_the_signers_deferred_row_and_its_own_code(
    live: LivePlatform, store: Store
) -> None:
    issued = live.platform.issue_ecard(persona("ordinary-2.0"), HOUR)
    store.journal.append(
        JournalEntry("gate", "0501", "", "accept", "ok", None, terminal_id=TERMINAL)
    )
    seq = defer(store, issued.code)
    with client(live, store) as sync:
        sync.upload()
    own, other = live.client(TERMINAL), live.client("T2")
    assert own.post(PATH_CONFIRM, {"seq": seq, "code": issued.code}).json()["valid"] is True
    # another last character (the code is random: replacing it with a fixed one could keep it)
    changed = issued.code[:-1] + ("B" if issued.code.endswith("A") else "A")
    for asker, body, code in (
        (other, {"seq": seq, "code": issued.code}, "not_deferred"),  # another terminal's row
        (own, {"seq": 1, "code": issued.code}, "not_deferred"),  # a row that was no deferral
        (own, {"seq": 99, "code": issued.code}, "not_deferred"),  # a row never uploaded
        (own, {"seq": seq, "code": changed}, "code_mismatch"),
    ):
        answer = asker.post(PATH_CONFIRM, body)
        assert (answer.status_code, answer.json().get("code")) == (404, code), answer.text
        assert issued.code not in answer.text  # never repeated
    bad = own.post(PATH_CONFIRM, {"seq": seq, "code": issued.code, "extra": 1})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_body")


def test_a_row_the_platform_does_not_hold_waits_for_a_later_sync(
    live: LivePlatform, store: Store
) -> None:
    issued = live.platform.issue_ecard(persona("ordinary-2.0"), HOUR)
    seq = defer(store, issued.code)
    with client(live, store) as sync:
        assert sync.confirm_deferred().waiting == 1  # not uploaded: not even asked
        store.journal.acknowledge(seq)  # as if another platform had it: this one does not
        report = sync.confirm_deferred()
    assert (report.confirmed, report.invalid, report.waiting) == (0, 0, 1)
    assert store.journal.count(outcome="deferred", unconfirmed=True) == 1


def test_a_code_the_terminal_cannot_read_back_waits_with_an_alarm(
    live: LivePlatform, store: Store, tmp_path: Path
) -> None:
    issued = live.platform.issue_ecard(persona("ordinary-2.0"), HOUR)
    defer(store, issued.code)
    store.close()
    without_key = Store.open(tmp_path / "store.db", pepper=live.platform.keys.pepper)
    try:
        with client(live, without_key) as sync:
            sync.upload()
            report = sync.confirm_deferred()
        assert (report.unreadable, report.waiting, report.invalid) == (1, 1, 0)
        status, detail, _ = describe("ecard", report)
        assert status is StepStatus.ALARM and "journal_key_file" in detail
        assert without_key.journal.count(outcome="deferred", unconfirmed=True) == 1
    finally:
        without_key.close()


def test_a_deferred_row_stays_until_it_is_confirmed_then_prunes_with_the_rest(
    store: Store,
) -> None:
    journal = store.journal
    journal.append(JournalEntry("gate", "0501", "", "accept", "ok", None))
    seq = defer(store, "CNSSC" + "B" * 32)
    journal.append(JournalEntry("gate", "0501", "", "accept", "ok", None))
    journal.acknowledge(3)
    assert journal.prune() == 1  # row 1 only: the deferred code and what follows stay
    assert [row.seq for row in journal.rows()] == [2, 3]
    assert journal.read_personal(seq, who="test")[DEFERRED_FIELD].startswith("CNSSC")
    follow_up = journal.append(
        JournalEntry("gate", "0501", "", "accept", "ecard_confirmed", None, ref_seq=seq)
    )
    assert follow_up.record()["ref_seq"] == str(seq)
    journal.acknowledge(follow_up.seq)
    assert journal.prune() == 3
    assert journal.verify_chain().ok and journal.backlog().anchor_seq == follow_up.seq


def test_a_follow_up_names_an_earlier_row(store: Store) -> None:
    with pytest.raises(JournalError, match="not an earlier row"):
        store.journal.append(JournalEntry("gate", None, "", "accept", "ok", None, ref_seq=1))


def test_a_store_of_schema_3_gains_ref_seq_and_its_rows_hash_as_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = open_database(path, MIGRATIONS[:3])
    old.conn.execute(  # a row written by the release before: no ref_seq column at all
        "INSERT INTO journal (seq, uuid, wall_time_us, monotonic_ns, scenario, catalogue_item, "
        "credential_token, outcome, reason_code, amount, terminal_id, personal_fields, "
        "personal_ct, prev_hash, hash, uploaded, flags) VALUES (1, 'u', 1, 1, 'gate', NULL, '', "
        "'accept', 'ok', NULL, '', '[]', NULL, ?, 'h', 0, '[]')",
        ("0" * 64,),
    )
    old.conn.execute("UPDATE journal_state SET last_seq = 1, last_hash = 'h'")
    old.close()
    with Store.open(path, clock=lambda: NOW) as store:
        (before,) = store.journal.rows()
        assert before.ref_seq is None and "ref_seq" not in before.record()
        row = store.journal.append(JournalEntry("gate", "0501", "", "accept", "ok", None))
        assert "ref_seq" not in row.record() and row.ref_seq is None
    reopened = open_database(path)
    try:
        assert migrate(reopened) == len(MIGRATIONS) >= 5
    finally:
        reopened.close()


def test_a_follow_up_row_matches_its_documented_vector() -> None:
    # docs/offline-store.md §5.6 row 4, computed there with sha256sum
    row3_hash = "0f6d1dbe632e7ae0f810b86a04530296f5559363d6b2147022dbfb1f629a3d80"
    fourth = JournalRow(
        seq=4,
        uuid="9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
        monotonic_ns=123460789000,
        scenario="transit",
        catalogue_item="0301",
        credential_token="5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f",
        outcome="accept",
        reason_code="ecard_confirmed",
        amount=0,
        personal_fields=(),
        prev_hash=row3_hash,
        hash="",
        uploaded=False,
        terminal_id="440100-T0001",
        wall_time_us=1795953604500000,
        ref_seq=2,
    )
    assert b'"reason_code":"ecard_confirmed","ref_seq":"2","scenario"' in fourth.canonical()
    assert (
        chain_hash(row3_hash, fourth.canonical())
        == "445937ca1292d2c07d070578c5763f204c4650971ecbb2659904b92f6907711b"
    )
