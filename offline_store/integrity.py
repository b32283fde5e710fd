"""The journal file's integrity: the hash chain walked from the anchor, SQLite's
``quick_check``, and what a damaged file still yields (docs/offline-store.md §5.8).

:class:`offline_store.journal.Journal` calls these with its store, the columns it selects and
its row decoder (which opens a payment with the journal key); its ``verify_chain``,
``check_sound`` and ``readable_rows`` are the entry points. A damaged file never raises here
past the walk's start: it is a break at the first row the walk cannot vouch for, or a part the
salvage steps over.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from offline_store.chain import ChainReport, JournalRow, link_problem
from offline_store.db import StoreDb
from offline_store.errors import JournalError, StoreError

__all__ = ["RowDecoder", "check_sound", "readable_rows", "verify_chain"]

#: a journal row from the selected columns (:meth:`offline_store.journal.Journal._row`)
RowDecoder = Callable[[sqlite3.Row | tuple[Any, ...]], JournalRow]
#: what reading a damaged part raises: a page SQLite cannot read, or columns that do not decode
_UNREADABLE = (StoreError, sqlite3.DatabaseError, JournalError, ValueError, TypeError)


def verify_chain(db: StoreDb, columns: str, decode: RowDecoder) -> ChainReport:
    """Walk the rows from the anchor and check every link and hash, and the head.

    A declared gap (§5.8) continues the chain over exactly the seqs it names lost, and the
    report lists it (``gaps``): it is accepted, never passed over silently.

    The thread lock is held for the walk so the rows do not change under it. A row that
    does not decode (damaged JSON in its columns) or a page SQLite cannot read is a break
    at the first row not checked, never an exception: the rows before it are sound.

    :param db: the open store
    :param columns: the journal columns ``decode`` takes, as a ``SELECT`` list
    :param decode: the journal's row decoder
    :raises StoreError: the database failed before the walk (the file cannot be read)
    """
    with db.read() as conn:
        state = conn.execute(
            "SELECT last_seq, last_hash, anchor_seq, anchor_hash FROM journal_state"
        ).fetchone()
        last_seq, last_hash, anchor_seq, anchor_hash = state
        expected_seq, expected_prev, checked = anchor_seq + 1, anchor_hash, 0
        gaps: list[tuple[int, int, int]] = []
        cursor = conn.execute(f"SELECT {columns} FROM journal ORDER BY seq")
        while True:
            try:
                raw = cursor.fetchone()
                if raw is None:
                    break
                row = decode(raw)
            except sqlite3.DatabaseError as exc:
                return ChainReport(
                    False,
                    checked,
                    expected_seq,
                    f"the file is damaged from here: {exc}",
                    tuple(gaps),
                )
            except JournalError as exc:  # a payment that does not decrypt
                return ChainReport(False, checked, expected_seq, str(exc), tuple(gaps))
            except (ValueError, TypeError, IndexError) as exc:  # JSON that does not decode
                return ChainReport(
                    False,
                    checked,
                    expected_seq,
                    f"row does not decode: {type(exc).__name__}",
                    tuple(gaps),
                )
            problem = link_problem(row, expected_seq, expected_prev)
            if problem is not None:
                return ChainReport(False, checked, *problem, gaps=tuple(gaps))
            if row.lost is not None:
                gaps.append((*row.lost, row.seq))
            expected_seq, expected_prev, checked = row.seq + 1, row.hash, checked + 1
    if expected_seq - 1 > last_seq:
        return ChainReport(
            False, checked, last_seq + 1, f"row {last_seq + 1} is beyond the journal head"
        )
    if expected_seq - 1 < last_seq:
        return ChainReport(
            False,
            checked,
            expected_seq,
            f"rows {expected_seq}…{last_seq} are missing (the journal head is {last_seq})",
        )
    if expected_prev != last_hash:
        return ChainReport(
            False, checked, last_seq, "the last row's hash does not match the journal head"
        )
    return ChainReport(True, checked, gaps=tuple(gaps))


def check_sound(db: StoreDb, columns: str, decode: RowDecoder) -> ChainReport:
    """What the daemon checks at start: SQLite's ``quick_check`` of the file, then the
    chain (:func:`verify_chain`). A damaged file is reported as a break at the first row
    the chain walk cannot vouch for (the file's first seq when the walk finds none).

    :param db: the open store
    :param columns: the journal columns ``decode`` takes, as a ``SELECT`` list
    :param decode: the journal's row decoder
    :raises: nothing: a file that cannot be read at all is a break at the first row held
    """
    try:
        with db.read() as conn:
            found = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except StoreError as exc:
        found = [str(exc)]
    try:
        report = verify_chain(db, columns, decode)
    except StoreError as exc:
        report = ChainReport(False, 0, None, f"the journal cannot be read: {exc}")
    if found == ["ok"] or not report.ok:
        return report
    damaged = "the file is damaged: " + "; ".join(found[:2])
    return ChainReport(False, report.rows, None, damaged, report.gaps)


def readable_rows(
    db: StoreDb, columns: str, decode: RowDecoder, after_seq: int, up_to_seq: int
) -> Iterator[JournalRow]:
    """The rows after ``after_seq`` (up to ``up_to_seq``) that SQLite can still read from a
    damaged file, in seq order, stepping over the parts it cannot (docs/offline-store.md
    §5.8: what a recovery salvages past the damage). Nothing here is checked against the
    chain: :func:`offline_store.recovery.plan_recovery` does that.

    :param db: the open store
    :param columns: the journal columns ``decode`` takes, as a ``SELECT`` list
    :param decode: the journal's row decoder
    :param after_seq: the last row the chain walk vouched for
    :param up_to_seq: the journal's last seq
    :raises: nothing: a part that cannot be read is passed over
    """
    cursor = after_seq
    while cursor < up_to_seq:
        last = cursor
        try:
            with db.read() as conn:
                found = conn.execute(
                    f"SELECT {columns} FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq",
                    (cursor, up_to_seq),
                )
                for raw in found:
                    last = raw[0]
                    yield decode(raw)
            return
        except _UNREADABLE:
            cursor = max(last, _readable_after(db, columns, decode, last, up_to_seq))


def _readable_after(
    db: StoreDb, columns: str, decode: RowDecoder, damaged_after: int, up_to_seq: int
) -> int:
    """The smallest seq from ``damaged_after + 1`` on after which rows read again (a
    binary search: reading after any seq inside a damaged part fails)."""
    lo, hi = damaged_after + 1, up_to_seq
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            with db.read() as conn:
                raw = conn.execute(
                    f"SELECT {columns} FROM journal WHERE seq > ? ORDER BY seq LIMIT 1", (mid,)
                ).fetchone()
                if raw is not None:
                    decode(raw)
            hi = mid
        except _UNREADABLE:
            lo = mid + 1
    return lo
