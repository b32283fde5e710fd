"""One card's deny-list status, asked of the platform when the terminal's own list is stale or
missing (``POST /v1/cards/status``, docs/sync.md §11).

The question carries only the card's keyed hash (docs/offline-store.md §2), in the body so that
no access log holds it; the answer is the platform's current entry for it. Both ends parse with
this module, so the wire structure is written once. Pure: no I/O, no HTTP client (the decision
pipeline imports it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sync.errors import SyncProtocolError
from sync.wire import HEX64, ISO_DATE

__all__ = ["DENY_REASONS", "PATH_CARD_STATUS", "CardStatus", "parse_card_hash"]

PATH_CARD_STATUS = "/v1/cards/status"
DENY_REASONS = frozenset({"lost", "cancelled", "replaced", "fraud"})
ANSWER_KEYS = frozenset({"card_hash", "listed", "reason", "effective", "version"})
INT64_MAX = 2**63 - 1


def parse_card_hash(body: object) -> str:
    """The card hash of a request body ``{"card_hash": "64 lowercase hex"}``.

    :param body: the parsed JSON body
    :raises ValueError: any other shape (the message names the problem, never the value)
    """
    if not isinstance(body, dict) or set(body) != {"card_hash"}:
        raise ValueError('the body must be exactly {"card_hash": "…64 hex…"}')
    card_hash = body["card_hash"]
    if not isinstance(card_hash, str) or not HEX64.fullmatch(card_hash):
        raise ValueError("card_hash must be 64 lowercase hex characters (a keyed card hash)")
    return card_hash


@dataclass(frozen=True, slots=True)
class CardStatus:
    """The platform's answer for one card.

    :param card_hash: the card's keyed hash, as asked
    :param listed: the card is on the platform's current deny list
    :param reason: ``lost``, ``cancelled``, ``replaced`` or ``fraud`` when listed, else ``None``
    :param effective: the first day the entry applies when listed, else ``None``
    :param version: the platform's deny-list version the answer comes from
    """

    card_hash: str
    listed: bool
    reason: str | None
    effective: dt.date | None
    version: int

    def refuses_on(self, day: dt.date) -> bool:
        """Whether the entry refuses the card on a day (listed, and effective by then).

        :param day: the terminal's local date
        :raises: nothing
        """
        return self.listed and self.effective is not None and self.effective <= day

    def to_json(self) -> dict[str, Any]:
        """The answer's JSON object: every field, the date in ISO form.

        :raises: nothing
        """
        answer = asdict(self)
        answer["effective"] = self.effective.isoformat() if self.effective else None
        return answer

    @classmethod
    def parse(cls, data: object, asked: str) -> CardStatus:
        """Check an answer strictly.

        :param data: the parsed JSON answer
        :param asked: the card hash that was asked (the answer must name it)
        :raises SyncProtocolError: another shape, another card, or an inconsistent entry
        """
        if not isinstance(data, dict) or set(data) != ANSWER_KEYS:
            raise SyncProtocolError(f"a card status answer has exactly {sorted(ANSWER_KEYS)}")
        if data["card_hash"] != asked:
            raise SyncProtocolError("the card status answer names another card")
        listed, reason, effective, version = (
            data["listed"],
            data["reason"],
            data["effective"],
            data["version"],
        )
        if not isinstance(listed, bool):
            raise SyncProtocolError("card status: listed must be true or false")
        if isinstance(version, bool) or not isinstance(version, int):
            raise SyncProtocolError("card status: version must be a non-negative integer")
        if not 0 <= version <= INT64_MAX:
            raise SyncProtocolError("card status: version must be a non-negative integer")
        if not listed:
            if reason is not None or effective is not None:
                raise SyncProtocolError("card status: an unlisted card has no reason or date")
            return cls(asked, False, None, None, version)
        if reason not in DENY_REASONS:
            raise SyncProtocolError(f"card status: reason must be one of {sorted(DENY_REASONS)}")
        if not isinstance(effective, str) or not ISO_DATE.fullmatch(effective):
            raise SyncProtocolError("card status: effective must be a date YYYY-MM-DD")
        try:
            day = dt.date.fromisoformat(effective)
        except ValueError:
            raise SyncProtocolError("card status: effective is not a calendar date") from None
        return cls(asked, True, reason, day, version)
