"""The operator's view of the uploaded journals: the newest rows, and every stored chain
walked again from the rows themselves (``sscard platform tx list|verify``).

The walk trusts nothing stored beside the rows: for each terminal, in seq order, it recomputes
each row's hash from its canonical record and ``prev_hash``, checks each link to the row
before (64 zeros for seq 1), lists the missing seqs between the lowest and the highest stored,
and compares the row count with the platform's counter. A declared gap (docs/sync.md §5.9)
links to the row before its first lost seq; the seqs it names are reported as declared lost,
not as missing. No personal data is read: the
credential is a keyed hash and the personal fields stay encrypted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select

from offline_store.chain import GENESIS_HASH, chain_hash
from platform_server.db import journal, journal_lost, journal_state
from platform_server.errors import NotFound

__all__ = ["ChainSummary", "TxRow", "list_rows", "verify_chains"]

REPORT_MAX = 20  # seqs listed per kind of problem in a chain summary
PAGE_ROWS = 5000


@dataclass(frozen=True, slots=True)
class TxRow:
    """A stored row as ``platform tx list`` shows it (no personal data: the credential is a
    keyed hash and the personal fields stay encrypted).

    :param terminal_id: the terminal
    :param seq: the row's seq
    :param wall_time_us: the terminal's wall clock, microseconds
    :param scenario: the scenario
    :param outcome: accept, refuse or deferred
    :param reason_code: why
    :param amount: fen, or ``None``
    :param chain_break: its ``prev_hash`` is not its predecessor's hash
    :param gap: its predecessor is missing
    """

    terminal_id: str
    seq: int
    wall_time_us: int
    scenario: str
    outcome: str
    reason_code: str
    amount: int | None
    chain_break: bool
    gap: bool


def list_rows(conn: Connection, terminal_id: str | None, limit: int) -> list[TxRow]:
    """The newest ``limit`` rows (of one terminal, or of all), oldest first.

    :param conn: a connection
    :param terminal_id: one terminal, or ``None`` for all
    :param limit: how many rows
    :raises NotFound: an unknown terminal
    """
    columns = (
        journal.c.terminal_id,
        journal.c.seq,
        journal.c.wall_time_us,
        journal.c.scenario,
        journal.c.outcome,
        journal.c.reason_code,
        journal.c.amount,
        journal.c.chain_break,
        journal.c.gap,
    )
    query = select(*columns)
    if terminal_id is not None:
        _state(conn, terminal_id)
        query = query.where(journal.c.terminal_id == terminal_id).order_by(journal.c.seq.desc())
    else:
        query = query.order_by(
            journal.c.wall_time_us.desc(), journal.c.terminal_id, journal.c.seq.desc()
        )
    fetched = conn.execute(query.limit(limit)).all()
    return [TxRow(*row) for row in reversed(fetched)]


@dataclass(frozen=True, slots=True)
class ChainSummary:
    """What ``platform tx verify`` found for one terminal, from the stored rows themselves.

    :param terminal_id: the terminal
    :param rows: rows stored
    :param counted: the platform's row counter for the terminal (equals ``rows`` unless a row
        was counted twice or lost)
    :param first_seq: the first seq the platform stored (``None``: no rows)
    :param ack_seq: the acknowledgement cursor
    :param min_seq: the lowest stored seq (0: none)
    :param max_seq: the highest stored seq (0: none)
    :param missing: seqs missing between the lowest and the highest stored
    :param missing_ranges: the first missing ranges, ``(from, to)`` inclusive
    :param chain_breaks: rows whose ``prev_hash`` is not their stored predecessor's hash
    :param bad_hashes: rows whose stored hash no longer matches their record (the database
        was edited)
    :param first_breaks: the first seqs with a chain break
    :param first_bad_hashes: the first seqs with a bad hash
    :param lost: seqs declared lost by the terminal's gap rows (accounted for, not missing)
    :param lost_ranges: the first declared-lost ranges, ``(from, to)`` inclusive
    """

    terminal_id: str
    rows: int
    counted: int
    first_seq: int | None
    ack_seq: int
    min_seq: int
    max_seq: int
    missing: int
    missing_ranges: tuple[tuple[int, int], ...]
    chain_breaks: int
    bad_hashes: int
    first_breaks: tuple[int, ...]
    first_bad_hashes: tuple[int, ...]
    lost: int = 0
    lost_ranges: tuple[tuple[int, int], ...] = ()

    @property
    def ok(self) -> bool:
        """No gap, no chain break, no bad hash, and the counter matches the rows.

        :raises: nothing
        """
        return self.rows == self.counted and not (
            self.missing or self.chain_breaks or self.bad_hashes
        )


def verify_chains(conn: Connection, terminal_id: str | None = None) -> list[ChainSummary]:
    """Walk every stored row of each terminal (or of one) and check the chain again.

    :param conn: a connection
    :param terminal_id: one terminal, or ``None`` for every terminal
    :raises NotFound: an unknown terminal
    """
    if terminal_id is not None:
        states = [_state(conn, terminal_id)]
    else:
        states = list(conn.execute(select(journal_state).order_by(journal_state.c.terminal_id)))
    return [_walk(conn, state) for state in states]


def _state(conn: Connection, terminal_id: str) -> Any:
    state = conn.execute(
        select(journal_state).where(journal_state.c.terminal_id == terminal_id)
    ).one_or_none()
    if state is None:
        raise NotFound(f"terminal {terminal_id!r} is not registered", "unknown_terminal")
    return state


def _walk(conn: Connection, state: Any) -> ChainSummary:
    rows = missing = breaks = bad = lost = 0
    ranges: list[tuple[int, int]] = []
    lost_ranges: list[tuple[int, int]] = []
    first_breaks: list[int] = []
    first_bad: list[int] = []
    min_seq = prev_seq = 0
    prev_hash = ""
    gaps = dict(
        conn.execute(
            select(journal_lost.c.seq, journal_lost.c.first_seq).where(
                journal_lost.c.terminal_id == state.terminal_id
            )
        ).all()
    )
    for seq, record, linked, digest in _stored(conn, state.terminal_id):
        rows += 1
        first_lost = gaps.get(seq)
        linked_seq = seq - 1 if first_lost is None else first_lost - 1
        if rows == 1:
            min_seq = seq
        elif linked_seq > prev_seq:
            missing += linked_seq - prev_seq
            if len(ranges) < REPORT_MAX:
                ranges.append((prev_seq + 1, linked_seq))
        if first_lost is not None:
            lost += seq - first_lost
            if len(lost_ranges) < REPORT_MAX:
                lost_ranges.append((first_lost, seq - 1))
        expected = _expected(linked_seq, prev_seq, prev_hash, rows == 1)
        if expected is not None and linked != expected:
            breaks += 1
            if len(first_breaks) < REPORT_MAX:
                first_breaks.append(seq)
        if chain_hash(linked, record.encode("utf-8")) != digest:
            bad += 1
            if len(first_bad) < REPORT_MAX:
                first_bad.append(seq)
        prev_seq, prev_hash = seq, digest
    return ChainSummary(
        terminal_id=state.terminal_id,
        rows=rows,
        counted=state.row_count,
        first_seq=state.first_seq,
        ack_seq=state.ack_seq,
        min_seq=min_seq,
        max_seq=prev_seq,
        missing=missing,
        missing_ranges=tuple(ranges),
        chain_breaks=breaks,
        bad_hashes=bad,
        first_breaks=tuple(first_breaks),
        first_bad_hashes=tuple(first_bad),
        lost=lost,
        lost_ranges=tuple(lost_ranges),
    )


def _expected(linked_seq: int, prev_seq: int, prev_hash: str, first: bool) -> str | None:
    """The hash a row must link to: 64 zeros after seq 0, the row before's when it is the one
    linked to, ``None`` when that row is not stored (a gap above the first stored row); a gap
    row declaring stored rows lost links to nothing that could match."""
    if linked_seq == 0:
        return GENESIS_HASH
    if first or linked_seq > prev_seq:
        return None
    return prev_hash if linked_seq == prev_seq else "declares stored rows lost"


def _stored(conn: Connection, terminal_id: str) -> Iterator[tuple[int, str, str, str]]:
    after = -1
    while True:
        page = conn.execute(
            select(journal.c.seq, journal.c.record, journal.c.prev_hash, journal.c.hash)
            .where(and_(journal.c.terminal_id == terminal_id, journal.c.seq > after))
            .order_by(journal.c.seq)
            .limit(PAGE_ROWS)
        ).all()
        yield from ((seq, record, linked, digest) for seq, record, linked, digest in page)
        if len(page) < PAGE_ROWS:
            return
        after = page[-1][0]
