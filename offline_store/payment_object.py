"""The payment object's facts and formats, one definition for the terminal that writes it
(:mod:`offline_store.payment`) and the platform that checks it (:mod:`platform_server.payments`).

The contract is docs/payments.md §6 and ``sync/openapi.yaml`` ``Payment``: which facts a
purchase states, which may be ``null`` (not known yet), the range of each integer and the
format of each text. What each side does with a fact off its format (a :class:`JournalError`
on the terminal, a 400 on the platform) stays with that side. A pure codec: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "AMOUNT_MAX",
    "BALANCE_MIN",
    "INT_RANGES",
    "ISSUER",
    "KINDS",
    "MEDICAL_ONLY",
    "SERIALS",
    "STATES",
    "TAC",
    "TERMINAL_NUMBER",
    "PaymentFacts",
    "is_int_in",
]

KINDS = ("transit", "medical")
STATES = ("pending", "done", "torn", "void")
AMOUNT_MAX = 0xFFFFFFFF
BALANCE_MIN = -0x80000000  # an overdrawn purse: a signed 4-byte balance
#: the facts only a medical payment states (its TAC covers them)
MEDICAL_ONLY = ("self_pay_fen", "pooled_fen")
#: integer fact → (lowest, highest, may be ``null``)
INT_RANGES: dict[str, tuple[int, int, bool]] = {
    "amount_fen": (0, AMOUNT_MAX, False),
    "balance_before": (BALANCE_MIN, AMOUNT_MAX, True),
    "balance_after": (BALANCE_MIN, AMOUNT_MAX, True),
    "card_sequence": (0, 0xFFFF, True),
    "terminal_sequence": (0, 0xFFFFFFFF, True),
    "self_pay_fen": (0, AMOUNT_MAX, True),
    "pooled_fen": (0, AMOUNT_MAX, True),
}
TAC = re.compile(r"[0-9A-F]{8}")
TERMINAL_NUMBER = re.compile(r"[0-9]{12}")
#: the transit issuer id of EF 0015
ISSUER = re.compile(r"[0-9A-F]{16}")
#: kind → its card serial: the transit application serial of EF 0015, the medical 卡识别码
SERIALS = {"transit": re.compile(r"[0-9A-F]{20}"), "medical": re.compile(r"[0-9A-F]{32}")}


def is_int_in(value: object, low: int, high: int) -> bool:
    """Whether a fact is an integer (a JSON number, not ``true``/``false``) in ``low``…``high``.

    :param value: the fact
    :param low: the lowest value allowed
    :param high: the highest value allowed
    """
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """A purchase's facts, as one journal row states them.

    :param kind: ``transit`` or ``medical``
    :param state: ``pending``, ``done``, ``torn`` or ``void``
    :param amount_fen: the amount debited (medical: from the personal account)
    :param balance_before: the balance INITIALIZE reported; ``None`` if it never answered
    :param balance_after: the balance once debited; ``None`` likewise
    :param card_sequence: the card's offline sequence the purchase used
    :param terminal_sequence: the PSAM's terminal sequence, ``None`` before MAC1
    :param tac: the card's TAC, 8 upper-case hex digits, once known
    :param time: the transaction time sent to the card, ``YYYYMMDDhhmmss``
    :param terminal_number: the PSAM's terminal number, 12 digits
    :param card_serial: the application serial (transit, 20 hex) or 卡识别码 (medical, 32 hex)
    :param issuer: the transit issuer id (16 hex); ``None`` for medical
    :param self_pay_fen: medical: the self-paid part (``None`` for transit)
    :param pooled_fen: medical: the pooled fund's part (``None`` for transit)
    """

    kind: str
    state: str
    amount_fen: int
    balance_before: int | None
    balance_after: int | None
    card_sequence: int | None
    terminal_sequence: int | None
    tac: str | None
    time: str
    terminal_number: str
    card_serial: str
    issuer: str | None
    self_pay_fen: int | None = None
    pooled_fen: int | None = None
