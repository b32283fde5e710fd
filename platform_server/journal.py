"""Journal rows uploaded by terminals: strict parsing, de-duplication by (terminal, seq), hash
chain checks and the acknowledgement cursor.

A row is exactly ``offline_store.chain.JournalRow.record()`` plus ``prev_hash`` and ``hash``
(docs/offline-store.md §5); ``flags`` is there only when the row has some, ``ref_seq`` only when
it follows up an earlier row (a deferred e-card code confirmed or found invalid), ``payment``
only on a purchase's rows (:mod:`platform_server.payments` checks it), and all are stored with
the rest of the record (its canonical bytes). The chain hash covers a payment object by its
digest (:func:`offline_store.chain.payment_digest`, the very function the terminal hashes
with): the record stores the digest, the object goes to ``journal_payment`` beside it. For
each row of a batch, in seq order
(docs/sync.md §5):

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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from offline_store.chain import (
    CHAIN_FORMAT,
    FLAG_PATTERN,
    FLAGS_MAX,
    GAP_OUTCOME,
    GAP_REASON,
    GAP_SCENARIO,
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    payment_digest,
)
from platform_server.db import journal, journal_lost, journal_payment, journal_state
from platform_server.errors import InvalidInput, NotFound
from platform_server.payments import PaymentFact, parse_payment
from sync.wire import load_json, quote

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ROWS",
    "MAX_PAGE_ROWS",
    "ROW_KEYS",
    "BatchResult",
    "RejectCode",
    "UploadedRow",
    "ingest",
    "own_rows",
    "parse_batch",
]

log = logging.getLogger(__name__)

MAX_BATCH_ROWS = 5000
MAX_PAGE_ROWS = 1000  # rows per answer of GET /v1/journal
MAX_BATCH_BYTES = 8 * 1024 * 1024
TEXT_MAX = 4096
PERSONAL_CT_MAX = 256 * 1024
PERSONAL_FIELDS_MAX = 64
PAGE_ROWS = 5000
RECORD_KEYS = frozenset(
    {
        "v",
        "seq",
        "uuid",
        "wall_time_us",
        "monotonic_ns",
        "scenario",
        "catalogue_item",
        "credential_token",
        "outcome",
        "reason_code",
        "amount",
        "terminal_id",
        "personal_fields",
        "personal_ct",
    }
)
ROW_KEYS = RECORD_KEYS | {"prev_hash", "hash"}
OPTIONAL_KEYS = frozenset({"flags", "ref_seq", "payment", "lost"})
OUTCOMES = frozenset({"accept", "refuse", "deferred"})

# at most 18 digits: every value fits in 64 bits, and JSON Schema can say it (sync/openapi.yaml)
_SEQ = re.compile(r"[1-9][0-9]{0,17}")
_INT = re.compile(r"0|-?[1-9][0-9]{0,17}")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"|[0-9a-f]{64}")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FLAG = re.compile(FLAG_PATTERN)
_PATTERNS = (("uuid", _UUID), ("prev_hash", _HEX64), ("hash", _HEX64), ("credential_token", _TOKEN))


class RejectCode(StrEnum):
    """Why a row of a batch was not stored."""

    TERMINAL_MISMATCH = "terminal_mismatch"
    """The row names another terminal than the one that signed the batch."""
    BAD_HASH = "bad_hash"
    """The row's hash is not the hash of its contents."""
    CONFLICT = "conflict"
    """Its sequence number is already stored, or twice in the batch, with another hash."""
    DECLARED_LOST = "declared_lost"
    """Its sequence number was declared lost by a gap row the platform stored."""
    GAP_OVER_ROWS = "gap_over_rows"
    """A declared gap names a sequence number the platform holds: it would hide the row."""
    BAD_GAP = "bad_gap"
    """A declared gap does not name the seqs just before its own, or is not in its form."""


@dataclass(frozen=True, slots=True)
class UploadedRow:
    """A parsed row of a batch.

    :param seq: the row's sequence number
    :param terminal_id: the terminal named in the record
    :param uuid: the row's uuid
    :param wall_time_us: its wall-clock time, microseconds
    :param scenario: its scenario
    :param outcome: accept, refuse or deferred
    :param reason_code: why
    :param amount: fen, or ``None``
    :param record: the canonical bytes of the record (what the hash covers)
    :param prev_hash: the hash the row chains to
    :param hash: the row's hash as uploaded
    :param hash_ok: the hash is ``SHA-256(prev_hash ‖ record)``
    :param payment: the row's payment object, ``None`` for a row without one
    :param payment_record: the object's canonical bytes, as stored in ``journal_payment``
    :param lost: a declared gap's lost seqs ``(first, last)``, ``None`` for every other row
    :param gap_ok: a declared gap names ``[first, seq − 1]`` and has the gap row's form (true
        for every other row)
    """

    seq: int
    terminal_id: str
    uuid: str
    wall_time_us: int
    scenario: str
    outcome: str
    reason_code: str
    amount: int | None
    record: bytes
    prev_hash: str
    hash: str
    hash_ok: bool
    payment: PaymentFact | None = None
    payment_record: bytes | None = None
    lost: tuple[int, int] | None = None
    gap_ok: bool = True

    @property
    def linked_seq(self) -> int:
        """The seq whose hash this row's ``prev_hash`` must be: seq − 1, or for a declared gap
        the seq before its first lost one."""
        return (self.seq if self.lost is None else self.lost[0]) - 1


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The answer to a batch.

    :param ack_seq: every row from the terminal's first stored seq up to this one is stored
        or declared lost (0 before any)
    :param accepted: rows stored by this batch
    :param duplicates: rows the platform already held with the same hash
    :param rejected: ``(seq, code)`` of the rows not stored, in seq order
    :param stored: the seqs this batch stored (not in the answer: for the payments)
    """

    ack_seq: int
    accepted: int
    duplicates: int
    rejected: tuple[tuple[int, str], ...]
    stored: frozenset[int] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """The response body of ``POST /v1/journal/batch``.

        :raises: nothing
        """
        return {
            "ack_seq": self.ack_seq,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [{"seq": seq, "code": code} for seq, code in self.rejected],
        }


def parse_batch(body: bytes) -> list[UploadedRow]:
    """Parse and check a batch body ``{"rows": [...]}``; every row's hash is recomputed.

    :param body: the request body
    :raises MalformedBody: ``bad_json`` (not UTF-8 JSON, or nested too deep) or ``too_large``
        (:func:`sync.wire.load_json`)
    :raises InvalidInput: ``invalid_body`` (naming the row index and the key that breaks the
        format; values are never repeated)
    """
    data = load_json(body, max_bytes=MAX_BATCH_BYTES)
    if not isinstance(data, dict) or set(data) != {"rows"} or not isinstance(data["rows"], list):
        raise InvalidInput('the body must be exactly {"rows": [ ... ]}')
    rows = data["rows"]
    if len(rows) > MAX_BATCH_ROWS:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH_ROWS} rows, not {len(rows)}")
    return [_row(raw, index) for index, raw in enumerate(rows)]


def _row(raw: object, index: int) -> UploadedRow:
    where = f"rows[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object")
    if not ROW_KEYS <= raw.keys() <= ROW_KEYS | OPTIONAL_KEYS:
        missing = sorted(ROW_KEYS - raw.keys())
        unknown = sorted(raw.keys() - ROW_KEYS - OPTIONAL_KEYS)
        raise InvalidInput(f"{where}: keys: missing {missing}, unknown {unknown[:5]}")
    if raw["v"] != CHAIN_FORMAT:
        raise InvalidInput(f"{where}.v must be {CHAIN_FORMAT!r}")
    seq = _int(raw, "seq", where, _SEQ)
    wall_time_us = _int(raw, "wall_time_us", where, _INT)
    _int(raw, "monotonic_ns", where, _INT)
    amount = None if raw["amount"] is None else _int(raw, "amount", where, _INT)
    for key, pattern in _PATTERNS:
        if not isinstance(raw[key], str) or not pattern.fullmatch(raw[key]):
            raise InvalidInput(f"{where}.{key} does not have its format (docs/sync.md §5.2)")
    _text(raw["scenario"], f"{where}.scenario")
    _text(raw["reason_code"], f"{where}.reason_code")
    _text(raw["terminal_id"], f"{where}.terminal_id", empty_ok=True)
    if raw["catalogue_item"] is not None:
        _text(raw["catalogue_item"], f"{where}.catalogue_item")
    if not isinstance(raw["outcome"], str) or raw["outcome"] not in OUTCOMES:
        raise InvalidInput(f"{where}.outcome must be one of {sorted(OUTCOMES)}")
    _personal(raw["personal_fields"], raw["personal_ct"], where)
    record = {key: raw[key] for key in RECORD_KEYS}
    if "flags" in raw:
        _flags(raw["flags"], where)
        record["flags"] = raw["flags"]
    if "ref_seq" in raw:  # a terminal names an earlier row; the format is all that is checked
        _int(raw, "ref_seq", where, _SEQ)
        record["ref_seq"] = raw["ref_seq"]
    lost, gap_ok = None, True
    if "lost" in raw:
        lost = _lost(raw, where)
        gap_ok = _gap_ok(raw, seq, lost)
        record["lost"] = raw["lost"]
    payment, payment_record = None, None
    if "payment" in raw:
        payment = parse_payment(raw["payment"], where)
        payment_record = canonical_bytes(raw["payment"])
        record["payment"] = payment_digest(raw["payment"])  # what the chain hash covers
    try:
        canonical = canonical_bytes(record)
    except UnicodeEncodeError:
        raise InvalidInput(f"{where} holds text that is not valid Unicode") from None
    return UploadedRow(
        seq=seq,
        terminal_id=raw["terminal_id"],
        uuid=raw["uuid"],
        wall_time_us=wall_time_us,
        scenario=raw["scenario"],
        outcome=raw["outcome"],
        reason_code=raw["reason_code"],
        amount=amount,
        record=canonical,
        prev_hash=raw["prev_hash"],
        hash=raw["hash"],
        hash_ok=chain_hash(raw["prev_hash"], canonical) == raw["hash"],
        payment=payment,
        payment_record=payment_record,
        lost=lost,
        gap_ok=gap_ok,
    )


def _lost(raw: dict[str, Any], where: str) -> tuple[int, int]:
    """A declared gap's ``lost``: two seqs (its meaning is checked per row: :func:`_gap_ok`)."""
    value = raw["lost"]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, str) and _SEQ.fullmatch(v) for v in value)
    ):
        raise InvalidInput(f"{where}.lost must be two decimal integer strings (docs/sync.md §5.9)")
    return int(value[0]), int(value[1])


def _gap_ok(raw: dict[str, Any], seq: int, lost: tuple[int, int]) -> bool:
    """A declared gap names the seqs just before its own, ``[first, seq - 1]``, and has the gap
    row's fixed form (docs/sync.md §5.9)."""
    fixed: dict[str, object] = {
        "scenario": GAP_SCENARIO,
        "outcome": GAP_OUTCOME,
        "reason_code": GAP_REASON,
        "catalogue_item": None,
        "credential_token": "",
        "amount": None,
        "personal_fields": [],
        "personal_ct": None,
    }
    return (
        lost[0] <= lost[1] == seq - 1
        and all(raw[k] == v for k, v in fixed.items())
        and not raw.keys() & {"flags", "ref_seq", "payment"}
    )


def _int(raw: dict[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> int:
    value = raw[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{where}.{key} must be a decimal integer string of at most 18 digits")
    return int(value)


def _text(value: object, where: str, *, empty_ok: bool = False) -> None:
    if (
        not isinstance(value, str)
        or (not value and not empty_ok)
        or len(value) > TEXT_MAX
        or _CONTROL.search(value)
    ):
        raise InvalidInput(
            f"{where} must be a string of 1-{TEXT_MAX} characters without control characters"
        )


def _personal(fields: object, ciphertext: object, where: str) -> None:
    if (
        not isinstance(fields, list)
        or len(fields) > PERSONAL_FIELDS_MAX
        or not all(isinstance(f, str) and _FIELD.fullmatch(f) for f in fields)
        or len(set(fields)) != len(fields)
    ):
        raise InvalidInput(f"{where}.personal_fields must be a list of distinct field names")
    if ciphertext is not None and (
        not isinstance(ciphertext, str)
        or len(ciphertext) > PERSONAL_CT_MAX
        or not _BASE64.fullmatch(ciphertext)
    ):
        raise InvalidInput(f"{where}.personal_ct must be standard base64 (padded) or null")


def _flags(flags: object, where: str) -> None:
    if (
        not isinstance(flags, list)
        or not 1 <= len(flags) <= FLAGS_MAX
        or not all(isinstance(f, str) and _FLAG.fullmatch(f) for f in flags)
        or len(set(flags)) != len(flags)
    ):
        raise InvalidInput(
            f"{where}.flags must be a list of 1-{FLAGS_MAX} distinct flags "
            "(docs/offline-store.md §5.2)"
        )


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
