"""Journal rows uploaded by terminals: de-duplication by (terminal, seq), hash chain checks and
the acknowledgement cursor. A batch is parsed, and every row's hash recomputed, by
:func:`platform_server.batch.parse_batch` (the wire format of one upload); the record (its
canonical bytes) is stored as uploaded, a payment object in ``journal_payment`` beside it.
For each row of a batch, in seq order (docs/sync.md §5):

* another terminal's row → rejected ``terminal_mismatch``;
* ``hash ≠ SHA-256(prev_hash ‖ canonical_bytes(record))`` → rejected ``bad_hash``;
* a seq already stored with the same hash → a duplicate (counted once, not stored again);
  with another hash → rejected ``conflict``;
* a declared gap (``lost``) that does not name ``[first, seq − 1]`` or is not in the gap
  row's fixed form → rejected ``bad_gap``;
* a seq an earlier declared gap named lost → rejected ``declared_lost``;
* a declared gap (``lost``: docs/sync.md §5.9) naming a seq the platform holds → rejected
  ``gap_over_rows``: a gap can never hide a row;
* otherwise stored, flagged ``chain_break`` when its ``prev_hash`` is not the stored hash of
  seq − 1 (or not 64 zeros for seq 1), and ``gap`` while seq − 1 is missing above the first
  seq the platform stored; a row that fills a gap clears its successor's flag and checks the
  successor's link. For a declared gap, "seq − 1" is the seq before its first lost one; the
  gap is recorded in ``journal_lost``, and the acknowledgement cursor passes over the seqs it
  names (they are accounted for, never stored, never counted).

A batch is applied in one transaction, under a lock on the terminal's ``journal_state`` row.
:mod:`platform_server.chains` lists the stored rows and checks their chains again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from offline_store.chain import GENESIS_HASH
from platform_server.batch import BatchResult, RejectCode, UploadedRow
from platform_server.db import journal, journal_lost, journal_payment, journal_state
from platform_server.errors import NotFound
from sync.wire import quote

__all__ = ["MAX_PAGE_ROWS", "ingest", "own_rows"]

log = logging.getLogger(__name__)

MAX_PAGE_ROWS = 1000  # rows per answer of GET /v1/journal
PAGE_ROWS = 5000


def ingest(
    conn: Connection, terminal_id: str, rows: Sequence[UploadedRow], now: float
) -> BatchResult:
    """Store a batch of one terminal's rows (the caller commits or rolls back).

    :param conn: a connection in a write transaction
    :param terminal_id: the terminal that signed the request
    :param rows: the parsed rows
    :param now: the platform's clock, stored as the receive time
    :raises NotFound: the terminal has no journal state (it is not registered)
    """
    state = conn.execute(
        select(journal_state).where(journal_state.c.terminal_id == terminal_id).with_for_update()
    ).one_or_none()
    if state is None:
        raise NotFound(f"terminal {terminal_id!r} is not registered", "unknown_terminal")
    batch, duplicates, rejected = _sorted_batch(terminal_id, rows)
    if not batch:
        return _result(state.ack_seq, 0, duplicates, rejected)
    lo, hi = min(batch), max(batch)
    stored = {
        seq: (digest, prev)
        for seq, digest, prev in conn.execute(
            select(journal.c.seq, journal.c.hash, journal.c.prev_hash).where(
                journal.c.terminal_id == terminal_id, journal.c.seq.between(lo - 1, hi + 1)
            )
        )
    }
    known = {seq: digest for seq, (digest, _) in stored.items()}
    lost_ranges = _lost_ranges(conn, terminal_id, lo, hi)
    first_seq = state.first_seq
    new: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    for seq, row in batch.items():
        refusal = _refusal(conn, terminal_id, row, stored=stored, lost_ranges=lost_ranges, new=new)
        if refusal is _DUPLICATE:
            duplicates += 1
            continue
        if refusal is not None:
            rejected.append((seq, refusal))
            continue
        first_seq = seq if first_seq is None else first_seq
        linked = row.linked_seq
        expected = GENESIS_HASH if linked == 0 else known.get(linked)
        if expected is None and row.lost is not None:
            expected = _stored_hash(conn, terminal_id, linked)
        known[seq] = row.hash
        new.append(_values(terminal_id, row, now, expected, first_seq))
        if row.lost is not None:
            gaps.append({"terminal_id": terminal_id, "seq": seq, "first_seq": row.lost[0]})
    if not new or first_seq is None:
        return _result(state.ack_seq, 0, duplicates, rejected)
    conn.execute(insert(journal), new)
    if gaps:
        conn.execute(insert(journal_lost), gaps)
    objects = [
        {"terminal_id": terminal_id, "seq": v["seq"], "payment": record.decode("utf-8")}
        for v in new
        if (record := batch[v["seq"]].payment_record) is not None
    ]
    if objects:
        conn.execute(insert(journal_payment), objects)
    _relink_successors(conn, terminal_id, new, stored)
    ack = state.ack_seq if state.first_seq is not None else first_seq - 1
    if ack + 1 in {v["seq"] for v in new} | {g["first_seq"] for g in gaps}:
        ack = _advance(conn, terminal_id, ack, known, hi)
    conn.execute(
        update(journal_state)
        .where(journal_state.c.terminal_id == terminal_id)
        .values(
            first_seq=first_seq,
            ack_seq=ack,
            max_seq=max(state.max_seq, new[-1]["seq"]),
            row_count=state.row_count + len(new),
        )
    )
    _log_flags(terminal_id, new, gaps)
    return _result(ack, len(new), duplicates, rejected, frozenset(v["seq"] for v in new))


def _log_flags(terminal_id: str, new: list[dict[str, Any]], gaps: list[dict[str, Any]]) -> None:
    """One warning per declared gap, chain break or gap among the rows just stored."""
    for gap in gaps:
        log.warning(
            "event=journal_declared_gap terminal=%s seq=%d lost=%d-%d",
            quote(terminal_id), gap["seq"], gap["first_seq"], gap["seq"] - 1,
        )  # fmt: skip
    for values in new:
        if values["chain_break"] or values["gap"]:
            flag = "chain_break" if values["chain_break"] else "gap"
            log.warning(
                "event=journal_%s terminal=%s seq=%d", flag, quote(terminal_id), values["seq"]
            )


_DUPLICATE = "duplicate"  # not a rejection: counted in ``duplicates``


def _refusal(
    conn: Connection,
    terminal_id: str,
    row: UploadedRow,
    *,
    stored: dict[int, tuple[str, str]],
    lost_ranges: list[tuple[int, int]],
    new: list[dict[str, Any]],
) -> str | None:
    """Why a row of the batch is not stored (:class:`RejectCode`, or :data:`_DUPLICATE`),
    ``None`` when it is to be stored."""
    if row.seq in stored:
        return _DUPLICATE if stored[row.seq][0] == row.hash else RejectCode.CONFLICT
    if any(first <= row.seq < gap_seq for first, gap_seq in lost_ranges):
        return RejectCode.DECLARED_LOST
    if row.lost is not None and _holds_any(conn, terminal_id, row.lost, new):
        return RejectCode.GAP_OVER_ROWS
    return None


def _sorted_batch(
    terminal_id: str, rows: Sequence[UploadedRow]
) -> tuple[dict[int, UploadedRow], int, list[tuple[int, str]]]:
    """The rows worth looking up, by seq in order; the duplicates and rejections inside the
    batch itself."""
    rejected: list[tuple[int, str]] = []
    duplicates = 0
    batch: dict[int, UploadedRow] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        if row.terminal_id != terminal_id:
            rejected.append((row.seq, RejectCode.TERMINAL_MISMATCH))
        elif not row.hash_ok:
            rejected.append((row.seq, RejectCode.BAD_HASH))
        elif not row.gap_ok:
            rejected.append((row.seq, RejectCode.BAD_GAP))
        elif row.seq not in batch:
            batch[row.seq] = row
        elif batch[row.seq].hash == row.hash:
            duplicates += 1
        else:
            rejected.append((row.seq, RejectCode.CONFLICT))
    return batch, duplicates, rejected


def _result(
    ack: int,
    accepted: int,
    duplicates: int,
    rejected: list[tuple[int, str]],
    stored: frozenset[int] = frozenset(),
) -> BatchResult:
    return BatchResult(ack, accepted, duplicates, tuple(sorted(rejected)), stored)


def _values(
    terminal_id: str, row: UploadedRow, now: float, expected: str | None, first_seq: int
) -> dict[str, Any]:
    return {
        "terminal_id": terminal_id,
        "seq": row.seq,
        "uuid": row.uuid,
        "wall_time_us": row.wall_time_us,
        "scenario": row.scenario,
        "outcome": row.outcome,
        "reason_code": row.reason_code,
        "amount": row.amount,
        "record": row.record.decode("utf-8"),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "received_at": now,
        "chain_break": expected is not None and row.prev_hash != expected,
        "gap": expected is None and row.linked_seq >= first_seq,
    }


def _relink_successors(
    conn: Connection,
    terminal_id: str,
    new: list[dict[str, Any]],
    stored: dict[int, tuple[str, str]],
) -> None:
    """A new row whose successor was stored before — the next seq, or a declared gap whose
    lost seqs start after it: the gap is filled; check the link."""
    fixes = [
        {"t": terminal_id, "s": v["seq"] + 1, "cb": stored[v["seq"] + 1][1] != v["hash"]}
        for v in new
        if v["seq"] + 1 in stored
    ]
    hashes = {v["seq"] + 1: v["hash"] for v in new}
    for gap_seq, first, prev_hash in conn.execute(
        select(journal_lost.c.seq, journal_lost.c.first_seq, journal.c.prev_hash)
        .join(
            journal,
            (journal.c.terminal_id == journal_lost.c.terminal_id)
            & (journal.c.seq == journal_lost.c.seq),
        )
        .where(journal_lost.c.terminal_id == terminal_id, journal_lost.c.first_seq.in_(hashes))
    ):
        fixes.append({"t": terminal_id, "s": gap_seq, "cb": prev_hash != hashes[first]})
    if not fixes:
        return
    conn.execute(
        update(journal)
        .where(journal.c.terminal_id == bindparam("t"), journal.c.seq == bindparam("s"))
        .values(gap=False, chain_break=bindparam("cb")),
        fixes,
    )
    for fix in fixes:
        if fix["cb"]:
            log.warning(
                "event=journal_chain_break terminal=%s seq=%d", quote(terminal_id), fix["s"]
            )


def _advance(conn: Connection, terminal_id: str, ack: int, known: dict[int, str], hi: int) -> int:
    """Move the cursor over every contiguous stored row after ``ack``, and over the seqs a
    stored declared gap names lost."""
    nxt = ack + 1
    while True:
        while nxt in known:
            nxt += 1
        gap_seq = conn.execute(
            select(journal_lost.c.seq).where(
                journal_lost.c.terminal_id == terminal_id, journal_lost.c.first_seq == nxt
            )
        ).scalar()
        if gap_seq is not None:  # stored with its gap row: the lost seqs are accounted for
            nxt = gap_seq + 1
            continue
        if nxt < hi + 2:  # stopped inside the range this batch looked at
            return nxt - 1
        moved = _stored_run(conn, terminal_id, nxt)  # rows stored beyond the batch
        if moved == nxt:
            return nxt - 1
        nxt = moved


def _stored_run(conn: Connection, terminal_id: str, nxt: int) -> int:
    """The first seq from ``nxt`` on that is not stored."""
    while True:
        seqs = conn.execute(
            select(journal.c.seq)
            .where(journal.c.terminal_id == terminal_id, journal.c.seq >= nxt)
            .order_by(journal.c.seq)
            .limit(PAGE_ROWS)
        ).scalars()
        count = 0
        for seq in seqs:
            if seq != nxt:
                return nxt
            nxt += 1
            count += 1
        if count < PAGE_ROWS:
            return nxt


def _lost_ranges(conn: Connection, terminal_id: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """The stored declared gaps that may name a seq of ``lo``…``hi`` lost: ``(first, gap seq)``."""
    return [
        (first, gap_seq)
        for gap_seq, first in conn.execute(
            select(journal_lost.c.seq, journal_lost.c.first_seq).where(
                journal_lost.c.terminal_id == terminal_id,
                journal_lost.c.seq > lo,
                journal_lost.c.first_seq <= hi,
            )
        )
    ]


def _holds_any(
    conn: Connection, terminal_id: str, lost: tuple[int, int], new: list[dict[str, Any]]
) -> bool:
    """Whether the platform holds (or this batch just stored) a seq a gap declares lost."""
    first, last = lost
    if any(first <= v["seq"] <= last for v in new):
        return True
    held = conn.execute(
        select(journal.c.seq)
        .where(journal.c.terminal_id == terminal_id, journal.c.seq.between(first, last))
        .limit(1)
    ).scalar()
    return held is not None


def _stored_hash(conn: Connection, terminal_id: str, seq: int) -> str | None:
    """The stored hash of one row, ``None`` when it is not stored."""
    return conn.execute(
        select(journal.c.hash).where(journal.c.terminal_id == terminal_id, journal.c.seq == seq)
    ).scalar()


def own_rows(
    conn: Connection, terminal_id: str, after_seq: int, limit: int
) -> list[dict[str, Any]]:
    """A terminal's stored rows after ``after_seq``, oldest first, each as it was uploaded: the
    record (a payment as its object), ``prev_hash`` and ``hash`` — what a terminal whose own
    journal was damaged re-fetches (docs/sync.md §5.8). Rows the platform never received are
    not there; nothing is made up for them.

    :param conn: a connection
    :param terminal_id: the terminal that signed the request
    :param after_seq: the last seq the terminal still holds
    :param limit: at most this many rows
    :raises NotFound: the terminal has no journal state (it is not registered)
    """
    state = conn.execute(
        select(journal_state.c.terminal_id).where(journal_state.c.terminal_id == terminal_id)
    ).one_or_none()
    if state is None:
        raise NotFound(f"terminal {terminal_id!r} is not registered", "unknown_terminal")
    query = (
        select(journal.c.record, journal.c.prev_hash, journal.c.hash, journal_payment.c.payment)
        .outerjoin(
            journal_payment,
            (journal_payment.c.terminal_id == journal.c.terminal_id)
            & (journal_payment.c.seq == journal.c.seq),
        )
        .where(journal.c.terminal_id == terminal_id, journal.c.seq > after_seq)
        .order_by(journal.c.seq)
        .limit(limit)
    )
    rows = []
    for record, prev_hash, digest, payment in conn.execute(query):
        row = json.loads(record)
        if payment is not None:
            row["payment"] = json.loads(payment)
        rows.append({**row, "prev_hash": prev_hash, "hash": digest})
    return rows
