"""A deny-list delta applied to the active generation in place (:mod:`offline_store.denylist`).

Set-based, for speed at 10^7 entries (issue 16: a 100 k delta ≤ 2 s): the operations are
staged in file order, copied into a table keyed by hash, and applied by one statement each
(undo rows, removals, additions) walking the entries' B-tree in hash order, as the snapshot
import does: one pass over the pages a delta touches instead of a random page per operation.
A bad file gets the error that applying its lines one by one, in file order, would have met
first, and changes nothing (the caller's transaction is rolled back).
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from offline_store.denyfile import DenyHeader, delta_entry, entry_lines, line_error
from offline_store.errors import DenyListError

__all__ = ["BATCH_ROWS", "PROGRESS_EVERY", "Incoming", "Progress", "apply_delta", "stage_entries"]

BATCH_ROWS = 10_000  # rows per executemany when staging a file's entries
PROGRESS_EVERY = 10_000

Progress = Callable[[int, int], None]
"""``progress(done, total)``: entries applied so far, entries in the file."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A deny-list file on its way in: what a snapshot's insert and a delta's apply read.

    :param header: the file's header
    :param lines: the file, positioned after the header
    :param progress: called every :data:`PROGRESS_EVERY` entries staged, and once at the end
    """

    header: DenyHeader
    lines: io.BytesIO
    progress: Progress | None = None

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """The file's entry lines, numbered (:func:`offline_store.denyfile.entry_lines`).

        :raises DenyListError: more or fewer entry lines than the header says
        """
        return entry_lines(self.lines, self.header.entries)

    def report(self, done: int) -> None:
        """Tell ``progress``, if any, that ``done`` of the file's entries are through.

        :param done: entries staged or applied so far
        :raises: what ``progress`` raises
        """
        if self.progress is not None:
            self.progress(done, self.header.entries)


def apply_delta(conn: sqlite3.Connection, gen: int, incoming: Incoming) -> int:
    """Apply a delta's operations to generation ``gen``, recording in ``deny_undo`` the state
    each replaced; return the change in the listed count.

    :param conn: the import's transaction
    :param gen: the active generation
    :param incoming: the delta
    :raises DenyListError: naming the first bad line in file order (:func:`_delta_error`)
    """
    header = incoming.header
    conn.execute("DROP TABLE IF EXISTS temp.deny_delta")
    conn.execute("DROP TABLE IF EXISTS temp.deny_delta_ops")
    conn.execute(
        "CREATE TEMP TABLE deny_delta (line INTEGER PRIMARY KEY, card_hash BLOB NOT NULL, "
        "op TEXT NOT NULL, reason TEXT NOT NULL, effective INTEGER NOT NULL)"
    )
    count = 0
    bad: DenyListError | None = None
    try:
        count = stage_entries(
            conn,
            "INSERT INTO temp.deny_delta VALUES (?, ?, ?, ?, ?)",
            _operations(incoming),
            incoming,
        )
    except DenyListError as exc:  # reported unless an earlier line is wrong as well
        bad = exc
    conn.execute(
        "CREATE TEMP TABLE deny_delta_ops (card_hash BLOB PRIMARY KEY, line INTEGER NOT NULL, "
        "op TEXT NOT NULL, reason TEXT NOT NULL, effective INTEGER NOT NULL) WITHOUT ROWID"
    )
    try:
        conn.execute(
            "INSERT INTO temp.deny_delta_ops SELECT card_hash, line, op, reason, effective "
            "FROM temp.deny_delta ORDER BY card_hash"
        )
    except sqlite3.IntegrityError:
        raise _delta_error(conn, gen, header) from None
    # the state each operation replaces, for a rollback; a remove of an absent hash is an
    # error, found here before anything else changes
    conn.execute(
        "INSERT INTO deny_undo (version, card_hash, op, old_reason, old_effective) "
        "SELECT ?, d.card_hash, d.op, e.reason, e.effective FROM temp.deny_delta_ops AS d "
        "LEFT JOIN deny_entry AS e ON e.gen = ? AND e.card_hash = d.card_hash",
        (header.version, gen),
    )
    missing = _first_missing(conn, header.version)
    if missing is not None:  # no hash twice: every remove met its base state
        raise _not_listed(missing, header)
    if bad is not None:
        raise bad
    removed = conn.execute(
        "DELETE FROM deny_entry WHERE gen = ? AND card_hash IN "
        "(SELECT card_hash FROM temp.deny_delta_ops WHERE op = 'remove')",
        (gen,),
    ).rowcount
    conn.execute(
        "INSERT INTO deny_entry (gen, card_hash, reason, effective) "
        "SELECT ?, card_hash, reason, effective FROM temp.deny_delta_ops WHERE op = 'add' "
        "ON CONFLICT (gen, card_hash) "
        "DO UPDATE SET reason = excluded.reason, effective = excluded.effective",
        (gen,),
    )
    added = conn.execute(
        "SELECT count(*) FROM deny_undo WHERE version = ? AND op = 'add' AND old_reason IS NULL",
        (header.version,),
    ).fetchone()[0]
    conn.execute("DROP TABLE temp.deny_delta")
    conn.execute("DROP TABLE temp.deny_delta_ops")
    incoming.report(count)
    return int(added) - int(removed)


def stage_entries(
    conn: sqlite3.Connection,
    insert: str,
    rows: Iterable[tuple[Any, ...]],
    incoming: Incoming,
) -> int:
    """Stage a file's entries in a temporary table, :data:`BATCH_ROWS` at a time; return how
    many. The rows read before a bad line are staged before its error goes on: the delta
    looks among them for an earlier error to report instead.

    :param conn: the import's transaction
    :param insert: the ``INSERT`` statement of one row
    :param rows: the rows, in file order
    :param incoming: the file (its ``progress`` is told every :data:`PROGRESS_EVERY` rows)
    :raises DenyListError: a bad line, from ``rows``
    """
    batch: list[tuple[Any, ...]] = []
    count = 0
    try:
        for row in rows:
            batch.append(row)
            count += 1
            if len(batch) == BATCH_ROWS:
                conn.executemany(insert, batch)
                batch.clear()
            if count % PROGRESS_EVERY == 0:
                incoming.report(count)
    finally:
        conn.executemany(insert, batch)
    return count


def _operations(incoming: Incoming) -> Iterator[tuple[int, bytes, str, str, int]]:
    """The delta's operations as rows of ``temp.deny_delta``, in file order.

    :raises DenyListError: at the first unreadable line
    """
    for line_no, line in incoming.entries():
        op, card, reason, effective = delta_entry(line, line_no)
        yield line_no, card, op, reason, effective


def _first_missing(conn: sqlite3.Connection, version: int) -> int | None:
    """The first line removing a hash the base version does not list."""
    found = conn.execute(
        "SELECT min(d.line) FROM deny_undo AS u JOIN temp.deny_delta_ops AS d "
        "ON d.card_hash = u.card_hash WHERE u.version = ? AND u.op = 'remove' "
        "AND u.old_reason IS NULL",
        (version,),
    ).fetchone()[0]
    return None if found is None else int(found)


def _delta_error(conn: sqlite3.Connection, gen: int, header: DenyHeader) -> DenyListError:
    """The error a line-by-line apply would have met first, when a hash has two lines:
    that second line, or a remove before it of a hash the base version does not list
    (before that second line, every hash is still at its base state). An unreadable line,
    if any, comes after every staged line.
    """
    twice = conn.execute(
        "SELECT min(line) FROM (SELECT line, ROW_NUMBER() OVER "
        "(PARTITION BY card_hash ORDER BY line) AS n FROM temp.deny_delta) WHERE n = 2"
    ).fetchone()[0]
    missing = conn.execute(
        "SELECT min(d.line) FROM temp.deny_delta AS d WHERE d.op = 'remove' "
        "AND d.line < ? AND NOT EXISTS (SELECT 1 FROM deny_entry AS e "
        "WHERE e.gen = ? AND e.card_hash = d.card_hash)",
        (twice, gen),
    ).fetchone()[0]
    if missing is not None:
        return _not_listed(missing, header)
    return line_error(twice, "the same hash appears twice in this delta")


def _not_listed(line_no: int, header: DenyHeader) -> DenyListError:
    return line_error(
        line_no, f"remove of a hash that is not listed in version {header.base_version}"
    )
