"""Deferred national e-card codes, confirmed by the platform at the next sync
(``POST /v1/ecard/confirm``, docs/sync.md §12, docs/qr-format.md §14.4).

A terminal that could not have a national code decoded while the holder waited, and whose
profile defers, let the holder through and journaled a ``deferred`` row: its
``credential_token`` is the SHA-256 of the code's text, the text itself is kept in the row's
encrypted personal field :data:`DEFERRED_FIELD`. Once the row is uploaded, the sync sends the
text with the row's seq; the platform finds the row, checks that the text is the one it
names, and judges the code *at the time of the scan* (the row's wall time): a code it issued
and not expired then, the card not expired then nor on its deny list for that day, the
scenario one the terminal is registered for. Its verdict is :class:`Confirmation`; the
terminal appends a follow-up row naming the deferred one (``ref_seq``): ``ecard_confirmed``
(accept), or ``ecard_invalid`` (refuse) with the flag ``invalid:<reason>`` — the journal is
append-only, so the deferred row is never edited — and uploads it.

Both ends parse with this module, so the wire structure is written once. No network here: the
sync client sends the request (:meth:`sync.client.SyncClient.confirm_deferred`), the reference
platform answers it (:mod:`platform_server.deferred`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from offline_store import JournalEntry, JournalRow, Store, canonical_ecard_id
from sync.errors import SyncProtocolError
from sync.wire import CATEGORY, CONTROL, HEX64, ISO_DATE, REGION

__all__ = [
    "CONFIRMED",
    "DEFERRED_FIELD",
    "INVALID",
    "PATH_CONFIRM",
    "ConfirmRequest",
    "Confirmation",
    "Invalidity",
    "code_hash",
    "follow_up_entry",
    "invalid_flag",
    "plain_follow_up",
]

PATH_CONFIRM = "/v1/ecard/confirm"
#: the personal field of a deferred row that keeps the code's text (encrypted) for the sync
DEFERRED_FIELD = "ecard_code"
#: the reason codes of the follow-up rows
CONFIRMED = "ecard_confirmed"
INVALID = "ecard_invalid"
CODE_TEXT_MAX = 4096
INT64_MAX = 2**63 - 1
REQUEST_KEYS = frozenset({"seq", "code"})
VALID_KEYS = frozenset({"seq", "valid", "token", "region", "category", "not_after"})
INVALID_KEYS = frozenset({"seq", "valid", "reason"})


class Invalidity(StrEnum):
    """Why a deferred code turned out invalid (the ``reason`` of the platform's verdict, or
    what the terminal found itself), each the second word of the flag ``invalid:<reason>``."""

    UNKNOWN_CODE = "unknown_code"  # the platform never issued it (forged, or mistyped)
    CODE_EXPIRED = "code_expired"  # its validity had ended when it was scanned
    CARD_EXPIRED = "card_expired"  # the card's validity had ended that day
    SCENARIO_NOT_ALLOWED = "scenario_not_allowed"  # the terminal is not registered for it
    DENY_LOST = "deny_lost"  # the card was on the deny list that day
    DENY_CANCELLED = "deny_cancelled"
    DENY_REPLACED = "deny_replaced"
    DENY_FRAUD = "deny_fraud"
    # found by the terminal, never answered by the platform
    CATEGORY_NOT_ALLOWED = "category_not_allowed"  # the profile does not serve its category
    REGION_NOT_ACCEPTED = "region_not_accepted"  # a region restriction of the profile
    CODE_MISSING = "code_missing"  # the deferred row kept no code to send
    CODE_MISMATCH = "code_mismatch"  # the text kept is not the one the row names


#: the reasons a platform answers
PLATFORM_REASONS = frozenset(
    {
        Invalidity.UNKNOWN_CODE,
        Invalidity.CODE_EXPIRED,
        Invalidity.CARD_EXPIRED,
        Invalidity.SCENARIO_NOT_ALLOWED,
        Invalidity.DENY_LOST,
        Invalidity.DENY_CANCELLED,
        Invalidity.DENY_REPLACED,
        Invalidity.DENY_FRAUD,
    }
)


def code_hash(text: str) -> str:
    """What a deferred row holds as its ``credential_token``: the lowercase hex SHA-256 of the
    code's text (a national code is random; the hash names it without keeping it).

    :param text: the code
    :raises: nothing
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def invalid_flag(reason: Invalidity) -> str:
    """The journal flag of a follow-up row that found its deferred code invalid.

    :param reason: why
    :raises: nothing
    """
    return f"invalid:{reason}"


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """The body of ``POST /v1/ecard/confirm``: a deferred row of the signing terminal and the
    code it deferred.

    :param seq: the deferred row's seq
    :param code: the code's text
    """

    seq: int
    code: str

    def to_bytes(self) -> bytes:
        """The JSON body.

        :raises: nothing
        """
        body = {"seq": self.seq, "code": self.code}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    @classmethod
    def parse(cls, data: object) -> ConfirmRequest:
        """Check a decoded request body.

        :param data: the JSON document
        :raises ValueError: other keys, or values of the wrong type or size (the message never
            repeats the code)
        """
        if not isinstance(data, dict) or set(data) != REQUEST_KEYS:
            raise ValueError(f"a confirm request has exactly {sorted(REQUEST_KEYS)}")
        seq, code = data["seq"], data["code"]
        if isinstance(seq, float) and seq.is_integer():
            seq = int(seq)  # 15.0 is an integer to JSON Schema
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= INT64_MAX:
            raise ValueError("seq must be a positive integer (the deferred row's)")
        if not isinstance(code, str) or not 0 < len(code) <= CODE_TEXT_MAX or CONTROL.search(code):
            raise ValueError(f"code must be 1-{CODE_TEXT_MAX} characters without controls")
        try:
            code.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("code is not valid Unicode text") from None
        return cls(seq, code)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The platform's verdict on a deferred code, at the time it was scanned.

    :param seq: the deferred row's seq, as asked
    :param valid: the code stood for a valid card then
    :param reason: why not, when not valid
    :param token: the card's token, when valid
    :param region: the card's issuing region, when valid
    :param category: its 卡类别, when valid
    :param not_after: its end of validity, when valid
    """

    seq: int
    valid: bool
    reason: Invalidity | None = None
    token: str | None = None
    region: str | None = None
    category: str | None = None
    not_after: dt.date | None = None

    def to_json(self) -> dict[str, Any]:
        """The answer's JSON object.

        :raises: nothing
        """
        if not self.valid:
            return {"seq": self.seq, "valid": False, "reason": str(self.reason)}
        return {
            "seq": self.seq,
            "valid": True,
            "token": self.token,
            "region": self.region,
            "category": self.category,
            "not_after": self.not_after.isoformat() if self.not_after else None,
        }

    @classmethod
    def parse(cls, data: object, asked: int) -> Confirmation:
        """Check an answer strictly.

        :param data: the parsed JSON answer
        :param asked: the seq that was asked (the answer must name it)
        :raises SyncProtocolError: another shape, another row, or a malformed value
        """
        if not isinstance(data, dict) or data.get("seq") != asked:
            raise SyncProtocolError("the confirm answer does not name the row asked")
        if data.get("valid") is False:
            if set(data) != INVALID_KEYS or data["reason"] not in PLATFORM_REASONS:
                raise SyncProtocolError(
                    f"an invalid verdict has exactly {sorted(INVALID_KEYS)}, with a known reason"
                )
            return cls(asked, False, Invalidity(data["reason"]))
        if data.get("valid") is not True or set(data) != VALID_KEYS:
            raise SyncProtocolError(f"a valid verdict has exactly {sorted(VALID_KEYS)}")
        token, region, category, not_after = (
            data["token"],
            data["region"],
            data["category"],
            data["not_after"],
        )
        for name, value, pattern in (
            ("token", token, HEX64),
            ("region", region, REGION),
            ("category", category, CATEGORY),
            ("not_after", not_after, ISO_DATE),
        ):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise SyncProtocolError(f"the confirm answer's {name} is malformed")
        try:
            day = dt.date.fromisoformat(not_after)
        except ValueError:
            raise SyncProtocolError("the confirm answer's not_after is no calendar date") from None
        return cls(asked, True, None, token, region, category, day)


def follow_up_entry(
    row: JournalRow,
    *,
    reason: Invalidity | None,
    card_hash: str | None = None,
    amount: int | None = None,
    flags: tuple[str, ...] = (),
) -> JournalEntry:
    """The row that follows up a deferred one: confirmed, or invalid with its reason.

    :param row: the deferred row
    :param reason: why the code turned out invalid; ``None``: confirmed
    :param card_hash: the card's keyed hash (``ecard:`` + token), when the platform named the
        card; else the row's own token (the code's hash) is kept
    :param amount: the fare of a confirmed ride, in fen
    :param flags: more flags (``unchecked:profile``)
    :raises: nothing
    """
    return JournalEntry(
        scenario=row.scenario,
        catalogue_item=row.catalogue_item,
        credential_token=card_hash or row.credential_token,
        outcome="refuse" if reason is not None else "accept",
        reason_code=INVALID if reason is not None else CONFIRMED,
        amount=amount if reason is None else None,
        terminal_id=row.terminal_id,
        flags=((invalid_flag(reason),) if reason is not None else ()) + flags,
        ref_seq=row.seq,
    )


def plain_follow_up(store: Store, row: JournalRow, confirmation: Confirmation) -> JournalEntry:
    """The follow-up row of a verdict taken as it is (the terminal's own checks — the profile's
    categories, the fare — are :class:`terminal.ecard_confirm.FollowUps`).

    :param store: the store (the pepper of the card's keyed hash)
    :param row: the deferred row
    :param confirmation: the platform's verdict
    :raises StoreError: the store holds no pepper
    """
    if not confirmation.valid:
        return follow_up_entry(row, reason=confirmation.reason)
    assert confirmation.token is not None  # Confirmation.parse guarantees it
    card_hash = store.card_hash(canonical_ecard_id(confirmation.token))
    return follow_up_entry(row, reason=None, card_hash=card_hash)
