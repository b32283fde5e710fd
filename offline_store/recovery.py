"""Recovering a damaged journal from the platform: which re-fetched rows may continue the
rows the store still vouches for (docs/offline-store.md §5.8). Pure: no I/O.

:meth:`offline_store.journal.Journal.check_sound` names the first row the store cannot vouch
for; every row before it verifies. The platform keeps the rows it acknowledged, as uploaded
(``GET /v1/journal?after=``, docs/sync.md §5.8). :func:`plan_recovery` accepts a fetched row
only when it is the next seq, links to the hash before it and hashes to its own ``hash``, so
a platform (or a proxy) cannot slip a row into the terminal's chain; the first row that does
not is refused, and it and every row after it are lost. Rows the platform never had are lost
too, by seq: nothing is invented for them.
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
    payment_digest,
)
from offline_store.errors import JournalError

__all__ = ["RecoveryPlan", "plan_recovery", "row_from_upload"]

_REQUIRED = frozenset(
    {
        "v", "seq", "uuid", "wall_time_us", "monotonic_ns", "scenario", "catalogue_item",
        "credential_token", "outcome", "reason_code", "amount", "terminal_id",
        "personal_fields", "personal_ct", "prev_hash", "hash",
    }
)  # fmt: skip
_OPTIONAL = frozenset({"flags", "ref_seq", "payment"})


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """What a recovery keeps, re-fetches and loses.

    :param kept: rows the store still vouches for (seq ``anchor + 1`` to ``kept_to``)
    :param kept_to: the last of them (the anchor's seq when none)
    :param fetched: the re-fetched rows accepted, in seq order, each continuing the chain
    :param lost: the seqs neither kept nor re-fetched, in order
    :param refused: why the first refused fetched row was refused, ``None`` when none was
    """

    kept: int
    kept_to: int
    fetched: tuple[JournalRow, ...]
    lost: tuple[int, ...]
    refused: str | None = None

    @property
    def summary(self) -> str:
        """One line for the operator: the three counts and the lost seqs as ranges."""
        line = (
            f"{self.kept} rows kept from the store, {len(self.fetched)} re-fetched from the "
            f"platform, {len(self.lost)} lost"
        )
        if self.lost:
            line += f" (seq {_ranges(self.lost)})"
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
) -> RecoveryPlan:
    """Check re-fetched rows against the chain the store still vouches for.

    :param anchor_seq: the last pruned seq (0: none)
    :param kept_to: the last seq that verifies in the store (``first_bad_seq - 1``)
    :param kept_hash: that row's hash (the anchor's, or 64 zeros, when it is the anchor)
    :param last_seq: the last seq the terminal ever appended (the journal's cursor)
    :param fetched: the platform's rows after ``kept_to``, as uploaded, in any order
    :raises: nothing: a row that does not continue the chain is refused, not raised
    """
    by_seq: dict[int, Mapping[str, Any]] = {}
    for raw in fetched:
        seq = raw.get("seq")
        if isinstance(seq, str) and seq.isdigit() and kept_to < int(seq) <= last_seq:
            by_seq.setdefault(int(seq), raw)
    accepted: list[JournalRow] = []
    prev_hash, refused = kept_hash, None
    for seq in range(kept_to + 1, last_seq + 1):
        found = by_seq.get(seq)
        if found is None:
            break
        try:
            row = row_from_upload(found)
        except JournalError as exc:
            refused = str(exc)
            break
        if row.prev_hash != prev_hash:
            refused = f"row {seq} does not link to the hash before it"
            break
        accepted.append(row)
        prev_hash = row.hash
    done = kept_to + len(accepted)
    return RecoveryPlan(
        kept=kept_to - anchor_seq,
        kept_to=kept_to,
        fetched=tuple(accepted),
        lost=tuple(range(done + 1, last_seq + 1)),
        refused=refused,
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
            wall_time=int(record["wall_time_us"]) / 1_000_000,
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
            wall_time_us=int(record["wall_time_us"]),
            personal_ciphertext=(
                None if ciphertext is None else base64.b64decode(ciphertext, validate=True)
            ),
            flags=tuple(record.get("flags", ())),
            ref_seq=None if record.get("ref_seq") is None else int(record["ref_seq"]),
            payment=None if payment is None else dict(payment),
            payment_sha256=None if payment is None else payment_digest(payment),
        )
    except (TypeError, ValueError, binascii.Error) as exc:
        raise JournalError(f"{where}: {type(exc).__name__}") from exc
    if record["v"] != CHAIN_FORMAT or canonical_bytes(row.record()) != canonical_bytes(
        {**record, **({"payment": payment} if payment is not None else {})}
    ):
        raise JournalError(f"{where}: not in the journal's record form")
    if chain_hash(row.prev_hash, row.canonical()) != row.hash:
        raise JournalError(f"row {row.seq}: hash does not match the row's contents")
    return row


def _ranges(seqs: tuple[int, ...]) -> str:
    """``1-3, 7``: consecutive seqs as ranges."""
    parts: list[str] = []
    start = prev = seqs[0]
    for seq in seqs[1:]:
        if seq != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = seq
        prev = seq
    parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts)
