"""The payment object's facts and formats, one definition for the terminal that writes it
(:mod:`offline_store.payment`) and the platform that checks it (:mod:`platform_server.payments`).

The contract is docs/payments.md §6 and ``sync/openapi.yaml`` ``Payment``: which facts a
purchase states, which may be ``null`` (not known yet), the range of each integer and the
format of each text, and :func:`problems`, which checks them. What each side does with a fact
off its format (a :class:`JournalError` on the terminal, a 400 on the platform) and the rules
only one side has stay with that side. A pure codec: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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
    "TEXTS",
    "TIME",
    "PaymentFacts",
    "is_int_in",
    "problems",
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
#: ``YYYYMMDDhhmmss``, as sync/openapi.yaml says it (a 30 February passes: its TAC cannot verify)
TIME = re.compile(
    r"[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"
)
#: text fact → its format (``tac`` is ``null`` until the card gave it)
TEXTS = {"tac": TAC, "time": TIME, "terminal_number": TERMINAL_NUMBER}
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


def problems(facts: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """The facts of a payment object off the contract, in the order of its table.

    A fact ``facts`` lacks counts as ``null`` (a transit object has no medical parts); which
    keys an object must have is the caller's rule. After a ``kind`` off the contract nothing
    more is checked: the serial's and the issuer's formats depend on it.

    :param facts: fact → value, as decoded from JSON or held by :class:`PaymentFacts`
    :returns: ``(fact, rule)`` for each fact off its format, ``rule`` a phrase to follow the
        fact's name (``"must be one of ['transit', 'medical']"``); never the value itself
    :raises: nothing
    """
    kind = facts.get("kind")
    if kind not in KINDS:
        yield "kind", f"must be one of {list(KINDS)}"
        return
    if facts.get("state") not in STATES:
        yield "state", f"must be one of {list(STATES)}"
    for name, (low, high, nullable) in INT_RANGES.items():
        value = facts.get(name)
        if not (value is None and nullable) and not is_int_in(value, low, high):
            yield name, f"must be an integer in {low}…{high}"
    for name, pattern in TEXTS.items():
        value = facts.get(name)
        if value is None and name == "tac":
            continue
        if not isinstance(value, str) or not pattern.fullmatch(value):
            yield name, "does not have its format"
    serial = facts.get("card_serial")
    if not isinstance(serial, str) or not SERIALS[str(kind)].fullmatch(serial):
        yield "card_serial", f"is not a {kind} card serial"
    issuer = facts.get("issuer")
    if kind == "transit" and not (isinstance(issuer, str) and ISSUER.fullmatch(issuer)):
        yield "issuer", "must be the 16-hex issuer id of a transit card"
    if kind == "medical" and issuer is not None:
        yield "issuer", "is null for a medical payment"


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
