"""Day counters on real store files: raised with the journal row that counts, kept when the
journal is pruned, dropped when a new day starts, seeded from the journal by schema 4."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import KEY, NOON, TOKEN, Clock, raw, write_old_journal_rows

from offline_store import JournalEntry, JournalError, Store
from offline_store.daycount import local_day

pytestmark = pytest.mark.emulated

DAY = 86_400


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", journal_key=KEY, clock=clock) as opened:
        yield opened


def entry(outcome: str = "accept") -> JournalEntry:
    return JournalEntry("gate", "0501", TOKEN, outcome, "ok", None, terminal_id="T")


def test_a_counter_rises_with_its_row_and_outlives_the_pruned_journal(
    store: Store, clock: Clock
) -> None:
    today = local_day(clock.now)
    for _ in range(3):
        store.journal.append(entry(), counts=("entries:gate", f"meals:gate:{TOKEN}"))
    store.journal.append(entry("refuse"))  # counts nothing
    assert store.day_counts.get("entries:gate", today) == 3
    assert store.day_counts.get(f"meals:gate:{TOKEN}", today) == 3
    assert store.day_counts.get("entries:other", today) == 0
    store.journal.acknowledge(4)
    assert store.journal.prune() == 4
    assert store.day_counts.get("entries:gate", today) == 3


def test_a_new_day_starts_from_zero_and_drops_the_old_days(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "store.db"
    with Store.open(path, journal_key=KEY, clock=clock) as store:
        first = local_day(clock.now)
        store.journal.append(entry(), counts=("entries:gate",))
        clock.now += DAY
        second = local_day(clock.now)
        assert store.day_counts.get("entries:gate", second) == 0
        store.journal.append(entry(), counts=("entries:gate",))
        assert store.day_counts.get("entries:gate", second) == 1
        assert store.day_counts.get("entries:gate", first) == 0
    with raw(path) as conn:
        assert conn.execute("SELECT day FROM day_count").fetchall() == [(second.isoformat(),)]


@pytest.mark.parametrize(
    "counts",
    [("",), ("a\nb",), ("x" * 513,), ("k", "k"), "entries:gate", (7,)],
    ids=["empty", "newline", "long", "twice", "a-string", "not-text"],
)
def test_a_malformed_counter_key_writes_nothing(store: Store, counts: object) -> None:
    with pytest.raises(JournalError, match="day-counter key"):
        store.journal.append(entry(), counts=counts)  # type: ignore[arg-type]
    assert store.journal.count() == 0


def test_schema_4_seeds_the_counters_from_the_accepted_rows_held(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_old_journal_rows(path, [200, 100, None], version=3)  # the schema before the counters
    with Store.open(path, journal_key=KEY) as store:
        assert store.day_counts.get("entries:transit", local_day(NOON + 1)) == 3
        assert store.journal.verify_chain().ok  # the rows themselves are untouched
