"""A decision to record in the journal (流水), and the checks it passes before it is appended.

An entry names a card only by its card hash, never by a number; its text fields hold no control
characters; its flags (the decision's circumstances, such as ``stale_list:deny_list``) are
lower-case words; its personal fields are the ones a scenario declared, name → value, and are
encrypted at rest by :class:`offline_store.journal.Journal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from offline_store.audit import check_field_name
from offline_store.chain import FLAG_PATTERN, FLAGS_MAX, JournalDecision
from offline_store.errors import JournalError
from offline_store.identity import is_card_hash
from offline_store.payment import Payment

__all__ = ["JournalEntry", "JournalOutcome", "check_entry", "check_flags", "personal_plaintext"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FLAG = re.compile(FLAG_PATTERN)


class JournalOutcome(StrEnum):
    """What the terminal decided."""

    ACCEPT = "accept"  # the holder was let through or served
    REFUSE = "refuse"  # the holder was turned away; the row's reason code says why
    # accepted offline on an e-card code the platform decodes later;
    # a sync's follow-up row confirms it or marks it invalid
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class JournalEntry(JournalDecision):
    """A decision to record: the fields of :class:`~offline_store.chain.JournalDecision` (in
    its order: they may be passed by position) and

    :param personal: the personal fields the scenario declared and keeps, name → value;
        encrypted at rest
    :param terminal_id: the terminal that took the decision
    :param flags: the decision's circumstances, each a lower-case word optionally followed by
        ``:`` and a second one (``stale_list:deny_list``: decided while the deny list was stale
        or missing; docs/policy.md lists them); at most 16, stored sorted
    :param ref_seq: the earlier row this one follows up (the deferred e-card code a sync
        confirmed or found invalid: docs/qr-format.md §14.4), ``None`` for a decision
    :param payment: a purchase's facts (:mod:`offline_store.payment`), encrypted at rest;
        ``None`` for a row that took no payment
    """

    personal: Mapping[str, str] = field(default_factory=dict)
    terminal_id: str = ""
    flags: tuple[str, ...] = ()
    ref_seq: int | None = None
    payment: Payment | None = None


def check_flags(flags: object) -> tuple[str, ...]:
    """Check an entry's flags; return them sorted.

    :param flags: the entry's flags
    :raises JournalError: not a tuple of at most 16 distinct flags of the flag format
    """
    if not isinstance(flags, tuple | list) or len(flags) > FLAGS_MAX:
        raise JournalError(f"flags must be a tuple of at most {FLAGS_MAX} flags")
    for flag in flags:
        if not isinstance(flag, str) or not _FLAG.fullmatch(flag):
            raise JournalError(
                "a flag is a lower-case word, optionally ':' and another (stale_list:deny_list)"
            )
    if len(set(flags)) != len(flags):
        raise JournalError("flags lists a flag twice")
    return tuple(sorted(flags))


def _check_text(value: object, name: str, *, empty_ok: bool = False) -> None:
    if not isinstance(value, str):
        raise JournalError(f"{name} must be a string")
    if not value and not empty_ok:
        raise JournalError(f"{name} must not be empty")
    if _CONTROL.search(value):
        raise JournalError(f"{name} must not hold control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JournalError(f"{name} is not valid Unicode text") from None


def check_entry(entry: JournalEntry) -> tuple[str, ...]:
    """Check an entry; return its personal field names, sorted.

    :param entry: the entry to append
    :raises JournalError: a field off its type or format, or a card number as the token
    """
    if not isinstance(entry, JournalEntry):
        raise JournalError("append takes a JournalEntry")
    _check_text(entry.scenario, "scenario")
    if entry.catalogue_item is not None:
        _check_text(entry.catalogue_item, "catalogue_item")
    token = entry.credential_token
    if not isinstance(token, str) or (token and not is_card_hash(token)):
        raise JournalError(
            "credential_token must be a card hash (64 lowercase hex characters) or empty, "
            "never a card number"
        )
    if entry.outcome not in tuple(JournalOutcome):
        raise JournalError(
            f"outcome must be one of {[str(o) for o in JournalOutcome]}, got {entry.outcome!r}"
        )
    _check_text(entry.reason_code, "reason_code")
    if entry.amount is not None and (
        isinstance(entry.amount, bool) or not isinstance(entry.amount, int)
    ):
        raise JournalError("amount must be an integer number of fen or None")
    _check_text(entry.terminal_id, "terminal_id", empty_ok=True)
    if entry.ref_seq is not None and (
        isinstance(entry.ref_seq, bool) or not isinstance(entry.ref_seq, int)
    ):
        raise JournalError("ref_seq must be an integer seq or None")
    if entry.payment is not None:
        if not isinstance(entry.payment, Payment):
            raise JournalError("payment must be a Payment")
        entry.payment.check()
    if not isinstance(entry.personal, Mapping):
        raise JournalError("personal must be a mapping of field name to value")
    for name, value in entry.personal.items():
        check_field_name(name, JournalError)
        if not isinstance(value, str):
            raise JournalError(f"personal field {name} must be a string")
    return tuple(sorted(entry.personal))


def personal_plaintext(personal: Mapping[str, str]) -> bytes:
    """The personal fields as canonical JSON, the plaintext the journal key encrypts.

    :param personal: field name → value
    :raises JournalError: a value that is not valid Unicode text
    """
    try:
        return json.dumps(
            dict(personal), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except UnicodeEncodeError:
        raise JournalError("a personal field is not valid Unicode text") from None
