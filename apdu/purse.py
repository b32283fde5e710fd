"""Purchase MACs: the security-module side of a debit (spec doc §7, PBOC e-purse style).

A purchase runs between the card and the security module in three steps (§7.2):

1. the card's INITIALIZE FOR PURCHASE gives a pseudo-random, its transaction sequence, the key
   version and the algorithm id;
2. the module computes MAC1 (``80 70``) and hands out its own terminal transaction sequence;
   the card's DEBIT FOR PURCHASE checks MAC1 and answers TAC and MAC2;
3. the module checks MAC2 (``80 72``): only then did the card really debit.

The computation (DES, the only purse algorithm with public test material here):

* the card's purchase key DPK is diversified from the purchase root over two 8-byte factors,
  the issuer id and then the card application serial (the ``80 70`` data lists them the other
  way round, the card's own level first, as every PSAM command does);
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
from apdu.errors import ProtocolError

#: transaction types of the MAC1 data (§7.2 step 4)
TYPE_PURCHASE = 0x06
TYPE_COMPOUND = 0x09
#: the card's algorithm id for DES/3DES purchase keys
PURSE_ALG_DES = 0x00
AMOUNT_MAX = 0xFFFFFFFF
MAC1_DATA_LEN = 36  # the Lc of 80 70 (§7.2 step 4: 0x24)
TERMINAL_NUMBER_LEN = 6


def bcd_datetime(when: datetime) -> bytes:
    """The 7-byte BCD ``YYYYMMDDhhmmss`` of a transaction time.

    :param when: the local transaction time
    """
    return bytes.fromhex(when.strftime("%Y%m%d%H%M%S"))


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
    :param card_serial: the card application serial, 8 bytes (the card-level factor)
    :param issuer_id: the issuer / city id, 8 bytes (the issuer-level factor)
    :raises ProtocolError: a field of the wrong length or out of range
    """

    card_random: bytes
    card_sequence: int
    amount: int
    transaction_type: int
    when: datetime
    key_version: int
    algorithm_id: int
    card_serial: bytes
    issuer_id: bytes

    def __post_init__(self) -> None:
        if len(self.card_random) != 4:
            raise ProtocolError("the card's purchase random is 4 bytes")
        if len(self.card_serial) != 8 or len(self.issuer_id) != 8:
            raise ProtocolError("the card serial and the issuer id are 8 bytes each")
        if not 0 <= self.card_sequence <= 0xFFFF:
            raise ProtocolError("the card transaction sequence is 2 bytes")
        if not 0 < self.amount <= AMOUNT_MAX:
            raise ProtocolError(f"a purchase amount is 1 … {AMOUNT_MAX} fen, got {self.amount}")
        if self.transaction_type not in (TYPE_PURCHASE, TYPE_COMPOUND):
            raise ProtocolError(f"transaction type {self.transaction_type:#04x} is not a purchase")
        if not 0 <= self.key_version <= 0xFF or not 0 <= self.algorithm_id <= 0xFF:
            raise ProtocolError("the key version and the algorithm id are one byte each")

    def mac1_data(self) -> bytes:
        """The 36 data bytes of ``80 70`` (INIT SAM FOR PURCHASE), in the order of §7.2."""
        return (
            self.card_random
            + self.card_sequence.to_bytes(2, "big")
            + self.amount.to_bytes(4, "big")
            + bytes([self.transaction_type])
            + bcd_datetime(self.when)
            + bytes([self.key_version, self.algorithm_id])
            + self.card_serial
            + self.issuer_id
        )


@dataclass(frozen=True, slots=True)
class PurchaseMac1:
    """The module's answer to MAC1: its terminal transaction sequence and MAC1.

    :param terminal_sequence: 终端交易序号, 4 bytes as an integer
    :param mac1: 4 bytes, for the card's DEBIT FOR PURCHASE
    """

    terminal_sequence: int
    mac1: bytes


def parse_mac1_data(data: bytes) -> PurchaseRequest:
    """Read the 36 data bytes of ``80 70`` back into a request (the module side).

    :param data: the command data
    :raises ProtocolError: wrong length, bad BCD time or a field out of range
    """
    if len(data) != MAC1_DATA_LEN:
        raise ProtocolError(f"INIT SAM FOR PURCHASE data is {MAC1_DATA_LEN} bytes, got {len(data)}")
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
        card_serial=data[20:28],
        issuer_id=data[28:36],
    )


def card_purchase_key(root: bytes, request: PurchaseRequest) -> bytes:
    """The card's DPK: the purchase root diversified by the issuer id, then the card serial.

    :param root: the 16-byte purchase root (DPK master)
    :param request: the purchase (its serial and issuer id)
    """
    return crypto.diversify_levels(
        crypto.Algorithm.DES, root, [request.issuer_id, request.card_serial]
    )


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
    if len(terminal_number) != 2 * TERMINAL_NUMBER_LEN or not terminal_number.isdigit():
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
