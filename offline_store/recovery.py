"""Recovering a damaged journal from the platform: which re-fetched rows may continue the
rows the store still vouches for (docs/offline-store.md §5.8). Pure: no I/O.

:meth:`offline_store.journal.Journal.check_sound` names the first row the store cannot vouch
for; every row before it verifies. The platform keeps the rows it acknowledged, as uploaded
(``GET /v1/journal?after=``, docs/sync.md §5.8). :func:`plan_recovery` accepts a fetched row
only when it is the next seq, links to the hash before it and hashes to its own ``hash``, so
a platform (or a proxy) cannot slip a row into the terminal's chain; the first row that does
not is refused, and it and every row after it are lost. Rows the store can still read past the
damage (:meth:`~offline_store.journal.Journal.readable_rows`) continue the chain under the same
rule, and are preferred: they are salvaged as they are. Rows neither source has are lost, by
seq — and so is every row after them, whose links lead to a lost row: nothing is invented.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from offline_store.chain import (
    CHAIN_FORMAT,
    JournalRow,
    canonical_bytes,
    chain_hash,
    gap_form_problem,
    link_problem,
    payment_digest,
)
from offline_store.errors import JournalError

__all__ = ["RecoveryPlan", "plan_recovery", "row_from_upload", "seq_ranges", "seq_runs"]

_REQUIRED = frozenset(
    {
        "v", "seq", "uuid", "wall_time_us", "monotonic_ns", "scenario", "catalogue_item",
        "credential_token", "outcome", "reason_code", "amount", "terminal_id",
        "personal_fields", "personal_ct", "prev_hash", "hash",
    }
)  # fmt: skip
_OPTIONAL = frozenset({"flags", "ref_seq", "payment", "lost"})


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """What a recovery keeps, re-fetches and loses.

    :param kept: rows kept from the store: seq ``anchor + 1`` to ``kept_to``, which the chain
        walk vouched for, and the salvaged ones
    :param kept_to: the last row the walk vouched for (the anchor's seq when none)
    :param fetched: the re-fetched rows accepted, in seq order, each continuing the chain
    :param lost: the seqs neither kept nor re-fetched, in order
    :param refused: why the first refused fetched row was refused, ``None`` when none was
    :param salvaged: the seqs after ``kept_to`` kept from the store: read past the damage,
        each continuing the chain
    """

    kept: int
    kept_to: int
    fetched: tuple[JournalRow, ...]
    lost: tuple[int, ...]
    refused: str | None = None
    salvaged: tuple[int, ...] = ()

    @property
    def summary(self) -> str:
        """One line for the operator: the three counts and the lost seqs as ranges."""
        line = (
            f"{self.kept} rows kept from the store, {len(self.fetched)} re-fetched from the "
            f"platform, {len(self.lost)} lost"
        )
        if self.lost:
            line += f" (seq {seq_ranges(self.lost)})"
        if self.refused:
            line += f"; refused: {self.refused}"
        return line


def plan_recovery(
    *,
    anchor_seq: int,
    kept_to: int,
    kept_hash: str,
    last_seq: int,
    fetched: Iterable[Mapping[str, Any]],
    local: Iterable[JournalRow] = (),
) -> RecoveryPlan:
    """Check re-fetched rows against the chain the store still vouches for.

    :param anchor_seq: the last pruned seq (0: none)
    :param kept_to: the last seq that verifies in the store (``first_bad_seq - 1``)
    :param kept_hash: that row's hash (the anchor's, or 64 zeros, when it is the anchor)
    :param last_seq: the last seq the terminal ever appended (the journal's cursor)
    :param fetched: the platform's rows after ``kept_to``, as uploaded, in any order
    :param local: the rows the store can still read after ``kept_to``
    :raises: nothing: a row that does not continue the chain is refused, not raised
    """
    by_seq: dict[int, Mapping[str, Any]] = {}
    gap_at: dict[int, int] = {}  # first lost seq → the seq of the gap row declaring it
    for raw in fetched:
        seq = raw.get("seq")
        if isinstance(seq, str) and seq.isdigit() and kept_to < int(seq) <= last_seq:
            by_seq.setdefault(int(seq), raw)
            lost = raw.get("lost")
            if isinstance(lost, list) and lost and isinstance(lost[0], str) and lost[0].isdigit():
                gap_at.setdefault(int(lost[0]), int(seq))
    ours = {row.seq: row for row in local if kept_to < row.seq <= last_seq}
    ours_at = {row.lost[0]: row for row in ours.values() if row.lost is not None}
    accepted: list[JournalRow] = []
    salvaged: list[int] = []
    prev_hash, refused, seq = kept_hash, None, kept_to + 1
    while seq <= last_seq:
        mine = ours.get(seq) or ours_at.get(seq)
        if mine is not None and link_problem(mine, seq, prev_hash) is None:
            salvaged.append(mine.seq)
            prev_hash, seq = mine.hash, mine.seq + 1
            continue
        found = by_seq.get(seq)
        if found is None and seq in gap_at:  # a gap an earlier recovery declared
            found = by_seq[gap_at[seq]]
        if found is None:
            break
        try:
            row = row_from_upload(found)
        except JournalError as exc:
            refused = str(exc)
            break
        if row.prev_hash != prev_hash or (row.lost is not None and row.lost[0] != seq):
            refused = f"row {row.seq} does not link to the hash before it"
            break
        accepted.append(row)
        prev_hash, seq = row.hash, row.seq + 1
    return RecoveryPlan(
        kept=kept_to - anchor_seq + len(salvaged),
        kept_to=kept_to,
        fetched=tuple(accepted),
        lost=tuple(range(seq, last_seq + 1)),
        refused=refused,
        salvaged=tuple(salvaged),
    )


def row_from_upload(raw: Mapping[str, Any]) -> JournalRow:
    """A journal row from a row as uploaded (``record()`` with ``prev_hash`` and ``hash``),
    its hash checked; ``uploaded`` is true (the platform had it).

    :param raw: the row's JSON object
    :raises JournalError: a key missing or unknown, a value of the wrong form, or a hash
        that does not match the row's contents
    """
    keys = set(raw)
    seq_text = raw.get("seq")
    where = f"re-fetched row {seq_text!r}"
    wrong = (_REQUIRED - keys) | (keys - _REQUIRED - _OPTIONAL)
    if wrong:
        raise JournalError(f"{where}: keys missing or unknown: {sorted(wrong)}")
    try:
        record = {k: v for k, v in raw.items() if k not in {"prev_hash", "hash"}}
        payment = record.pop("payment", None)
        ciphertext = record["personal_ct"]
        row = JournalRow(
            seq=int(record["seq"]),
            uuid=str(record["uuid"]),
            wall_time_us=int(record["wall_time_us"]),
            monotonic_ns=int(record["monotonic_ns"]),
            scenario=str(record["scenario"]),
            catalogue_item=record["catalogue_item"],
            credential_token=str(record["credential_token"]),
            outcome=str(record["outcome"]),
            reason_code=str(record["reason_code"]),
            amount=None if record["amount"] is None else int(record["amount"]),
            personal_fields=tuple(record["personal_fields"]),
            prev_hash=str(raw["prev_hash"]),
            hash=str(raw["hash"]),
            uploaded=True,
            terminal_id=str(record["terminal_id"]),
            personal_ciphertext=(
                None if ciphertext is None else base64.b64decode(ciphertext, validate=True)
            ),
            flags=tuple(record.get("flags", ())),
            ref_seq=None if record.get("ref_seq") is None else int(record["ref_seq"]),
            payment=None if payment is None else dict(payment),
            payment_sha256=None if payment is None else payment_digest(payment),
            lost=None if record.get("lost") is None else _lost(record["lost"]),
        )
    except (TypeError, ValueError, binascii.Error) as exc:
        raise JournalError(f"{where}: {type(exc).__name__}") from exc
    if record["v"] != CHAIN_FORMAT or canonical_bytes(row.record()) != canonical_bytes(
        {**record, **({"payment": payment} if payment is not None else {})}
    ):
        raise JournalError(f"{where}: not in the journal's record form")
    if chain_hash(row.prev_hash, row.canonical()) != row.hash:
        raise JournalError(f"row {row.seq}: hash does not match the row's contents")
    problem = gap_form_problem(row)
    if problem is not None:
        raise JournalError(problem)
    return row


def _lost(value: object) -> tuple[int, int]:
    """A declared gap's ``lost``: two decimal strings."""
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise ValueError("lost")
    return int(value[0]), int(value[1])


def seq_ranges(seqs: tuple[int, ...]) -> str:
    """``1-3, 7``: consecutive seqs as ranges.

    :param seqs: rising seqs, at least one
    :raises: nothing
    """
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in seq_runs(seqs))


def seq_runs(seqs: tuple[int, ...]) -> list[tuple[int, int]]:
    """Consecutive seqs as ``(first, last)`` runs.

    :param seqs: rising seqs
    :raises: nothing
    """
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
