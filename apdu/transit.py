"""The transit e-purse (交通联合 / T-Union, JT/T 978 and PBOC e-purse style) on the card.

Spec doc §7.2, with what the public sources leave open decided here and listed in
``docs/payments.md``:

* the application is selected by AID ``A0 00 00 06 32 01 01 05`` (the T-Union AID Metrodroid
  uses, spec doc §2.1); whether social security cards carry exactly this AID is not public
  (spec doc §9). The FCI must be a ``6F`` template whose ``84`` (if present) names this AID;
* public data (公共应用基本数据, EF ``0015``) is read by SFI: ``00 B0 95 00 1E``. Its 30 bytes,
  as PBOC and every public T-Union reader lay them out: issuer id 8 (发卡机构标识) | application
  type 1 | application version 1 | application serial 10 (应用序列号) | valid from 4 | valid
  until 4 (BCD ``YYYYMMDD``) | issuer FCI data 2;
* the MAC1 diversification factors are the **last 8 bytes of the application serial** (the
  card level) and the **issuer id** (the level above), the ``80 70 00 00 24`` layout of the
  public transit code: the PSAM's key sits two levels above the card;
* GET BALANCE ``80 5C 00 02 04`` → 4 bytes. A balance with bit 31 set is read as two's
  complement (an overdrawn purse); the public readers disagree (Metrodroid masks bit 31);
* INITIALIZE FOR PURCHASE ``80 50 01 02 0B <key index 1><amount 4><terminal 6> 0F`` →
  balance 4 | offline sequence 2 | overdraft limit 3 | key version 1 | algorithm id 1 |
  pseudo-random 4 (15 bytes);
* DEBIT FOR PURCHASE ``80 54 01 00 0F <terminal sequence 4><date 4><time 3><MAC1 4> 08`` →
  TAC 4 | MAC2 4;
* GET TRANSACTION PROOF ``80 5A 00 06 02 <offline sequence 2> 08`` → MAC2 4 | TAC 4. The
  sequence is the card's offline sequence **after** the purchase (the one a fresh INITIALIZE
  returns): every public terminal that recovers a torn purchase sends it so;
* the transaction log (交易明细, EF ``0018``, cyclic, newest first) is read by SFI:
  ``00 B2 <n> C4 17``; each 23-byte record: sequence 2 | overdraft 3 | amount 4 | type 1 |
  terminal 6 | date 4 | time 3. A record the card never wrote answers ``6A83`` or is all zeros.

Every status word of a payment step becomes the error named for what happened to the person
(:mod:`apdu.payment`); the card's personal data (serial, issuer) stay out of log lines.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from apdu import payment, purse
from apdu.command import CommandApdu
from apdu.errors import ProtocolError, RecordFormatError, TlvError
from apdu.files import CLA_ISO, INS_SELECT, P1_SELECT_BY_NAME
from apdu.payment import (
    Charge,
    DebitAnswer,
    DebitRequest,
    HistoryEntry,
    PurchaseInit,
    check_amount,
    read_numbered_record,
    send_payment,
    until_gap,
)
from apdu.records import decode_date
from apdu.tlv import parse_ber_one
from apdu.transport import Connection

log = logging.getLogger(__name__)

AID_TRANSIT = bytes.fromhex("A000000632010105")  # T-Union (spec doc §2.1, S11)
CLA_PBOC = 0x80
INS_READ_BINARY = 0xB0
INS_INITIALIZE = 0x50
INS_DEBIT = 0x54
INS_GET_PROOF = 0x5A
INS_GET_BALANCE = 0x5C
P1_PURCHASE = 0x01  # INITIALIZE: 01 purchase (03 compound purchase, not used)
P2_PURSE = 0x02  # 02 e-purse (01 e-deposit)
SFI_PUBLIC = 0x15  # 公共应用基本数据
SFI_LOG = 0x18  # 交易明细
P1_READ_BINARY_SFI = 0x80
P2_RECORD_NUMBER = 0x04  # READ RECORD by number (the emulator answers it too)
SELECT_LE = 256
PUBLIC_LEN = 30
LOG_RECORD_LEN = 23
LOG_RECORDS = 10  # PBOC: a cyclic file of 10 records
INIT_LEN = 15
SERIAL_LEN = 10
FACTOR_LEN = 8
KEY_INDEX_DEFAULT = 0x01
TAG_FCI = 0x6F
TAG_DF_NAME = 0x84
TYPE_LOAD = 0x02  # 圈存: its sequence is the online counter, not the offline one
PURCHASE_TYPES = frozenset({purse.TYPE_PURCHASE, purse.TYPE_COMPOUND})


def terminal_digits(raw: bytes, what: str) -> str:
    """A 6-byte BCD terminal number as 12 digits.

    :param raw: 6 bytes
    :param what: the field, for the message
    :raises RecordFormatError: not BCD
    """
    digits = raw.hex()
    if len(raw) != purse.TERMINAL_NUMBER_LEN or not digits.isdigit():
        raise RecordFormatError(f"{what}: the terminal number is not 6 bytes of BCD")
    return digits


def mask_serial(serial: str) -> str:
    """A card serial for log lines: its last four digits only.

    :param serial: hex digits
    """
    return "…" + serial[-4:]


@dataclass(frozen=True, slots=True)
class TransitPublicData:
    """EF ``0015`` 公共应用基本数据 (30 bytes, PBOC layout).

    :param issuer_id: 发卡机构标识, 8 bytes (the MAC1 factor above the card)
    :param application_type: 应用类型标识 (``02`` e-purse only, ``03`` deposit and purse)
    :param application_version: 发卡机构应用版本
    :param serial: 应用序列号, 10 bytes
    :param valid_from: 应用启用日期, ``None`` when unset
    :param valid_until: 应用有效日期, ``None`` when unset
    :param issuer_data: 发卡机构自定义 FCI 数据, 2 bytes
    """

    issuer_id: bytes
    application_type: int
    application_version: int
    serial: bytes
    valid_from: dt.date | None
    valid_until: dt.date | None
    issuer_data: bytes

    @classmethod
    def parse(cls, data: bytes) -> TransitPublicData:
        """Parse the 30 bytes of EF ``0015``.

        :param data: the READ BINARY answer
        :raises RecordFormatError: another length or a date that is not BCD ``YYYYMMDD``
        """
        if len(data) != PUBLIC_LEN:
            raise RecordFormatError(
                f"transit public data (EF 0015) is {PUBLIC_LEN} bytes, got {len(data)}"
            )
        return cls(
            issuer_id=data[0:8],
            application_type=data[8],
            application_version=data[9],
            serial=data[10:20],
            valid_from=decode_date(0x15, data[20:24]),
            valid_until=decode_date(0x15, data[24:28]),
            issuer_data=data[28:30],
        )

    def to_bytes(self) -> bytes:
        """The 30 bytes of EF ``0015`` (unset dates ``FF``)."""

        def date(value: dt.date | None) -> bytes:
            return b"\xff" * 4 if value is None else bytes.fromhex(value.strftime("%Y%m%d"))

        return (
            self.issuer_id
            + bytes([self.application_type, self.application_version])
            + self.serial
            + date(self.valid_from)
            + date(self.valid_until)
            + self.issuer_data
        )

    @property
    def card_serial(self) -> bytes:
        """The card-level MAC1 factor: the last 8 bytes of the application serial."""
        return self.serial[SERIAL_LEN - FACTOR_LEN :]

    def factors(self) -> tuple[bytes, bytes]:
        """The purchase-key factors, card level first: card serial, issuer id."""
        return self.card_serial, self.issuer_id

    def valid_on(self, day: dt.date) -> bool:
        """Whether the application is within its validity on ``day`` (unset bounds are open).

        :param day: the transaction date
        """
        starts = self.valid_from is None or self.valid_from <= day
        return starts and (self.valid_until is None or day <= self.valid_until)


def parse_init(data: bytes) -> PurchaseInit:
    """Parse INITIALIZE FOR PURCHASE's 15 bytes (spec doc §7.2 step 2).

    :param data: balance 4 | sequence 2 | overdraft 3 | key version 1 | algorithm 1 | random 4
    :raises ProtocolError: another length
    """
    if len(data) != INIT_LEN:
        raise ProtocolError(f"INITIALIZE FOR PURCHASE answers {INIT_LEN} bytes, got {len(data)}")
    return PurchaseInit(
        balance=int.from_bytes(data[0:4], "big", signed=True),
        sequence=int.from_bytes(data[4:6], "big"),
        overdraft_limit=int.from_bytes(data[6:9], "big"),
        key_version=data[9],
        algorithm_id=data[10],
        random=data[11:15],
    )


def init_bytes(init: PurchaseInit) -> bytes:
    """The 15 bytes of an INITIALIZE FOR PURCHASE answer (the emulator's side of
    :func:`parse_init`).

    :param init: the answer
    """
    return (
        init.balance.to_bytes(4, "big", signed=True)
        + init.sequence.to_bytes(2, "big")
        + init.overdraft_limit.to_bytes(3, "big")
        + bytes([init.key_version, init.algorithm_id])
        + init.random
    )


@dataclass(frozen=True, slots=True)
class TransitLogRecord:
    """One record of the transaction log (EF ``0018``, 23 bytes).

    :param sequence: the card sequence the transaction used (offline for purchases, online
        for loads)
    :param overdraft: the overdraft limit then
    :param amount: fen
    :param transaction_type: ``06`` purchase, ``09`` compound purchase, ``02`` load
    :param terminal_number: 12 digits
    :param when: the transaction time
    """

    sequence: int
    overdraft: int
    amount: int
    transaction_type: int
    terminal_number: str
    when: dt.datetime

    @classmethod
    def parse(cls, data: bytes) -> TransitLogRecord | None:
        """Parse one record; an all-zero record (never written) is ``None``.

        :param data: 23 bytes
        :raises RecordFormatError: another length, a terminal or time that is not BCD
        """
        if len(data) != LOG_RECORD_LEN:
            raise RecordFormatError(
                f"a transit log record is {LOG_RECORD_LEN} bytes, got {len(data)}"
            )
        if not any(data):
            return None
        return cls(
            sequence=int.from_bytes(data[0:2], "big"),
            overdraft=int.from_bytes(data[2:5], "big"),
            amount=int.from_bytes(data[5:9], "big"),
            transaction_type=data[9],
            terminal_number=terminal_digits(data[10:16], "transit log"),
            when=purse.parse_bcd_time(data[16:23], "transit log"),
        )

    def to_bytes(self) -> bytes:
        """The 23 bytes of the record."""
        return (
            self.sequence.to_bytes(2, "big")
            + self.overdraft.to_bytes(3, "big")
            + self.amount.to_bytes(4, "big")
            + bytes([self.transaction_type])
            + bytes.fromhex(self.terminal_number)
            + purse.bcd_datetime(self.when)
        )

    def entry(self) -> HistoryEntry:
        """The record in the fields a torn purchase is matched on."""
        return HistoryEntry(
            self.sequence,
            self.amount,
            self.terminal_number,
            self.when,
            self.transaction_type in PURCHASE_TYPES,
        )


def _check_fci(data: bytes) -> None:
    if not data:
        return
    try:
        fci = parse_ber_one(data)
    except TlvError as exc:
        raise RecordFormatError(f"transit FCI does not parse: {exc}") from exc
    if fci.tag != TAG_FCI:
        raise RecordFormatError(f"transit FCI must start with tag 6F, got {fci.tag:X}")
    name = fci.find(TAG_DF_NAME)
    if name is not None and name.value != AID_TRANSIT:
        raise RecordFormatError(f"SELECT transit answered the FCI of {name.value.hex().upper()}")


class TransitPurseSession:
    """The transit e-purse of one card: SELECT on construction, then the spec's verbs.

    It implements :class:`apdu.payment.PurseApplication` once :meth:`read_public_data` ran
    (the MAC factors and the card number come from it).

    :param connection: the card, with the T=0 chain
    :param key_index: the purchase key index the terminal asks for (INITIALIZE's first byte)
    :raises PurseLocked: SELECT answered ``9303``
    :raises ApduError: any other refusal (``6A82``: the card has no transit application)
    :raises RecordFormatError: an FCI that does not parse or names another application
    """

    kind = "transit"

    def __init__(self, connection: Connection, key_index: int = KEY_INDEX_DEFAULT) -> None:
        self.connection = connection
        self.key_index = key_index
        command = CommandApdu(CLA_ISO, INS_SELECT, P1_SELECT_BY_NAME, 0x00, AID_TRANSIT, SELECT_LE)
        _check_fci(send_payment(connection, command))
        self.public: TransitPublicData | None = None

    # -- reads -------------------------------------------------------------------------------

    def read_public_data(self) -> TransitPublicData:
        """READ BINARY of EF ``0015`` by SFI: ``00 B0 95 00 1E``.

        :raises RecordFormatError: not 30 bytes, or a bad date
        :raises ApduError: the card refused
        """
        command = CommandApdu(
            CLA_ISO, INS_READ_BINARY, P1_READ_BINARY_SFI | SFI_PUBLIC, 0x00, le=PUBLIC_LEN
        )
        self.public = TransitPublicData.parse(send_payment(self.connection, command))
        return self.public

    def get_balance(self) -> int:
        """GET BALANCE ``80 5C 00 02 04`` → the balance in fen (negative when overdrawn).

        :raises ProtocolError: an answer other than 4 bytes
        """
        command = CommandApdu(CLA_PBOC, INS_GET_BALANCE, 0x00, P2_PURSE, le=4)
        data = send_payment(self.connection, command)
        if len(data) != 4:
            raise ProtocolError(f"GET BALANCE answers 4 bytes, got {len(data)}")
        return int.from_bytes(data, "big", signed=True)

    def read_log_record(self, number: int) -> TransitLogRecord | None:
        """READ RECORD ``00 B2 <n> C4 17`` of the transaction log (1 = newest).

        :param number: 1 … 10
        :returns: the record, or ``None`` when the card has none there (``6A83``, or zeros)
        :raises RecordFormatError: a malformed record
        """
        if not 1 <= number <= LOG_RECORDS:
            raise ValueError(f"the transit log holds records 1-{LOG_RECORDS}, not {number}")
        data = read_numbered_record(self.connection, SFI_LOG, number, LOG_RECORD_LEN)
        return None if data is None else TransitLogRecord.parse(data)

    def read_log(self) -> Iterator[TransitLogRecord]:
        """The transaction log, newest first, read one record at a time until the first gap.

        :raises RecordFormatError: a malformed record
        """
        return until_gap(self.read_log_record, LOG_RECORDS)

    # -- the purchase (spec doc §7.2) ---------------------------------------------------------

    def initialize_for_purchase(self, amount: int, terminal_number: str) -> PurchaseInit:
        """INITIALIZE FOR PURCHASE ``80 50 01 02 0B``.

        :param amount: fen, 1 … 4294967295
        :param terminal_number: 12 digits, the security module's
        :raises InsufficientBalance: ``9401``
        :raises PurseLocked: ``9303``
        :raises KeyVersionUnsupported: ``9403``
        :raises CounterExhausted: ``9402``
        :raises ProtocolError: a bad amount or terminal number, or an answer of another length
        """
        if check_amount(amount) == 0:
            raise ProtocolError("a purchase takes at least 1 fen; a fare of 0 debits nothing")
        data = bytes([self.key_index]) + amount.to_bytes(4, "big") + _terminal(terminal_number)
        command = CommandApdu(CLA_PBOC, INS_INITIALIZE, P1_PURCHASE, P2_PURSE, data, INIT_LEN)
        return parse_init(send_payment(self.connection, command))

    def debit_for_purchase(
        self, terminal_sequence: int, when: dt.datetime, mac1: bytes
    ) -> DebitAnswer:
        """DEBIT FOR PURCHASE ``80 54 01 00 0F`` → TAC and MAC2.

        :param terminal_sequence: the module's terminal transaction sequence (4 bytes)
        :param when: the transaction time sent with MAC1
        :param mac1: 4 bytes
        :raises Mac1Invalid: ``9302``
        :raises NoPurchasePending: ``6901``/``6985``
        :raises CardRemoved: the card left (the outcome is unknown)
        """
        data = DebitRequest(terminal_sequence, when, mac1).to_bytes()
        command = CommandApdu(CLA_PBOC, INS_DEBIT, payment.P1_DEBIT, 0x00, data, payment.ANSWER_LEN)
        return DebitAnswer.parse(send_payment(self.connection, command))

    def get_transaction_proof(self, sequence_after: int) -> DebitAnswer:
        """GET TRANSACTION PROOF ``80 5A 00 06 02 <sequence> 08`` → MAC2 and TAC again.

        :param sequence_after: the card's offline sequence after the purchase
        :raises ProofUnavailable: ``9406``: not the card's last purchase
        """
        command = CommandApdu(
            CLA_PBOC,
            INS_GET_PROOF,
            0x00,
            purse.TYPE_PURCHASE,
            (sequence_after & 0xFFFF).to_bytes(2, "big"),
            payment.ANSWER_LEN,
        )
        return DebitAnswer.parse_proof(send_payment(self.connection, command))

    # -- apdu.payment.PurseApplication -------------------------------------------------------

    def _public(self) -> TransitPublicData:
        if self.public is None:
            self.read_public_data()
        assert self.public is not None
        return self.public

    @property
    def card_id(self) -> str:
        """The application serial (应用序列号) as 20 hex digits."""
        return self._public().serial.hex().upper()

    def factors(self) -> tuple[bytes, ...]:
        """Card serial (last 8 bytes), then issuer id."""
        return self._public().factors()

    def initialize(self, charge: Charge, terminal_number: str) -> PurchaseInit:
        """:meth:`initialize_for_purchase` of the charge's amount.

        :param charge: the fare (only ``amount`` applies)
        :param terminal_number: 12 digits
        """
        if charge.self_pay or charge.pooled:
            raise ProtocolError("a transit fare has one amount; self-pay and pooled are medical")
        return self.initialize_for_purchase(charge.amount, terminal_number)

    def debit(self, terminal_sequence: int, when: dt.datetime, mac1: bytes) -> DebitAnswer:
        """:meth:`debit_for_purchase`."""
        return self.debit_for_purchase(terminal_sequence, when, mac1)

    def proof(self, sequence_after: int) -> DebitAnswer:
        """:meth:`get_transaction_proof`."""
        return self.get_transaction_proof(sequence_after)

    def history(self) -> Iterator[HistoryEntry]:
        """The log records as history entries, newest first."""
        return (record.entry() for record in self.read_log())


def _terminal(terminal_number: str) -> bytes:
    if len(terminal_number) != 2 * purse.TERMINAL_NUMBER_LEN or not (
        terminal_number.isascii() and terminal_number.isdigit()
    ):
        raise ProtocolError("the terminal number is 12 digits")
    return bytes.fromhex(terminal_number)
