"""The journal's record and its hash chain: what is hashed, how, and what the chain is
checked against (docs/offline-store.md §5.2, §5.6).

``hash = SHA-256(prev_hash ‖ canonical)``: ``prev_hash`` as its 64 ASCII hex characters, then
the row's fields as a canonical JSON object (keys sorted, no whitespace, every integer as a
decimal string, the personal ciphertext in base64). Row 1 chains to 64 zeros. Pure: no I/O.

``flags`` (the decision's circumstances, e.g. ``stale_list:deny_list``) and ``ref_seq`` (the
row a follow-up row completes: the confirmation of a deferred e-card code) joined the record
after its first release: each member is present only when a row has it, so a row without them
serialises — and hashes — exactly as before. ``payment`` (a purchase's facts, issue 15:
:mod:`offline_store.payment`) likewise; it is uploaded as a JSON object (integers as JSON
numbers) and **hashed as its digest**: in the hashed record, ``payment`` is the hex SHA-256
of the object's canonical bytes (:func:`payment_digest`). The terminal keeps the object
encrypted and its digest in clear, so the chain verifies without the journal key; the
platform computes the digest from the object it receives.

``lost`` (schema 7, docs/offline-store.md §5.8) is the one member of a **declared gap**: the
row a recovery writes when rows of a damaged journal could be neither kept nor re-fetched.
Seqs are never reused, so the gap row takes the next seq, ``lost = [first, last]`` names the
lost seqs (``last`` is always the gap row's seq − 1) and its ``prev_hash`` is the hash of the
row before ``first``: the chain goes on over the lost seqs, and only over exactly those. Its
other members are fixed (:func:`declared_gap`): it is no decision, and nothing counts it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offline_store.db import GENESIS_HASH
from offline_store.errors import JournalError

__all__ = [
    "CHAIN_FORMAT",
    "FLAGS_MAX",
    "FLAG_PATTERN",
    "GAP_OUTCOME",
    "GAP_REASON",
    "GAP_SCENARIO",
    "GENESIS_HASH",
    "ChainReport",
    "JournalDecision",
    "JournalRow",
    "canonical_bytes",
    "chain_hash",
    "declared_gap",
    "gap_form_problem",
    "new_row",
    "payment_digest",
    "personal_aad",
]

CHAIN_FORMAT = "sscard-journal/1"
FLAGS_MAX = 16  # flags per row
#: a flag: a lower-case word, optionally ``:`` and a second one (``stale_list:catalogue``)
FLAG_PATTERN = r"[a-z][a-z0-9_]{0,31}(?::[a-z][a-z0-9_]{0,31})?"
#: a declared gap's fixed members (§5.8): no card, no amount, not a decision
GAP_SCENARIO = "journal"
GAP_REASON = "journal_lost"
GAP_OUTCOME = "refuse"


@dataclass(frozen=True, slots=True)
class JournalDecision:
    """What the terminal decided: the fields a journal entry
    (:class:`offline_store.entry.JournalEntry`) states and its row (:class:`JournalRow`) keeps.

    :param scenario: the scenario's code (e.g. ``transit``)
    :param catalogue_item: the catalogue item (应用目录) it was taken under, if any
    :param credential_token: the credential's card hash (:meth:`Store.card_hash`), never a card
        number; empty when no credential was read
    :param outcome: ``accept``, ``refuse`` or ``deferred``
    :param reason_code: why, as a code (a national error code, a deny reason …)
    :param amount: the amount in fen (分), if money was involved
    """

    scenario: str
    catalogue_item: str | None
    credential_token: str
    outcome: str
    reason_code: str
    amount: int | None


@dataclass(frozen=True, slots=True)
class JournalRow(JournalDecision):
    """A stored journal row, without its personal values: its :class:`JournalDecision` and

    :param seq: the sequence number, from 1, never reused
    :param uuid: a uuid4, for the platform's de-duplication
    :param wall_time_us: the wall-clock time as stored and hashed, microseconds since the epoch
        (:attr:`wall_time` in seconds)
    :param monotonic_ns: the monotonic clock at append, nanoseconds
    :param personal_fields: the names of the encrypted personal fields, sorted
    :param prev_hash: the hash of the row before (64 zeros for row 1)
    :param hash: this row's chain hash
    :param uploaded: the platform acknowledged it
    :param terminal_id: see :class:`JournalEntry`
    :param personal_ciphertext: nonce ‖ AES-GCM ciphertext ‖ tag, ``None`` without personal
        fields; hashed, so the platform needs it to check the chain
    :param flags: the decision's flags, sorted (see :class:`JournalEntry`)
    :param ref_seq: the earlier row this one follows up (see :class:`JournalEntry`), or ``None``
    :param payment: the purchase's payment object (:meth:`offline_store.payment.Payment.to_json`),
        ``None`` for a row without one, or read without the journal key
    :param payment_sha256: :func:`payment_digest` of the payment object, ``None`` without one
    :param lost: a declared gap's lost seqs ``(first, last)``, ``None`` on every other row
    """

    seq: int
    uuid: str
    wall_time_us: int
    monotonic_ns: int
    personal_fields: tuple[str, ...]
    prev_hash: str
    hash: str
    uploaded: bool
    terminal_id: str = ""
    personal_ciphertext: bytes | None = None
    flags: tuple[str, ...] = ()
    ref_seq: int | None = None
    payment: dict[str, Any] | None = None
    payment_sha256: str | None = None
    lost: tuple[int, int] | None = None

    @property
    def wall_time(self) -> float:
        """The wall-clock time, seconds since the epoch (microsecond resolution)."""
        return self.wall_time_us / 1_000_000

    def canonical(self) -> bytes:
        """The row's canonical serialisation, the input of its chain hash (a payment as its
        digest).

        :raises: nothing
        """
        record = self._record()
        if self.payment_sha256 is not None:
            record["payment"] = self.payment_sha256
        elif self.payment is not None:
            record["payment"] = payment_digest(self.payment)
        return canonical_bytes(record)

    def record(self) -> dict[str, Any]:
        """The hashed fields as the JSON object of docs/offline-store.md §5 (for upload);
        ``flags`` only when the row has some, ``ref_seq`` only when it follows up a row,
        ``payment`` (the object) only on a purchase's rows.

        :raises JournalError: a payment row read without the journal key (its object unknown)
        """
        record = self._record()
        if self.payment is not None:
            record["payment"] = dict(self.payment)
        elif self.payment_sha256 is not None:
            raise JournalError(f"journal row {self.seq}: its payment needs the journal key")
        return record

    def _record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "v": CHAIN_FORMAT,
            "seq": str(self.seq),
            "uuid": self.uuid,
            "wall_time_us": str(self.wall_time_us),
            "monotonic_ns": str(self.monotonic_ns),
            "scenario": self.scenario,
            "catalogue_item": self.catalogue_item,
            "credential_token": self.credential_token,
            "outcome": self.outcome,
            "reason_code": self.reason_code,
            "amount": None if self.amount is None else str(self.amount),
            "terminal_id": self.terminal_id,
            "personal_fields": list(self.personal_fields),
            "personal_ct": (
                None
                if self.personal_ciphertext is None
                else base64.b64encode(self.personal_ciphertext).decode("ascii")
            ),
        }
        if self.flags:
            record["flags"] = list(self.flags)
        if self.ref_seq is not None:
            record["ref_seq"] = str(self.ref_seq)
        if self.lost is not None:
            record["lost"] = [str(self.lost[0]), str(self.lost[1])]
        return record


_DECISION = tuple(JournalDecision.__dataclass_fields__)
#: a declared gap's fixed members as a decision (§5.8)
_GAP = JournalDecision(GAP_SCENARIO, None, "", GAP_OUTCOME, GAP_REASON, None)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :meth:`Journal.verify_chain`.

    :param ok: every row links to the one before and hashes to its stored hash
    :param rows: rows checked before the first problem (all of them when ``ok``)
    :param first_bad_seq: the first sequence number that fails, ``None`` when ``ok``
    :param problem: what is wrong there, ``None`` when ``ok``
    :param gaps: the declared gaps the walk accepted, ``(first, last, gap_seq)`` each: the lost
        seqs and the row that declares them (never passed over silently)
    """

    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None
    gaps: tuple[tuple[int, int, int], ...] = ()

    @property
    def lost_rows(self) -> int:
        """How many seqs the declared gaps name lost."""
        return sum(last - first + 1 for first, last, _ in self.gaps)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """Serialise a journal record canonically: JSON, keys sorted, no whitespace, UTF-8.

    Every value is a string, ``null`` or a list of strings — but for a payment object
    (:func:`payment_digest`), of strings, integers and ``null`` — and no string holds a control
    character, so only ``"`` and ``\\`` are ever escaped (RFC 8785 gives the same bytes).

    :param record: :meth:`JournalRow.record`
    :raises: nothing
    """
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def payment_digest(payment: Mapping[str, Any]) -> str:
    """What a row's chain hash covers of its payment object: the hex SHA-256 of the object's
    :func:`canonical_bytes` (integers as JSON numbers).

    :param payment: the payment object as uploaded
    :raises: nothing
    """
    return hashlib.sha256(canonical_bytes(payment)).hexdigest()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """``SHA-256(prev_hash ‖ canonical)``, hex: ``prev_hash`` as its 64 ASCII hex characters.

    :param prev_hash: the previous row's hash (or the genesis / anchor hash)
    :param canonical: :func:`canonical_bytes` of the row
    :raises: nothing
    """
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def personal_aad(seq: int, row_uuid: str) -> bytes:
    """The AES-GCM associated data that binds a row's personal ciphertext to that row.

    :param seq: the row's sequence number
    :param row_uuid: the row's uuid
    :raises: nothing
    """
    return f"{CHAIN_FORMAT} seq={seq} uuid={row_uuid}".encode("ascii")


def new_row(decision: JournalDecision, prev_hash: str, **fields: Any) -> JournalRow:
    """A row to append, hashed: ``decision`` with the row's own fields, chained to ``prev_hash``.

    :param decision: what was decided (a :class:`offline_store.entry.JournalEntry`, whose
        outcome may be its enum, or a declared gap's fixed members)
    :param prev_hash: the hash of the row before (the anchor's, or 64 zeros, when there is none)
    :param fields: the row's other fields, by :class:`JournalRow`'s names (``seq``, ``uuid``,
        ``wall_time_us``, ``monotonic_ns``, ``personal_fields`` …), but ``hash`` and ``uploaded``
    :raises TypeError: a field missing or unknown
    """
    decided = {name: getattr(decision, name) for name in _DECISION}
    decided["outcome"] = str(decision.outcome)
    row = JournalRow(**decided, prev_hash=prev_hash, hash="", uploaded=False, **fields)
    return dataclasses.replace(row, hash=chain_hash(prev_hash, row.canonical()))


def declared_gap(
    *,
    seq: int,
    first_lost: int,
    prev_hash: str,
    terminal_id: str,
    row_uuid: str,
    wall_time_us: int,
    monotonic_ns: int,
) -> JournalRow:
    """The row that declares seqs ``first_lost``…``seq − 1`` lost (§5.8), hashed.

    :param seq: the gap row's own seq: the journal's last seq + 1 (seqs are never reused)
    :param first_lost: the first lost seq; the row chains to the hash of the row before it
    :param prev_hash: that row's hash (the anchor's, or 64 zeros, when there is none)
    :param terminal_id: the terminal, as on its other rows
    :param row_uuid: a uuid4
    :param wall_time_us: when the recovery wrote it, microseconds
    :param monotonic_ns: the monotonic clock then
    :raises JournalError: ``first_lost`` is not between 1 and ``seq − 1``
    """
    if not 1 <= first_lost < seq:
        raise JournalError(f"a gap row at seq {seq} cannot declare seqs from {first_lost} lost")
    return new_row(
        _GAP,
        prev_hash,
        seq=seq,
        uuid=row_uuid,
        wall_time_us=wall_time_us,
        monotonic_ns=monotonic_ns,
        personal_fields=(),
        terminal_id=terminal_id,
        lost=(first_lost, seq - 1),
    )


def gap_form_problem(row: JournalRow) -> str | None:
    """Why a row carrying ``lost`` is not a declared gap (§5.8), ``None`` when it is one.

    :param row: a row with ``lost`` set
    :raises: nothing
    """
    if row.lost is None:
        return None
    first, last = row.lost
    if not 1 <= first <= last or last != row.seq - 1:
        return f"row {row.seq}: lost must be [first, {row.seq - 1}] with 1 <= first"
    if (
        (row.scenario, row.outcome, row.reason_code) != (GAP_SCENARIO, GAP_OUTCOME, GAP_REASON)
        or row.catalogue_item is not None
        or row.credential_token
        or row.amount is not None
        or row.personal_fields
        or row.personal_ciphertext is not None
        or row.flags
        or row.ref_seq is not None
        or row.payment is not None
        or row.payment_sha256 is not None
    ):
        return f"row {row.seq} declares a gap but is not in the gap row's form"
    return None


def link_problem(row: JournalRow, seq: int, prev_hash: str) -> tuple[int, str] | None:
    """Where and why ``row`` does not continue a chain expected at ``seq`` after ``prev_hash``
    (a declared gap continues it over exactly the seqs it declares lost)."""
    if row.seq < seq:
        return row.seq, f"row {row.seq} is at or before the prune anchor"
    if row.lost is not None:
        problem = gap_form_problem(row)
        if problem is not None:
            return row.seq, problem
        if row.lost[0] != seq:
            first, last = row.lost
            return row.seq, f"row {row.seq} declares seqs {first}…{last} lost, not from {seq}"
    elif row.seq > seq:
        return seq, f"row {seq} is missing"
    if row.prev_hash != prev_hash:
        return row.seq, "prev_hash does not match the previous row's hash"
    if chain_hash(row.prev_hash, row.canonical()) != row.hash:
        return row.seq, "hash does not match the row's contents"
    return None


def row_from_columns(raw: Sequence[Any]) -> JournalRow:
    """A journal row from the columns of a ``SELECT`` of the journal table, in table order
    (the payment's two columns excepted: :class:`offline_store.journal.Journal` adds them;
    ``lost`` last, see :data:`offline_store.journal._COLUMNS`)."""
    (
        seq,
        row_uuid,
        wall_time_us,
        monotonic_ns,
        scenario,
        catalogue_item,
        credential_token,
        outcome,
        reason_code,
        amount,
        terminal_id,
        names_json,
        ciphertext,
        prev_hash,
        digest,
        uploaded,
        flags_json,
        ref_seq,
        lost_json,
    ) = raw
    lost = None if lost_json is None else json.loads(lost_json)
    return JournalRow(
        seq=seq,
        uuid=row_uuid,
        wall_time_us=wall_time_us,
        monotonic_ns=monotonic_ns,
        scenario=scenario,
        catalogue_item=catalogue_item,
        credential_token=credential_token,
        outcome=outcome,
        reason_code=reason_code,
        amount=amount,
        personal_fields=tuple(json.loads(names_json)),
        prev_hash=prev_hash,
        hash=digest,
        uploaded=bool(uploaded),
        terminal_id=terminal_id,
        personal_ciphertext=ciphertext,
        flags=tuple(json.loads(flags_json)),
        ref_seq=ref_seq,
        lost=None if lost is None else (int(lost[0]), int(lost[1])),
    )
