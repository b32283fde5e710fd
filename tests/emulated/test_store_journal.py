"""The journal of the offline store on real SQLite files: numbering, the hash chain (against
the vectors of docs/offline-store.md §5.6, computed there with ``sha256sum``), tampering found
with its seq, acknowledgement and pruning, encrypted personal fields, the audit of their reads,
the size cap.

Tampering is done with a second, raw ``sqlite3`` connection, as an attacker would.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import KEY, NOON, TOKEN, Clock, raw, write_old_journal_rows

from offline_store import (
    ChainReport,
    JournalEntry,
    JournalError,
    JournalRow,
    Store,
)
from offline_store.chain import canonical_bytes, chain_hash
from offline_store.db import GENESIS_HASH

pytestmark = pytest.mark.emulated


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", journal_key=KEY, clock=clock) as opened:
        yield opened


def ride(amount: int | None = 200, **changes: Any) -> JournalEntry:
    fields = {
        "scenario": "transit",
        "catalogue_item": "0301",
        "credential_token": TOKEN,
        "outcome": "accept",
        "reason_code": "ok",
        "amount": amount,
        "terminal_id": "440100-T0001",
    }
    fields.update(changes)
    return JournalEntry(**fields)


def test_the_serialisation_matches_the_documented_vectors() -> None:
    # docs/offline-store.md §5.6, hashes computed there with sha256sum
    first = JournalRow(
        seq=1,
        uuid="3f1c2a9e-8b4d-4e6f-9a1b-2c3d4e5f6a7b",
        monotonic_ns=123456789000,
        scenario="transit",
        catalogue_item="0301",
        credential_token=TOKEN,
        outcome="accept",
        reason_code="ok",
        amount=200,
        personal_fields=(),
        prev_hash=GENESIS_HASH,
        hash="",
        uploaded=False,
        terminal_id="440100-T0001",
        wall_time_us=1795953600000000,
    )
    assert first.canonical() == (
        b'{"amount":"200","catalogue_item":"0301","credential_token":"'
        + TOKEN.encode()
        + b'","monotonic_ns":"123456789000","outcome":"accept","personal_ct":null,'
        b'"personal_fields":[],"reason_code":"ok","scenario":"transit","seq":"1",'
        b'"terminal_id":"440100-T0001","uuid":"3f1c2a9e-8b4d-4e6f-9a1b-2c3d4e5f6a7b",'
        b'"v":"sscard-journal/1","wall_time_us":"1795953600000000"}'
    )
    first_hash = "54f56ac17782ff0520b6f9388f9a421cc6cdcf8676eba6501a47b5ddf234c588"
    assert chain_hash(GENESIS_HASH, first.canonical()) == first_hash
    second = JournalRow(
        seq=2,
        uuid="0b7e5d2c-1a3f-4c8e-b6d4-9e8f7a6b5c4d",
        monotonic_ns=123457789000,
        scenario="hotel",
        catalogue_item=None,
        credential_token=TOKEN,
        outcome="refuse",
        reason_code="deny_lost",
        amount=None,
        personal_fields=("name", "ssn"),
        prev_hash=first_hash,
        hash="",
        uploaded=False,
        terminal_id="440100-T0001",
        wall_time_us=1795953601500000,
        personal_ciphertext=bytes(range(12)) + b"\x11" * 24,
    )
    assert (
        chain_hash(first_hash, second.canonical())
        == "653dad818c0a9b7318b09122e04261bd218d0553e48b5792d53e77d3b745a0bb"
    )


def test_appended_rows_are_numbered_timed_and_chained(tmp_path, clock) -> None:
    ticks = iter(range(1_000, 10_000, 1_000))
    path = tmp_path / "store.db"
    with Store.open(path, journal_key=KEY, clock=clock, monotonic=lambda: next(ticks)) as store:
        rows = []
        for amount in (100, None, 300):
            rows.append(store.journal.append(ride(amount)))
            clock.now += 1.25
    assert [r.seq for r in rows] == [1, 2, 3]
    assert [r.wall_time for r in rows] == [NOON, NOON + 1.25, NOON + 2.5]
    assert [r.monotonic_ns for r in rows] == [1_000, 2_000, 3_000]
    assert rows[0].prev_hash == "0" * 64
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert len({r.uuid for r in rows}) == 3
    assert all(r.uuid[14] == "4" and not r.uploaded for r in rows)
    with Store.open(path, journal_key=KEY) as reopened:
        assert list(reopened.journal.rows()) == rows
        assert list(reopened.journal.rows(after_seq=1, limit=1)) == rows[1:2]
        assert reopened.journal.last() == rows[2]
        assert reopened.journal.verify_chain().ok


def test_the_stored_hash_is_the_documented_formula(store) -> None:
    row = store.journal.append(ride(personal={"name": "张三", "ssn": "440106199003071234"}))
    # recompute from the documented rule, not through the store's own serialiser
    record = {
        "v": "sscard-journal/1",
        "seq": "1",
        "uuid": row.uuid,
        "wall_time_us": str(round(NOON * 1e6)),
        "monotonic_ns": str(row.monotonic_ns),
        "scenario": "transit",
        "catalogue_item": "0301",
        "credential_token": TOKEN,
        "outcome": "accept",
        "reason_code": "ok",
        "amount": "200",
        "terminal_id": "440100-T0001",
        "personal_fields": ["name", "ssn"],
        "personal_ct": base64.b64encode(row.personal_ciphertext or b"").decode(),
    }
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert row.hash == hashlib.sha256(("0" * 64 + text).encode()).hexdigest()
    assert canonical_bytes(row.record()) == text.encode()


def journal_of(path: Path, rows: int) -> list[JournalRow]:
    with Store.open(path, journal_key=KEY) as store:
        return [store.journal.append(ride(100 + n)) for n in range(rows)]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "good_rows", "problem"),
    [
        ("UPDATE journal SET amount = 1 WHERE seq = 5", 5, 4, "hash does not match"),
        ("UPDATE journal SET outcome = 'refuse' WHERE seq = 1", 1, 0, "hash does not match"),
        ("UPDATE journal SET prev_hash = hash WHERE seq = 3", 3, 2, "prev_hash does not match"),
        ("DELETE FROM journal WHERE seq = 5", 5, 4, "row 5 is missing"),
        ("DELETE FROM journal WHERE seq >= 7", 7, 6, "rows 7…8 are missing"),
        ("UPDATE journal_state SET last_hash = 'x'", 8, 8, "does not match the journal head"),
        ("UPDATE journal SET seq = 9 WHERE seq = 8", 8, 7, "row 8 is missing"),
        ("UPDATE journal_state SET last_seq = 7", 8, 8, "row 8 is beyond the journal head"),
        ("UPDATE journal_state SET anchor_seq = 2", 1, 0, "at or before the prune anchor"),
    ],
)
def test_tampering_is_reported_with_its_seq(tmp_path, tamper, bad_seq, good_rows, problem) -> None:
    path = tmp_path / "store.db"
    journal_of(path, 8)
    with raw(path) as conn:
        conn.execute(tamper)
    with Store.open(path, journal_key=KEY) as store:
        report = store.journal.verify_chain()
    assert not report.ok
    assert (report.first_bad_seq, report.rows) == (bad_seq, good_rows)
    assert problem in (report.problem or "")


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(tmp_path) -> None:
    path = tmp_path / "store.db"
    rows = journal_of(path, 8)
    forged = JournalRow(**{**_fields(rows[4]), "amount": 1})
    forged_hash = chain_hash(forged.prev_hash, forged.canonical())
    with raw(path) as conn:
        conn.execute("UPDATE journal SET amount = 1, hash = ? WHERE seq = 5", (forged_hash,))
    with Store.open(path, journal_key=KEY) as store:
        report = store.journal.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert report.problem == "prev_hash does not match the previous row's hash"


def _fields(row: JournalRow) -> dict:
    return {name: getattr(row, name) for name in JournalRow.__dataclass_fields__}


def test_prune_keeps_the_chain_verifiable_and_seq_is_never_reused(tmp_path) -> None:
    path = tmp_path / "store.db"
    rows = journal_of(path, 10)
    with Store.open(path, journal_key=KEY) as store:
        journal = store.journal
        assert journal.acknowledge(6) == 6
        assert journal.acknowledge(6) == 0
        assert journal.acknowledge(3) == 0
        assert [r.seq for r in journal.pending(10)] == [7, 8, 9, 10]
        assert [r.uploaded for r in journal.rows()] == [True] * 6 + [False] * 4
        assert journal.prune() == 6
        assert journal.prune() == 0
        assert [r.seq for r in journal.rows()] == [7, 8, 9, 10]
        assert journal.verify_chain() == ChainReport(True, 4)
        eleventh = journal.append(ride())
        assert (eleventh.seq, eleventh.prev_hash) == (11, rows[-1].hash)
        journal.acknowledge(11)
        assert journal.prune() == 5
        assert (journal.last(), journal.count(), journal.pending(5)) == (None, 0, [])
        assert journal.verify_chain().ok
    with Store.open(path, journal_key=KEY) as store:
        twelfth = store.journal.append(ride())
        assert (twelfth.seq, twelfth.prev_hash) == (12, eleventh.hash)
        assert store.journal.verify_chain().ok


def test_acknowledging_beyond_the_last_row_is_refused(store) -> None:
    store.journal.append(ride())
    with pytest.raises(JournalError, match="cannot acknowledge seq 2: the journal ends at 1"):
        store.journal.acknowledge(2)


def test_prune_refuses_acknowledged_rows_that_are_not_marked_uploaded(tmp_path) -> None:
    path = tmp_path / "store.db"
    journal_of(path, 4)
    with Store.open(path, journal_key=KEY) as store:
        store.journal.acknowledge(3)
    with raw(path) as conn:
        conn.execute("UPDATE journal SET uploaded = 0 WHERE seq = 2")
    with Store.open(path, journal_key=KEY) as store:
        with pytest.raises(JournalError, match="nothing pruned"):
            store.journal.prune()
        assert store.journal.count() == 4
        assert [r.seq for r in store.journal.rows()] == [1, 2, 3, 4]


def test_personal_fields_are_never_in_clear_in_the_file(tmp_path) -> None:
    path = tmp_path / "store.db"
    personal = {"name": "欧阳锋华", "ssn": "440106199003071234", "address": "Dongfeng Road 88"}
    secrets = [value.encode("utf-8") for value in personal.values()]
    with Store.open(path, journal_key=KEY) as store:
        for _ in range(3):
            store.journal.append(ride(scenario="hotel-checkin-visible", personal=personal))
        on_disk = path.read_bytes() + path.with_name(path.name + "-wal").read_bytes()
        assert b"hotel-checkin-visible" in on_disk  # the search does see the rows' text
        assert b"address" in on_disk  # field names are in clear, by design
        for secret in secrets:
            assert secret not in on_disk
    after_close = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"hotel-checkin-visible" in after_close
    for secret in secrets:
        assert secret not in after_close


def test_reading_personal_fields_decrypts_and_leaves_an_audit_row(store, clock) -> None:
    row = store.journal.append(ride(personal={"ssn": "440106199003071234", "name": "张三"}))
    assert row.personal_fields == ("name", "ssn")
    clock.now += 60
    values = store.journal.read_personal(row.seq, who="operator:42", purpose="dispute 17")
    assert values == {"ssn": "440106199003071234", "name": "张三"}
    audit = store.audit.rows()
    assert len(audit) == 1
    assert (audit[0].who, audit[0].terminal_id, audit[0].scenario) == (
        "operator:42",
        "440100-T0001",
        "transit",
    )
    assert (audit[0].fields, audit[0].purpose) == (("name", "ssn"), "dispute 17")
    assert audit[0].ts == dt.datetime.fromtimestamp(NOON + 60, dt.UTC)
    store.journal.read_personal(row.seq, who="sync")
    assert store.audit.rows(limit=1)[0].purpose == "journal row 1"


def test_personal_fields_need_a_journal_key(tmp_path) -> None:
    with Store.open(tmp_path / "store.db") as store:
        with pytest.raises(JournalError, match="no journal key"):
            store.journal.append(ride(personal={"name": "张三"}))
        assert store.journal.count() == 0
        plain = store.journal.append(ride())
        assert (plain.seq, plain.personal_fields, plain.personal_ciphertext) == (1, (), None)
        with pytest.raises(JournalError, match="no journal key"):
            store.journal.read_personal(1, who="operator:1")


def test_a_wrong_key_or_a_moved_ciphertext_does_not_decrypt(tmp_path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path, journal_key=KEY) as store:
        store.journal.append(ride(personal={"name": "张三"}))
        store.journal.append(ride(personal={"name": "李四"}))
    with Store.open(path, journal_key=bytes(32)) as store:
        with pytest.raises(JournalError, match="do not decrypt"):
            store.journal.read_personal(1, who="operator:1")
        assert store.audit.rows() == []  # nothing was read, nothing audited
    with raw(path) as conn:
        conn.execute(
            "UPDATE journal SET personal_ct = (SELECT personal_ct FROM journal WHERE seq = 1) "
            "WHERE seq = 2"
        )
    with Store.open(path, journal_key=KEY) as store:
        with pytest.raises(JournalError, match="journal row 2: personal fields do not decrypt"):
            store.journal.read_personal(2, who="operator:1")
        assert store.journal.verify_chain().first_bad_seq == 2
        with pytest.raises(JournalError, match="does not exist"):
            store.journal.read_personal(9, who="operator:1")


def test_over_the_cap_nothing_is_dropped_and_the_alarm_says_so(tmp_path) -> None:
    with Store.open(tmp_path / "store.db", journal_cap_rows=5) as store:
        for _ in range(5):
            store.journal.append(ride())
        assert store.journal.alarm() is None
        for _ in range(2):
            store.journal.append(ride())
        assert store.journal.alarm() == "journal holds 7 rows, cap 5: sync needed"
        assert [r.seq for r in store.journal.rows()] == list(range(1, 8))
        store.journal.acknowledge(4)
        store.journal.prune()
        assert store.journal.alarm() is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"credential_token": "D2143569X"}, "never a card number"),
        ({"credential_token": TOKEN.upper()}, "never a card number"),
        ({"outcome": "maybe"}, "outcome must be one of"),
        ({"amount": "200"}, "amount must be an integer"),
        ({"amount": True}, "amount must be an integer"),
        ({"scenario": ""}, "scenario must not be empty"),
        ({"reason_code": "ok\nforged"}, "reason_code must not hold control characters"),
        ({"terminal_id": "T\ud800"}, "terminal_id is not valid Unicode"),
        ({"personal": {"440106199003071234": "x"}}, "personal field names"),
        ({"personal": {"name": 3}}, "personal field name must be a string"),
    ],
)
def test_a_malformed_entry_is_refused_and_nothing_is_written(store, changes, problem) -> None:
    with pytest.raises(JournalError) as caught:
        store.journal.append(ride(**changes))
    assert problem in str(caught.value)
    assert "440106199003071234" not in str(caught.value)
    assert store.journal.count() == 0
    assert store.journal.append(ride()).seq == 1


def test_count_filters_by_scenario_outcome_and_time(store, clock) -> None:
    store.journal.append(ride())
    clock.now += 10
    store.journal.append(ride(outcome="refuse", reason_code="deny_lost"))
    store.journal.append(ride(scenario="gate"))
    clock.now += 10
    store.journal.append(ride())
    assert store.journal.count() == 4
    assert store.journal.count(scenario="transit") == 3
    assert store.journal.count(scenario="transit", outcome="accept") == 2
    assert store.journal.count(scenario="transit", since=NOON + 10) == 2
    assert store.journal.count(since=NOON + 20) == 1


# --- flags (schema 3) -----------------------------------------------------------------------


def test_a_flagged_row_matches_its_documented_vector_and_an_unflagged_row_is_unchanged() -> None:
    # docs/offline-store.md §5.6 row 3, computed there with sha256sum
    row2_hash = "653dad818c0a9b7318b09122e04261bd218d0553e48b5792d53e77d3b745a0bb"
    third = JournalRow(
        seq=3,
        uuid="7c2e9f40-5d1b-4a3e-8f6c-1b2a3c4d5e6f",
        monotonic_ns=123459289000,
        scenario="transit",
        catalogue_item="0301",
        credential_token=TOKEN,
        outcome="accept",
        reason_code="ok",
        amount=200,
        personal_fields=(),
        prev_hash=row2_hash,
        hash="",
        uploaded=False,
        terminal_id="440100-T0001",
        wall_time_us=1795953603000000,
        flags=("stale_list:catalogue", "stale_list:deny_list"),
    )
    assert b'"flags":["stale_list:catalogue","stale_list:deny_list"],' in third.canonical()
    assert (
        chain_hash(row2_hash, third.canonical())
        == "0f6d1dbe632e7ae0f810b86a04530296f5559363d6b2147022dbfb1f629a3d80"
    )
    unflagged = dataclasses.replace(third, flags=())
    assert "flags" not in unflagged.record() and b"flags" not in unflagged.canonical()


def test_flags_are_stored_sorted_hashed_and_read_back(tmp_path, clock) -> None:
    with Store.open(tmp_path / "store.db", journal_key=KEY, clock=clock) as store:
        plain = store.journal.append(ride())
        flagged = store.journal.append(ride(flags=("stale_list:deny_list", "online:catalogue")))
        assert plain.flags == () and flagged.flags == ("online:catalogue", "stale_list:deny_list")
        assert [r.flags for r in store.journal.rows()] == [(), flagged.flags]
        assert flagged.record()["flags"] == ["online:catalogue", "stale_list:deny_list"]
        assert store.journal.verify_chain().ok
    with raw(tmp_path / "store.db") as conn:  # a flag edited behind the store's back
        conn.execute("UPDATE journal SET flags = '[\"online:catalogue\"]' WHERE seq = 2")
    with Store.open(tmp_path / "store.db", journal_key=KEY, clock=clock) as store:
        report = store.journal.verify_chain()
    assert not report.ok and report.first_bad_seq == 2


@pytest.mark.parametrize(
    "flags",
    [("Stale",), ("stale list",), ("a:b:c",), ("x",) * 2, tuple(f"f{n}" for n in range(17)), "x"],
)
def test_malformed_flags_are_refused(store, flags) -> None:
    with pytest.raises(JournalError, match="flag"):
        store.journal.append(ride(flags=flags))
    assert store.journal.count() == 0


def test_a_version_2_file_gains_flags_and_keeps_its_chain(tmp_path, clock) -> None:
    path = tmp_path / "store.db"
    write_old_journal_rows(path, (100, None, 300), version=2)
    with Store.open(path, journal_key=KEY, clock=clock) as store:
        assert [r.flags for r in store.journal.rows()] == [(), (), ()]
        store.journal.append(ride(flags=("stale_list:deny_list",)))
        assert store.journal.verify_chain() == ChainReport(True, 4)
