"""The wire format of one journal upload (``POST /v1/journal/batch``): the strict parsing of a
batch body into :class:`UploadedRow` values, each with its hash recomputed, and the answer.

A row is exactly ``offline_store.chain.JournalRow.record()`` plus ``prev_hash`` and ``hash``
(docs/offline-store.md §5); ``flags`` is there only when the row has some, ``ref_seq`` only when
it follows up an earlier row (a deferred e-card code confirmed or found invalid), ``payment``
only on a purchase's rows (:mod:`platform_server.payments` checks it), ``lost`` only on a
declared gap (docs/sync.md §5.9). The chain hash covers a payment object by its digest
(:func:`offline_store.chain.payment_digest`, the very function the terminal hashes with).
Parsing only reads the body: what is stored, and why a row is rejected, is
:func:`platform_server.journal.ingest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from offline_store.chain import (
    CHAIN_FORMAT,
    FLAG_PATTERN,
    FLAGS_MAX,
    GAP_OUTCOME,
    GAP_REASON,
    GAP_SCENARIO,
    canonical_bytes,
    chain_hash,
    payment_digest,
)
from platform_server.errors import InvalidInput
from platform_server.payments import PaymentFact, parse_payment
from sync.wire import CONTROL, HEX64, load_json

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ROWS",
    "ROW_KEYS",
    "BatchResult",
    "RejectCode",
    "UploadedRow",
    "parse_batch",
]

MAX_BATCH_ROWS = 5000
MAX_BATCH_BYTES = 8 * 1024 * 1024
TEXT_MAX = 4096
PERSONAL_CT_MAX = 256 * 1024
PERSONAL_FIELDS_MAX = 64
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
_TOKEN = re.compile(r"|[0-9a-f]{64}")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_FLAG = re.compile(FLAG_PATTERN)
_PATTERNS = (("uuid", _UUID), ("prev_hash", HEX64), ("hash", HEX64), ("credential_token", _TOKEN))


class RejectCode(StrEnum):
    """Why a row of a batch was not stored."""

    # the row names another terminal than the one that signed the batch
    TERMINAL_MISMATCH = "terminal_mismatch"
    BAD_HASH = "bad_hash"  # the row's hash is not the hash of its contents
    # its sequence number is already stored, or twice in the batch, with another hash
    CONFLICT = "conflict"
    # its sequence number was declared lost by a gap row the platform stored
    DECLARED_LOST = "declared_lost"
    # a declared gap names a sequence number the platform holds: it would hide the row
    GAP_OVER_ROWS = "gap_over_rows"
    # a declared gap does not name the seqs just before its own, or is not in its form
    BAD_GAP = "bad_gap"


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
        or CONTROL.search(value)
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
