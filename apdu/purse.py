"""Purchase MACs: the security-module side of a debit (spec doc §7, PBOC e-purse style).

A purchase runs between the card and the security module in three steps (§7.2):

1. the card's INITIALIZE FOR PURCHASE gives a pseudo-random, its transaction sequence, the key
   version and the algorithm id;
2. the module computes MAC1 (``80 70``) and hands out its own terminal transaction sequence;
   the card's DEBIT FOR PURCHASE checks MAC1 and answers TAC and MAC2;
3. the module checks MAC2 (``80 72``): only then did the card really debit.

The computation (DES, the only purse algorithm with public test material here):

* the card's purchase key DPK is diversified from the national purchase root over three 8-byte
  factors: the region, the issuer and then the card application serial (S3-P9 §9.9: "3
  diversification factors"; the ``80 70`` data lists them the other way round, the card's own
  level first, as every PSAM command does);
* a PSAM holds the purchase key at a level of its own — the national root (3 factors), a region
  key (2: issuer, card) or an issuer key (1: the card serial) — independently of its IRK and
  RKSSSE levels (S3-P9 附录B gives the DPK usage ``22``, one level, where the IRK has ``67``).
  The number of factors is the Lc of ``80 70``: ``20 + 8·n`` (``1C``/``24``/``2C``); §7.2's
  transit trace is the 2-factor form ``80 70 00 00 24``;
* the session key ``SESPK = 3DES_DPK(card random 4 ‖ card sequence 2 ‖ terminal sequence
  low 2)``, 8 bytes;
* ``MAC1 = MAC_SESPK(amount 4 ‖ type 1 ‖ terminal number 6 ‖ date 4 ‖ time 3)`` and
  ``MAC2 = MAC_SESPK(amount 4)``, single-DES CBC-MAC with a zero IV, ISO/IEC 9797-1 padding
  method 2, the first 4 bytes.

Amounts are in fen (分), 4 bytes big-endian; the date and time are BCD ``YYYYMMDD`` ``hhmmss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apdu import crypto
from apdu.errors import ProtocolError, RecordFormatError

#: transaction types of the MAC1 data (§7.2 step 4)
TYPE_PURCHASE = 0x06
TYPE_COMPOUND = 0x09
#: the card's algorithm id for DES/3DES purchase keys
PURSE_ALG_DES = 0x00
AMOUNT_MAX = 0xFFFFFFFF
MAC1_FIXED_LEN = 20  # the 80 70 data before the factors (§7.2 step 4)
FACTOR_LEN = 8
MAX_LEVELS = 3  # region, issuer, card
TERMINAL_NUMBER_LEN = 6


def bcd_datetime(when: datetime) -> bytes:
    """The 7-byte BCD ``YYYYMMDDhhmmss`` of a transaction time.

    :param when: the local transaction time
    """
    return bytes.fromhex(when.strftime("%Y%m%d%H%M%S"))


def parse_bcd_time(raw: bytes, what: str) -> datetime:
    """A 7-byte BCD ``YYYYMMDDhhmmss`` as a datetime.

    :param raw: 7 bytes
    :param what: the field, for the message
    :raises RecordFormatError: not BCD or not a real time
    """
    digits = raw.hex()
    if len(raw) != 7 or not digits.isdigit():
        raise RecordFormatError(f"{what}: {digits.upper()} is not BCD YYYYMMDDhhmmss")
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise RecordFormatError(f"{what}: {digits} is not a calendar time") from None


@dataclass(frozen=True, slots=True)
class PurchaseRequest:
    """What the module needs for MAC1, from the card's INITIALIZE FOR PURCHASE answer.

    :param card_random: the card's 4-byte pseudo-random
    :param card_sequence: the card's offline transaction sequence (0–65535)
    :param amount: the amount in fen (分), 1 … 4294967295
    :param transaction_type: ``06`` purchase, ``09`` compound purchase
    :param when: the transaction time, as the terminal will send it to the card
    :param key_version: the card's key version
    :param algorithm_id: the card's algorithm id (``00``: DES/3DES)
    :param factors: the diversification factors, 8 bytes each, **the card's own level first**:
        card application serial, issuer id, region id. A terminal gives all three; the module
        sends as many as its purchase key needs (:meth:`mac1_data`). A request read back from
        ``80 70`` data holds the ones that were sent.
    :raises ProtocolError: a field of the wrong length or out of range
    """

    card_random: bytes
    card_sequence: int
    amount: int
    transaction_type: int
    when: datetime
    key_version: int
    algorithm_id: int
    factors: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.card_random) != 4:
            raise ProtocolError("the card's purchase random is 4 bytes")
        if not 1 <= len(self.factors) <= MAX_LEVELS:
            raise ProtocolError(
                f"a purchase has 1 to {MAX_LEVELS} diversification factors, got {len(self.factors)}"
            )
        if any(len(factor) != FACTOR_LEN for factor in self.factors):
            raise ProtocolError(f"the diversification factors are {FACTOR_LEN} bytes each")
        if not 0 <= self.card_sequence <= 0xFFFF:
            raise ProtocolError("the card transaction sequence is 2 bytes")
        if not 0 < self.amount <= AMOUNT_MAX:
            raise ProtocolError(f"a purchase amount is 1 … {AMOUNT_MAX} fen, got {self.amount}")
        if self.transaction_type not in (TYPE_PURCHASE, TYPE_COMPOUND):
            raise ProtocolError(f"transaction type {self.transaction_type:#04x} is not a purchase")
        if not 0 <= self.key_version <= 0xFF or not 0 <= self.algorithm_id <= 0xFF:
            raise ProtocolError("the key version and the algorithm id are one byte each")

    @property
    def card_serial(self) -> bytes:
        """The card application serial: the card-level factor."""
        return self.factors[0]

    def mac1_data(self, levels: int | None = None) -> bytes:
        """The data of ``80 70`` (INIT SAM FOR PURCHASE), in the order of §7.2.

        :param levels: how many factors to send, card level first (default: all of them);
            a PSAM whose purchase key sits ``n`` levels above the card takes ``n``
        :raises ProtocolError: more levels than the request has factors, or fewer than one
        """
        count = len(self.factors) if levels is None else levels
        if not 1 <= count <= len(self.factors):
            raise ProtocolError(
                f"{count} diversification levels asked for, the request has {len(self.factors)}"
            )
        return (
            self.card_random
            + self.card_sequence.to_bytes(2, "big")
            + self.amount.to_bytes(4, "big")
            + bytes([self.transaction_type])
            + bcd_datetime(self.when)
            + bytes([self.key_version, self.algorithm_id])
            + b"".join(self.factors[:count])
        )


@dataclass(frozen=True, slots=True)
class PurchaseMac1:
    """The module's answer to MAC1: its terminal transaction sequence and MAC1.

    :param terminal_sequence: 终端交易序号, 4 bytes as an integer
    :param mac1: 4 bytes, for the card's DEBIT FOR PURCHASE
    """

    terminal_sequence: int
    mac1: bytes


def mac1_levels(length: int) -> int | None:
    """The number of factors in ``80 70`` data of ``length`` bytes, or ``None`` if it fits none.

    :param length: the Lc of ``80 70``
    """
    count, rest = divmod(length - MAC1_FIXED_LEN, FACTOR_LEN)
    return count if rest == 0 and 1 <= count <= MAX_LEVELS else None


def parse_mac1_data(data: bytes) -> PurchaseRequest:
    """Read the data of ``80 70`` back into a request (the module side).

    :param data: the command data: 20 bytes, then 1 to 3 factors of 8, card level first
    :raises ProtocolError: wrong length, bad BCD time or a field out of range
    """
    count = mac1_levels(len(data))
    if count is None:
        raise ProtocolError(
            f"INIT SAM FOR PURCHASE data is {MAC1_FIXED_LEN} + {FACTOR_LEN}·n bytes "
            f"(n = 1-{MAX_LEVELS}), got {len(data)}"
        )
    try:
        when = datetime.strptime(data[11:18].hex(), "%Y%m%d%H%M%S")
    except ValueError:
        raise ProtocolError("the transaction time is not BCD YYYYMMDDhhmmss") from None
    return PurchaseRequest(
        card_random=data[0:4],
        card_sequence=int.from_bytes(data[4:6], "big"),
        amount=int.from_bytes(data[6:10], "big"),
        transaction_type=data[10],
        when=when,
        key_version=data[18],
        algorithm_id=data[19],
        factors=tuple(
            data[i : i + FACTOR_LEN] for i in range(MAC1_FIXED_LEN, len(data), FACTOR_LEN)
        ),
    )


def card_purchase_key(key: bytes, request: PurchaseRequest) -> bytes:
    """The card's DPK: ``key`` diversified by the request's factors, the highest level first.

    ``key`` sits as many levels above the card as the request has factors: the national root
    for all three, a PSAM's region or issuer key for the factors it was sent.

    :param key: the 16-byte purchase key the factors hang from
    :param request: the purchase (its factors)
    """
    return crypto.diversify_levels(crypto.Algorithm.DES, key, request.factors[::-1])


def session_key(dpk: bytes, request: PurchaseRequest, terminal_sequence: int) -> bytes:
    """``SESPK = 3DES_DPK(random ‖ card sequence ‖ terminal sequence low 2 bytes)``.

    :param dpk: the card's 16-byte purchase key
    :param request: the purchase
    :param terminal_sequence: the module's terminal transaction sequence
    """
    seed = (
        request.card_random
        + request.card_sequence.to_bytes(2, "big")
        + (terminal_sequence & 0xFFFF).to_bytes(2, "big")
    )
    return crypto.session_key(crypto.Algorithm.DES, dpk, seed)


def mac1(sespk: bytes, request: PurchaseRequest, terminal_number: str) -> bytes:
    """MAC1 over amount, type, terminal number and time.

    :param sespk: the 8-byte session key
    :param request: the purchase
    :param terminal_number: the module's 12-digit terminal number
    :raises ProtocolError: a terminal number that is not 12 digits
    """
    if len(terminal_number) != 2 * TERMINAL_NUMBER_LEN or not (
        terminal_number.isascii() and terminal_number.isdigit()
    ):
        raise ProtocolError("the terminal number is 12 digits")
    data = (
        request.amount.to_bytes(4, "big")
        + bytes([request.transaction_type])
        + bytes.fromhex(terminal_number)
        + bcd_datetime(request.when)
    )
    return crypto.mac(crypto.Algorithm.DES, sespk, data)


def mac2(sespk: bytes, amount: int) -> bytes:
    """MAC2 over the amount: what the card proves the debit with.

    :param sespk: the 8-byte session key
    :param amount: the amount in fen
    """
    return crypto.mac(crypto.Algorithm.DES, sespk, amount.to_bytes(4, "big"))


# -- TAC (交易验证码): the issuer's proof of a debit -------------------------------------------
#
# PBOC e-purse, as issuers' clearing code computes it: the TAC key is the card's own DTK (not a
# session key) folded to a single DES key, its left half XOR its right half; the data is
# amount 4 ‖ type 1 ‖ terminal number 6 ‖ terminal sequence 4 ‖ date 4 ‖ time 3; the MAC is
# single-DES CBC with a zero IV, ISO/IEC 9797-1 padding method 2, the first 4 bytes. The card
# computes it with the debit; only the issuer (the platform, holding the DTK roots) can check
# it: no PSAM holds a DTK.


def tac_key(dtk: bytes) -> bytes:
    """The single-DES TAC key: the card's 16-byte DTK, left half XOR right half.

    :param dtk: the card's 16-byte transaction (TAC) key
    :raises ProtocolError: a DTK that is not 16 bytes
    """
    if len(dtk) != 2 * crypto.DES_BLOCK:
        raise ProtocolError(f"a DTK is 16 bytes, got {len(dtk)}")
    return bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:], strict=True))


def tac_data(
    amount: int,
    transaction_type: int,
    terminal_number: str,
    terminal_sequence: int,
    when: datetime,
) -> bytes:
    """The 22 bytes a purchase TAC covers (PBOC): amount, type, terminal, sequence, time.

    :param amount: the amount in fen
    :param transaction_type: ``06`` purchase
    :param terminal_number: 12 digits
    :param terminal_sequence: the terminal (PSAM) transaction sequence, 4 bytes
    :param when: the transaction time
    :raises ProtocolError: a value that does not fit its field
    """
    if not 0 <= amount <= AMOUNT_MAX or not 0 <= terminal_sequence <= 0xFFFFFFFF:
        raise ProtocolError("the amount and the terminal sequence are 4 bytes each")
    if not 0 <= transaction_type <= 0xFF:
        raise ProtocolError("the transaction type is one byte")
    if len(terminal_number) != 2 * TERMINAL_NUMBER_LEN or not (
        terminal_number.isascii() and terminal_number.isdigit()
    ):
        raise ProtocolError("the terminal number is 12 digits")
    return (
        amount.to_bytes(4, "big")
        + bytes([transaction_type])
        + bytes.fromhex(terminal_number)
        + terminal_sequence.to_bytes(4, "big")
        + bcd_datetime(when)
    )


def tac(dtk: bytes, data: bytes) -> bytes:
    """The TAC over ``data`` (:func:`tac_data`, or the medical layout) with the card's DTK.

    :param dtk: the card's 16-byte DTK
    :param data: the covered data
    :raises ProtocolError: a DTK that is not 16 bytes
    """
    return crypto.mac(crypto.Algorithm.DES, tac_key(dtk), data)
