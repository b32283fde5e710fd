"""What every card payment shares: the amounts, the card's answers, and what went wrong for the
person paying (spec doc §7; PBOC e-purse and the SSC medical account alike).

A payment application on a card — the transit e-purse (:mod:`apdu.transit`) or the medical
account of DF04 (:mod:`apdu.medical_payment`) — answers four verbs the purchase flow
(:mod:`apdu.purchase`) drives without knowing which one it talks to (:class:`PurseApplication`):

* INITIALIZE FOR PURCHASE → :class:`PurchaseInit`: balance, the card's transaction sequence,
  key version, algorithm id and a pseudo-random;
* DEBIT FOR PURCHASE → :class:`DebitAnswer`: TAC and MAC2;
* GET TRANSACTION PROOF → the MAC2 and TAC of the card's last debit again, for a terminal
  that lost the answer (anti-tearing);
* its transaction history (:class:`HistoryEntry`), newest first.

Errors, in the tree of :mod:`apdu.errors`::

    CardStateError
    └── PaymentRefused              the card refused a payment step; nothing was debited
        ├── InsufficientBalance     9401: balance (plus overdraft) below the amount
        ├── Mac1Invalid             9302: the card does not accept the terminal's MAC1
        ├── PurseLocked             9303: the payment application is locked
        ├── CounterExhausted        9402: the transaction counter reached its maximum
        ├── KeyVersionUnsupported   9403: the card has no key of that index/version
        ├── ProofUnavailable        9406: no proof for that transaction (not its last one)
        └── NoPurchasePending       6901/6985: DEBIT without a fresh INITIALIZE
    SscardError
    └── PurchaseTorn                the card left while a DEBIT was in flight: tap again

Each card status word of a payment command turns into one of them (:func:`payment_error`);
any other status word stays a raw :class:`~apdu.errors.ApduError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from apdu.command import CommandApdu
from apdu.errors import (
    ApduError,
    CardStateError,
    ProtocolError,
    RecordFormatError,
    SscardError,
    card_state_error,
)
from apdu.files import CLA_ISO, INS_READ_RECORD
from apdu.purse import AMOUNT_MAX, bcd_datetime, parse_bcd_time
from apdu.sw import Sw
from apdu.transport import Connection, send

SW_MAC_INVALID = 0x9302
SW_LOCKED = 0x9303
SW_INSUFFICIENT = 0x9401
SW_COUNTER_MAX = 0x9402
SW_KEY_UNSUPPORTED = 0x9403
SW_PROOF_UNAVAILABLE = 0x9406
SW_NOT_ACCEPTED = 0x6901
SW_CONDITIONS = 0x6985
MAC_LEN = 4
SEQUENCE_MOD = 0x10000  # the card's transaction sequences are 2 bytes
P2_RECORD_NUMBER = 0x04  # READ RECORD: P1 is the record number (ISO 7816-4)
P1_DEBIT = 0x01
DEBIT_DATA_LEN = 15  # terminal sequence 4 ‖ date 4 ‖ time 3 ‖ MAC1 4
ANSWER_LEN = 2 * MAC_LEN  # DEBIT and GET TRANSACTION PROOF answer TAC and MAC2

R = TypeVar("R")


class PaymentRefused(CardStateError):
    """The card refused a payment step: nothing was debited.

    Each kind names its status word in its class line, ``class X(PaymentRefused, sw=…)``, and
    ``also=`` the others that mean the same; :func:`payment_error` finds it by any of them.

    :param message: what happened, for the person at the terminal
    """

    sw = 0
    _by_sw: ClassVar[dict[int, type[PaymentRefused]]] = {}

    def __init_subclass__(cls, *, sw: int, also: tuple[int, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.sw = sw
        for code in (sw, *also):
            PaymentRefused._by_sw[code] = cls


class InsufficientBalance(PaymentRefused, sw=SW_INSUFFICIENT):
    """``9401``: the balance (with the overdraft limit) does not cover the amount (余额不足)."""


class Mac1Invalid(PaymentRefused, sw=SW_MAC_INVALID):
    """``9302``: the card does not accept MAC1 — the security module's keys are not the card's."""


class PurseLocked(PaymentRefused, sw=SW_LOCKED):
    """``9303``: the payment application is locked; only its issuer can unlock it."""


class CounterExhausted(PaymentRefused, sw=SW_COUNTER_MAX):
    """``9402``: the card's transaction counter is at its maximum; it can pay no more."""


class KeyVersionUnsupported(PaymentRefused, sw=SW_KEY_UNSUPPORTED):
    """``9403``: the card holds no purchase key of the index the terminal asked for."""


class ProofUnavailable(PaymentRefused, sw=SW_PROOF_UNAVAILABLE):
    """``9406``: the card keeps no proof of that transaction (it was not its last one)."""


class NoPurchasePending(PaymentRefused, sw=SW_NOT_ACCEPTED, also=(SW_CONDITIONS,)):
    """``6901``/``6985``: a DEBIT the card had no fresh INITIALIZE FOR PURCHASE for."""


class PurchaseTorn(SscardError):
    """The card left while a DEBIT was in flight: whether it debited is unknown until it comes
    back (请重新刷卡 / tap again); the purchase flow then recovers (:mod:`apdu.purchase`)."""


#: what each refusal tells the person at the terminal (:func:`payment_error` adds the SW)
_SAYS: dict[type[PaymentRefused], str] = {
    InsufficientBalance: "insufficient balance (余额不足)",
    Mac1Invalid: "the card refused MAC1: the security module's keys differ",
    PurseLocked: "the payment application is locked",
    CounterExhausted: "the card's transaction counter is exhausted",
    KeyVersionUnsupported: "the card has no purchase key of that index",
    ProofUnavailable: "the card keeps no proof of that transaction",
    NoPurchasePending: "no purchase initialised on the card",
}


def payment_error(sw: int) -> PaymentRefused | None:
    """The payment refusal a status word stands for, or ``None`` (keep the raw ApduError).

    :param sw: SW1SW2 as a 16-bit integer
    """
    cls = PaymentRefused._by_sw.get(sw)
    if cls is None:
        return None
    refusal = cls(f"{_SAYS[cls]} (SW {sw:04X})")
    refusal.sw = sw  # 6901 and 6985 share a class: keep the one the card said
    return refusal


def send_payment(connection: Connection, command: CommandApdu) -> bytes:
    """Send a payment command; a refusal becomes its :class:`PaymentRefused`.

    :param connection: the card, with the T=0 chain
    :param command: the command
    :raises PaymentRefused: a status word of the payment catalogue
    :raises CardStateError: ``6982`` (PIN or authentication first), ``6A81`` (card blocked)
    :raises ApduError: any other status word but ``9000``
    """
    # the payment catalogue first (its 9303 is the purse's lock), then 6982 (the PIN first)
    # and 6A81 (the card is blocked)
    return send(connection, command, payment_error, card_state_error)


def read_numbered_record(
    connection: Connection, sfi: int, number: int, length: int
) -> bytes | None:
    """READ RECORD ``00 B2 <number> <sfi·8+4> <length>`` of a payment application's record
    file (the transit log, DF04's debit records), newest first.

    :param connection: the card, with the T=0 chain
    :param sfi: the record file's short identifier
    :param number: the record number, 1 = the newest
    :param length: the record's length
    :returns: the record, ``None`` past the last written one (``6A83``)
    :raises CardStateError: ``6982`` (the PIN first), ``6A81`` (card blocked)
    :raises ApduError: any other refusal
    """
    p2 = sfi << 3 | P2_RECORD_NUMBER
    command = CommandApdu(CLA_ISO, INS_READ_RECORD, number, p2, le=length)
    try:
        return send_payment(connection, command)
    except ApduError as exc:
        if exc.sw == Sw.RECORD_NOT_FOUND:
            return None
        raise


def until_gap(read: Callable[[int], R | None], count: int) -> Iterator[R]:
    """Records 1 … ``count`` (newest first) up to the first one never written.

    :param read: reads record ``n``, ``None`` when there is none
    :param count: how many records the file holds
    """
    for number in range(1, count + 1):
        record = read(number)
        if record is None:
            return
        yield record


def check_amount(amount: int, what: str = "amount") -> int:
    """Refuse an amount a 4-byte field cannot carry.

    :param amount: fen (分)
    :param what: the field, for the message
    :raises ProtocolError: negative or over 4 bytes
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= AMOUNT_MAX:
        raise ProtocolError(f"{what} is 0 … {AMOUNT_MAX} fen, got {amount!r}")
    return amount


@dataclass(frozen=True, slots=True)
class Charge:
    """What a payment takes, in fen (分).

    :param amount: what leaves the card's purse or personal account (个人账户); the transit
        fare, or the medical personal-account amount
    :param self_pay: medical only: the self-paid part (自付), counted on the card, not debited
    :param pooled: medical only: the pooled-fund part (统筹), counted on the card, not debited
    :raises ProtocolError: a negative amount or one over 4 bytes
    """

    amount: int
    self_pay: int = 0
    pooled: int = 0

    def __post_init__(self) -> None:
        check_amount(self.amount)
        check_amount(self.self_pay, "the self-paid amount")
        check_amount(self.pooled, "the pooled-fund amount")

    @property
    def total(self) -> int:
        """本次消费总金额: the three parts together."""
        return self.amount + self.self_pay + self.pooled


@dataclass(frozen=True, slots=True)
class PurchaseInit:
    """The card's answer to INITIALIZE FOR PURCHASE, in the fields both purses share.

    :param balance: the balance before the purchase, fen (negative when overdrawn)
    :param sequence: the card's transaction sequence this purchase will use (2 bytes)
    :param key_version: the version of the purchase key the card will use
    :param algorithm_id: the card's algorithm id (``00`` DES/3DES)
    :param random: the card's 4-byte pseudo-random for the session key
    :param overdraft_limit: the transit overdraft limit (透支限额), 0 for the medical account
    """

    balance: int
    sequence: int
    key_version: int
    algorithm_id: int
    random: bytes
    overdraft_limit: int = 0


@dataclass(frozen=True, slots=True)
class DebitRequest:
    """DEBIT FOR PURCHASE's data, the same on the transit purse and the medical account:
    ``terminal sequence 4 ‖ date 4 ‖ time 3 ‖ MAC1 4`` (spec doc §7.2 step 4).

    :param terminal_sequence: the module's terminal transaction sequence (4 bytes)
    :param when: the transaction time sent with MAC1
    :param mac1: 4 bytes
    """

    terminal_sequence: int
    when: dt.datetime
    mac1: bytes

    @classmethod
    def parse(cls, data: bytes) -> DebitRequest:
        """Parse the data a card received (the emulators).

        :param data: 15 bytes
        :raises RecordFormatError: another length, or a time that is not BCD or no calendar time
        """
        if len(data) != DEBIT_DATA_LEN:
            raise RecordFormatError(
                f"DEBIT FOR PURCHASE sends {DEBIT_DATA_LEN} bytes, got {len(data)}"
            )
        return cls(
            int.from_bytes(data[0:4], "big"), parse_bcd_time(data[4:11], "DEBIT"), data[11:15]
        )

    def to_bytes(self) -> bytes:
        """The command's data.

        :raises ProtocolError: a MAC1 or terminal sequence of another size
        """
        if len(self.mac1) != MAC_LEN or not 0 <= self.terminal_sequence <= 0xFFFFFFFF:
            raise ProtocolError("MAC1 and the terminal sequence are 4 bytes each")
        return self.terminal_sequence.to_bytes(4, "big") + bcd_datetime(self.when) + self.mac1


@dataclass(frozen=True, slots=True)
class DebitAnswer:
    """A debit's proof: TAC (for the issuer) and MAC2 (for the security module).

    :param tac: 4 bytes
    :param mac2: 4 bytes
    """

    tac: bytes
    mac2: bytes

    @classmethod
    def parse(cls, data: bytes) -> DebitAnswer:
        """Parse DEBIT FOR PURCHASE's answer ``TAC 4 ‖ MAC2 4`` (spec doc §7.1, §7.2 step 5).

        :param data: 8 bytes
        :raises ProtocolError: another length
        """
        if len(data) != 2 * MAC_LEN:
            raise ProtocolError(
                f"DEBIT FOR PURCHASE answers TAC and MAC2 (8 bytes), got {len(data)}"
            )
        return cls(data[:MAC_LEN], data[MAC_LEN:])

    @classmethod
    def parse_proof(cls, data: bytes) -> DebitAnswer:
        """Parse GET TRANSACTION PROOF's answer ``MAC2 4 ‖ TAC 4`` (the other order: every public
        terminal reading it takes MAC2 first, and JR/T 0025 names it "MAC and TAC").

        :param data: 8 bytes
        :raises ProtocolError: another length
        """
        if len(data) != 2 * MAC_LEN:
            raise ProtocolError(
                f"GET TRANSACTION PROOF answers MAC2 and TAC (8 bytes), got {len(data)}"
            )
        return cls(tac=data[MAC_LEN:], mac2=data[:MAC_LEN])


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transaction a card recorded, in the fields a torn purchase is matched on.

    :param sequence: the card transaction sequence the transaction used
    :param amount: what left the purse or personal account, fen
    :param terminal_number: the terminal's 12 digits
    :param when: the transaction time, to the second
    :param purchase: whether it was a purchase (a load is not; its sequence is another counter)
    """

    sequence: int
    amount: int
    terminal_number: str
    when: dt.datetime
    purchase: bool = True


class PurseApplication(Protocol):
    """A card's payment application, as the purchase flow drives it (one per card session)."""

    #: ``transit`` or ``medical``, for records and logs
    kind: str

    @property
    def card_id(self) -> str:
        """The application's own card number (hex), which a torn purchase is matched on."""
        ...

    def factors(self) -> tuple[bytes, ...]:
        """The purchase-key diversification factors, card level first (:mod:`apdu.purse`)."""
        ...

    def initialize(self, charge: Charge, terminal_number: str) -> PurchaseInit:
        """INITIALIZE FOR PURCHASE.

        :param charge: the amounts
        :param terminal_number: the security module's 12-digit terminal number
        :raises PaymentRefused: the card's refusal (insufficient balance, locked, …)
        """
        ...

    def debit(self, terminal_sequence: int, when: dt.datetime, mac1: bytes) -> DebitAnswer:
        """DEBIT FOR PURCHASE: the card checks MAC1, debits, answers TAC and MAC2.

        :param terminal_sequence: the module's terminal transaction sequence
        :param when: the transaction time
        :param mac1: from the module
        :raises PaymentRefused: the card's refusal (MAC1 invalid, …); nothing was debited
        """
        ...

    def proof(self, sequence_after: int) -> DebitAnswer:
        """GET TRANSACTION PROOF of the card's last purchase.

        :param sequence_after: the card's transaction sequence after that purchase
        :raises ProofUnavailable: ``9406``
        """
        ...

    def history(self) -> Iterator[HistoryEntry]:
        """The card's recorded transactions, newest first, read lazily."""
        ...


def sequence_distance(before: int, after: int) -> int:
    """How far a 2-byte transaction sequence moved from ``before`` to ``after`` (wrapping).

    :param before: the earlier value
    :param after: the later value
    """
    return (after - before) % SEQUENCE_MOD
