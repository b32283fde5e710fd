"""The declared gap (docs/offline-store.md §5.8, docs/sync.md §5.9): the row a recovery writes
for the seqs it lost. The terminal's chain walk accepts it over exactly those seqs and says so;
a rebuild writes it into a new file and keeps the old one; the platform stores it, moves its
cursor over the lost seqs, and refuses every way of using a gap to hide a row."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_support import LivePlatform, chain_rows, live_platform, record, seal

from offline_store import JournalEntry, Store
from offline_store.chain import canonical_bytes, chain_hash, declared_gap
from offline_store.errors import JournalError
from offline_store.rebuild import rebuild_store
from offline_store.recovery import plan_recovery

pytestmark = pytest.mark.emulated

KEY = bytes(range(32))
TOKEN = hashlib.sha256(b"synthetic card").hexdigest()


def _entry() -> JournalEntry:
    return JournalEntry("gate", None, TOKEN, "accept", "ok", None, terminal_id="T1")


def _rebuilt(path: Path, kept_to: int, rows: int = 10) -> Store:
    """A store of ``rows`` rows rebuilt as if every row after ``kept_to`` were lost; open."""
    with Store.open(path, journal_key=KEY) as store:
        for _ in range(rows):
            store.journal.append(_entry())
        plan = plan_recovery(
            anchor_seq=0,
            kept_to=kept_to,
            kept_hash=store.journal.hash_at(kept_to),
            last_seq=rows,
            fetched=(),
        )
        rebuild_store(store, plan, terminal_id="T1", journal_key=KEY)
    return Store.open(path, journal_key=KEY)


def test_a_rebuild_declares_the_lost_seqs_and_the_chain_goes_on_over_them(tmp_path: Path) -> None:
    with _rebuilt(tmp_path / "store.db", kept_to=5) as store:
        report = store.journal.verify_chain()
        assert (report.ok, report.rows, report.gaps, report.lost_rows) == (
            True,
            6,
            ((6, 10, 11),),
            5,
        )
        gap = store.journal.last()
        assert gap is not None and (gap.seq, gap.lost, gap.uploaded) == (11, (6, 10), False)
        assert (gap.scenario, gap.outcome, gap.reason_code) == ("journal", "refuse", "journal_lost")
        assert gap.prev_hash == store.journal.hash_at(5)
        assert store.journal.count() == 6  # the lost seqs were never held
        assert store.journal.append(_entry()).seq == 12  # seqs are never reused
        assert store.journal.verify_chain().ok
        store.journal.acknowledge(12)
        assert store.journal.prune() == 7 and store.journal.count() == 0
        assert store.journal.verify_chain().ok
    [damaged] = tmp_path.glob("store.db.damaged-*")
    conn = sqlite3.connect(damaged)
    assert conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 10  # kept aside, whole
    conn.close()


def test_journal_verify_says_every_declared_gap(tmp_path: Path) -> None:
    from terminal.operator import journal_verify

    with _rebuilt(tmp_path / "store.db", kept_to=3) as store:
        answer = journal_verify(store)
    assert answer.exit_status == 0
    assert answer.out == (
        "journal chain verified: 4 rows",
        "declared gap: seqs 4-10 lost (7 rows), declared by row 11",
    )


def _tamper(path: Path, sql: str, *params: Any) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def _rehash(path: Path, seq: int, **columns: Any) -> None:
    """Change a row's columns and give it the hash of its new contents (a forger's row)."""
    with Store.open(path, journal_key=KEY) as store:
        [row] = list(store.journal.rows(after_seq=seq - 1, limit=1))
    sets = ", ".join(f"{name} = ?" for name in columns)
    _tamper(path, f"UPDATE journal SET {sets} WHERE seq = ?", *columns.values(), seq)
    with Store.open(path, journal_key=KEY) as store:
        [row] = list(store.journal.rows(after_seq=seq - 1, limit=1))
    _tamper(path, "UPDATE journal SET hash = ? WHERE seq = ?",
            chain_hash(row.prev_hash, row.canonical()), seq)  # fmt: skip


def test_a_gap_row_with_a_wrong_hash_is_a_chain_break(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _rebuilt(path, kept_to=5).close()
    _tamper(path, "UPDATE journal SET hash = ? WHERE seq = 11", "ab" * 32)
    with Store.open(path, journal_key=KEY) as store:
        report = store.journal.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 11)
    assert report.problem == "hash does not match the row's contents"


def test_a_rehashed_gap_that_skips_a_seq_or_leaves_its_form_is_a_chain_break(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    _rebuilt(path, kept_to=5).close()
    _rehash(path, 11, lost="[7, 10]")  # a well-hashed gap that would hide row 6
    with Store.open(path, journal_key=KEY) as store:
        report = store.journal.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 11)
    assert report.problem == "row 11 declares seqs 7…10 lost, not from 6"
    _rehash(path, 11, lost="[6, 10]", outcome="accept")
    with Store.open(path, journal_key=KEY) as store:
        report = store.journal.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 11)
    assert report.problem == "row 11 declares a gap but is not in the gap row's form"


def test_a_gap_row_can_only_follow_the_seqs_it_declares() -> None:
    with pytest.raises(JournalError, match="cannot declare seqs from 5 lost"):
        declared_gap(seq=5, first_lost=5, prev_hash="0" * 64, terminal_id="T1",
                     row_uuid="u", wall_time_us=0, monotonic_ns=0)  # fmt: skip


# --- the platform ------------------------------------------------------------------------------


@pytest.fixture
def live(platform_db: str | None, tmp_path: Path) -> Iterator[LivePlatform]:
    with live_platform(tmp_path, {"T1": ("gate",)}, db_url=platform_db) as running:
        yield running


def _gap(seq: int, first: int, prev_hash: str, **fields: Any) -> dict[str, Any]:
    """A gap row as a terminal uploads it (:func:`declared_gap`'s record), sealed."""
    rec = record("T1", seq, scenario="journal", outcome="refuse", reason_code="journal_lost",
                 lost=[str(first), str(seq - 1)])  # fmt: skip
    return seal({**rec, **fields}, prev_hash)


def test_the_platform_stores_a_gap_and_its_cursor_passes_the_lost_seqs(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 5)
    gap = _gap(11, 6, rows[-1]["hash"])
    after = chain_rows("T1", 1, start=12, prev_hash=gap["hash"])
    answer = client.upload([*rows, gap, *after]).json()
    assert answer == {"ack_seq": 12, "accepted": 7, "duplicates": 0, "rejected": []}
    [summary] = live.platform.verify_chains("T1")
    assert summary.ok and (summary.missing, summary.lost, summary.lost_ranges) == (0, 5, ((6, 10),))
    assert summary.rows == summary.counted == 7  # the lost seqs are no rows, counted as none
    assert client.upload([gap]).json()["duplicates"] == 1  # idempotent as any row


def test_a_gap_over_rows_the_platform_holds_is_refused(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 7)
    client.upload(rows)
    answer = client.upload([_gap(11, 6, rows[4]["hash"])]).json()
    assert answer["rejected"] == [{"seq": 11, "code": "gap_over_rows"}]
    assert answer["ack_seq"] == 7
    assert {r.seq for r in live.platform.transactions("T1")} == set(range(1, 8))


def test_a_row_in_a_declared_gap_is_refused_after_it(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 10)
    client.upload([*rows[:5], _gap(11, 6, rows[4]["hash"])])
    answer = client.upload(rows[5:7]).json()
    assert answer["rejected"] == [{"seq": 6, "code": "declared_lost"},
                                  {"seq": 7, "code": "declared_lost"}]  # fmt: skip
    assert answer["ack_seq"] == 11


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"lost": ["6", "9"]}, "bad_gap"),  # not up to seq - 1
        ({"lost": ["11", "10"]}, "bad_gap"),
        ({"outcome": "accept"}, "bad_gap"),  # a decision dressed as a gap
        ({"credential_token": TOKEN}, "bad_gap"),
    ],
)
def test_a_gap_not_in_its_form_is_refused(live, change: dict[str, Any], code: str) -> None:
    client = live.client()
    rows = chain_rows("T1", 5)
    client.upload(rows)
    answer = client.upload([_gap(11, 6, rows[4]["hash"], **change)]).json()
    assert answer["rejected"] == [{"seq": 11, "code": code}]


def test_a_gap_with_a_wrong_hash_is_refused_and_one_linked_elsewhere_is_a_chain_break(
    live,
) -> None:
    client = live.client()
    rows = chain_rows("T1", 5)
    client.upload(rows)
    gap = _gap(11, 6, rows[4]["hash"])
    answer = client.upload([{**gap, "hash": "ab" * 32}]).json()
    assert answer["rejected"] == [{"seq": 11, "code": "bad_hash"}]
    client.upload([_gap(11, 6, rows[3]["hash"])])  # links to row 4, not 5
    [summary] = live.platform.verify_chains("T1")
    assert summary.first_breaks == (11,) and not summary.ok
    [stored] = [r for r in live.platform.transactions("T1") if r.seq == 11]
    assert stored.chain_break


def test_a_gap_before_its_predecessor_arrives_holds_the_cursor_until_it_does(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 5)
    client.upload(rows[:3])
    assert client.upload([_gap(11, 6, rows[4]["hash"])]).json()["ack_seq"] == 3
    [stored] = [r for r in live.platform.transactions("T1") if r.seq == 11]
    assert stored.gap and not stored.chain_break
    assert client.upload(rows[3:5]).json()["ack_seq"] == 11
    [stored] = [r for r in live.platform.transactions("T1") if r.seq == 11]
    assert not stored.gap and not stored.chain_break
    assert live.platform.verify_chains("T1")[0].ok


def test_a_gap_row_hashes_as_the_terminal_writes_it() -> None:
    row = declared_gap(seq=11, first_lost=6, prev_hash="1" * 64, terminal_id="T1",
                       row_uuid="0b7e5d2c-1a3f-4c8e-b6d4-9e8f7a6b5c4d",
                       wall_time_us=1795953601500000, monotonic_ns=123457789000)  # fmt: skip
    assert canonical_bytes(row.record()) == (
        b'{"amount":null,"catalogue_item":null,"credential_token":"","lost":["6","10"],'
        b'"monotonic_ns":"123457789000","outcome":"refuse","personal_ct":null,'
        b'"personal_fields":[],"reason_code":"journal_lost","scenario":"journal","seq":"11",'
        b'"terminal_id":"T1","uuid":"0b7e5d2c-1a3f-4c8e-b6d4-9e8f7a6b5c4d",'
        b'"v":"sscard-journal/1","wall_time_us":"1795953601500000"}'
    )
    assert row.hash == chain_hash("1" * 64, canonical_bytes(row.record()))


def test_a_table_that_cannot_be_read_is_named_left_empty_and_its_meta_keys_dropped(
    tmp_path: Path,
) -> None:
    from terminal.recovery import recover_journal

    path = tmp_path / "store.db"
    with Store.open(path, journal_key=KEY) as store:
        store.catalogue.load_file(Path(__file__).parents[1] / "catalogue.toml")
        store.meta.set({"sync.catalogue_etag": '"v1"', "sync.synced_at": "1.0"})
        for _ in range(5):
            store.journal.append(_entry())
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'catalogue'").fetchone()
    conn.close()
    with path.open("r+b") as out:  # the catalogue's one page: a bad sector
        out.seek((root - 1) * page_size)
        out.write(bytes([0x0A]) + b"\xff" * (page_size - 1))
    (tmp_path / "store.db.recovering").write_bytes(b"a recovery that died")  # replaced

    def no_platform(after: int, up_to: int) -> list[dict[str, Any]]:
        raise AssertionError("every row is in the file: the platform is not asked")

    with Store.open(path, journal_key=KEY) as store:
        answer = recover_journal(store, fetch=no_platform, terminal_id="T1", journal_key=KEY,
                                 apply=True)  # fmt: skip
    assert answer.exit_status == 0, answer
    assert (
        answer.out[1] == "plan: 5 rows kept from the store, 0 re-fetched from the platform, 0 lost"
    )
    assert answer.out[-1] == (
        "not readable, left empty: catalogue (the next sync provisions catalogue again)"
    )
    with Store.open(path, journal_key=KEY) as store:
        assert store.journal.check_sound().ok and store.journal.count() == 5
        assert store.catalogue.items() == [] and store.catalogue.loaded_at() is None
        assert store.meta.get("sync.catalogue_etag") is None  # else the sync would skip it
        assert store.meta.get("sync.synced_at") == "1.0"
    assert not (tmp_path / "store.db.recovering").exists()


def test_a_damaged_store_of_schema_6_still_migrates_and_can_be_recovered(tmp_path: Path) -> None:
    """Schema 7 reads no journal row: a file damaged before the upgrade still opens."""
    import random
    import re

    path = tmp_path / "store.db"
    with Store.open(path, journal_key=KEY) as store:
        for _ in range(300):
            store.journal.append(_entry())
    conn = sqlite3.connect(path)
    with conn:  # back to schema 6, as an older sscard left it
        conn.execute("ALTER TABLE journal DROP COLUMN lost")
        conn.execute("ALTER TABLE journal_state DROP COLUMN lost_held")
        conn.execute("PRAGMA user_version = 6")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (marker,) = conn.execute("SELECT uuid FROM journal WHERE seq = 150").fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = path.read_bytes()
    start = next(
        at
        for found in re.finditer(re.escape(marker.encode()), data)
        if data[at := found.start() // page_size * page_size] == 0x0D
    )
    with path.open("r+b") as out:
        out.seek(start)
        out.write(random.Random(1).randbytes(page_size))
    with Store.open(path, journal_key=KEY) as store:
        report = store.journal.check_sound()
        assert not report.ok and report.first_bad_seq is not None
        assert 100 < report.first_bad_seq <= 150
