"""Medical settlement from the personal account of DF04 (spec doc §7.1, §4.6; CLA ``B0``).

The commands (S3-P5 §7, spec doc §7.1), after the holder's PIN (VERIFY in SSSE; the card keeps
it across the SELECT of DF04) and the SELECT of DF04 ``D1 56 00 00 05 03``:

* GET BALANCE ``B0 26 00 P2 Le``: P2 ``01`` the personal account (CIA, Le 4); ``02`` the
  year's self-paid total (SPIP) and ``03`` the year's pooled-fund total (SPFP), Le 6:
  amount 4 ‖ pay year 2 (BCD ``YYYY``, assumed);
* INITIALIZE FOR PURCHASE ``B0 28 01 01 13 <key index 1><account 4><self-pay 4><pooled 4>
  <terminal 6> 16`` → CIA 4 | SPIP 4 | SPFP 4 | pay year 2 | medical sequence 2 | key version 1
  | algorithm id 1 | pseudo-random 4 (22 bytes);
* DEBIT FOR PURCHASE ``B0 2C 01 00 0F <terminal sequence 4><time 7><MAC1 4> 08`` → TAC | MAC2;
* GET TRANSACTION PROOF ``B0 2E 00 06 02 <sequence after> 08`` → MAC2 | TAC: the spec names
  the command only; this project gives it the layout of the PBOC ``80 5A`` (assumed);
* EF08 医疗交易明细 (cyclic, ≥ 30 records of 28 bytes, read by SFI ``00 B2 <n> 44 1C`` after the
  PIN): sequence 2 | type an1 | terminal cn6 | time cn7 | account 4 | self-pay 4 | pooled 4.

What the public text leaves open, decided here (``docs/payments.md``):

* the card debits the **personal-account amount** from CIA and adds the self-paid and
  pooled amounts to the year's SPIP and SPFP. MAC1 and MAC2 are computed exactly as for the
  e-purse (:mod:`apdu.purse`) over the personal-account amount — the only ``80 70`` layout in
  the public sources carries one amount — and the TAC (DTK, no session key) covers all three:
  account 4 ‖ self-pay 4 ‖ pooled 4 ‖ type 1 ‖ terminal 6 ‖ terminal sequence 4 ‖ time 7;
* the purchase key hangs three levels below the SSC purchase root, over the factors of
  :func:`medical_factors` (the convention the emulated PSAM uses): city ‖ ``00`` ‖ card serial,
  then the city, then the province;
* the EF08 type byte is ASCII ``'1'`` for a purchase;
* ``iDoDebit``'s second field is ``个人账户交易金额+统筹基金支付金额``: read as two amounts joined
  by ``+`` (one amount alone is the personal account's); self-pay = total − the two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from apdu import payment, purse
from apdu.command import CommandApdu
from apdu.errors import ProtocolError, RecordFormatError
from apdu.files import CLA_ISO, INS_SELECT, P1_SELECT_BY_NAME
from apdu.medical import AID_DF04
from apdu.payment import (
    Charge,
    DebitAnswer,
    DebitRequest,
    HistoryEntry,
    PurchaseInit,
    read_numbered_record,
    send_payment,
    until_gap,
)
from apdu.purchase import PurchaseRecord
from apdu.transit import terminal_digits
from apdu.transport import Connection

CLA_MEDICAL = 0xB0
INS_GET_BALANCE = 0x26
INS_INITIALIZE = 0x28
INS_DEBIT = 0x2C
INS_GET_PROOF = 0x2E
P2_ACCOUNT = 0x01  # CIA 个人账户
P2_SELF_PAY = 0x02  # SPIP 年度自付累计
P2_POOLED = 0x03  # SPFP 年度统筹累计
P1_PURCHASE = 0x01
P2_INIT = 0x01
SFI_DEBIT_RECORDS = 0x08  # EF08 医疗交易明细
RECORD_LEN = 0x1C
RECORDS_MAX = 30
INIT_LEN = 0x16
SELECT_LE = 256
KEY_INDEX_DEFAULT = 0x01
TYPE_PURCHASE_AN = 0x31  # '1' (assumed)
#: HSM key addresses of the DPK by key version (spec doc §3.7, S4 App B): iDoDebit's 密钥地址
DPK_ADDRESSES = {1: "017F", 2: "0199", 3: "019C"}
AMOUNT_LIMIT = Decimal("42949672.95")  # spec doc §4.6


def medical_factors(card_id: bytes) -> tuple[bytes, bytes, bytes]:
    """The purchase factors of a card, card level first, from its 卡识别码.

    :param card_id: 16 bytes: city 3 ‖ RID 5 ‖ serial 4 ‖ auth code 4
    :raises ProtocolError: another length
    """
    if len(card_id) != 16:
        raise ProtocolError(f"卡识别码 is 16 bytes, got {len(card_id)}")
    city = card_id[:3]
    return city + b"\x00" + card_id[8:12], city.ljust(8, b"\x00"), city[:1].ljust(8, b"\x00")


def tac_data(
    charge: Charge, terminal_number: str, terminal_sequence: int, when: dt.datetime
) -> bytes:
    """The data of a medical TAC (see the module docstring).

    :param charge: the three amounts
    :param terminal_number: 12 digits
    :param terminal_sequence: the module's sequence
    :param when: the transaction time
    """
    return (
        charge.amount.to_bytes(4, "big")
        + charge.self_pay.to_bytes(4, "big")
        + charge.pooled.to_bytes(4, "big")
        + purse.tac_data(0, purse.TYPE_PURCHASE, terminal_number, terminal_sequence, when)[4:]
    )


@dataclass(frozen=True, slots=True)
class MedicalBalances:
    """The account's balances, fen.

    :param account: CIA, the personal account
    :param self_pay: SPIP, self-paid this pay year
    :param pooled: SPFP, paid by the pooled fund this pay year
    :param pay_year: the pay year the two totals belong to
    """

    account: int
    self_pay: int
    pooled: int
    pay_year: int


@dataclass(frozen=True, slots=True)
class MedicalInit:
    """INITIALIZE FOR PURCHASE's 22 bytes.

    :param balances: the three balances and the pay year
    :param sequence: the medical transaction sequence this purchase uses
    :param key_version: the purchase key version
    :param algorithm_id: ``00`` DES
    :param random: 4 bytes
    """

    balances: MedicalBalances
    sequence: int
    key_version: int
    algorithm_id: int
    random: bytes

    @classmethod
    def parse(cls, data: bytes) -> MedicalInit:
        """Parse the answer.

        :param data: 22 bytes
        :raises ProtocolError: another length or a pay year that is not BCD
        """
        if len(data) != INIT_LEN:
            raise ProtocolError(f"B0 28 answers {INIT_LEN} bytes, got {len(data)}")
        return cls(
            MedicalBalances(
                int.from_bytes(data[0:4], "big"),
                int.from_bytes(data[4:8], "big"),
                int.from_bytes(data[8:12], "big"),
                _year(data[12:14]),
            ),
            int.from_bytes(data[14:16], "big"),
            data[16],
            data[17],
            data[18:22],
        )

    def to_bytes(self) -> bytes:
        """The 22 bytes (the emulator's side)."""
        b = self.balances
        return (
            b.account.to_bytes(4, "big")
            + b.self_pay.to_bytes(4, "big")
            + b.pooled.to_bytes(4, "big")
            + bytes.fromhex(f"{b.pay_year:04d}")
            + self.sequence.to_bytes(2, "big")
            + bytes([self.key_version, self.algorithm_id])
            + self.random
        )

    def purchase_init(self) -> PurchaseInit:
        """The fields the purchase flow shares with the e-purse."""
        return PurchaseInit(
            self.balances.account, self.sequence, self.key_version, self.algorithm_id, self.random
        )


def _year(raw: bytes) -> int:
    digits = raw.hex()
    if not digits.isdigit():
        raise ProtocolError(f"the pay year {digits.upper()} is not BCD")
    return int(digits)


@dataclass(frozen=True, slots=True)
class DebitRecord:
    """One EF08 医疗交易明细 record (28 bytes).

    :param sequence: the medical transaction sequence it used
    :param transaction_type: the type byte (``'1'`` purchase)
    :param terminal_number: 12 digits
    :param when: the time
    :param charge: account, self-pay and pooled amounts
    """

    sequence: int
    transaction_type: int
    terminal_number: str
    when: dt.datetime
    charge: Charge

    @classmethod
    def parse(cls, data: bytes) -> DebitRecord | None:
        """Parse one record; an all-zero or all-``FF`` record (never written) is ``None``.

        :param data: 28 bytes
        :raises RecordFormatError: another length, a terminal or time that is not BCD
        """
        if len(data) != RECORD_LEN:
            raise RecordFormatError(f"an EF08 record is {RECORD_LEN} bytes, got {len(data)}")
        if not any(data) or all(b == 0xFF for b in data):
            return None
        return cls(
            sequence=int.from_bytes(data[0:2], "big"),
            transaction_type=data[2],
            terminal_number=terminal_digits(data[3:9], "EF08"),
            when=purse.parse_bcd_time(data[9:16], "EF08"),
            charge=Charge(
                int.from_bytes(data[16:20], "big"),
                int.from_bytes(data[20:24], "big"),
                int.from_bytes(data[24:28], "big"),
            ),
        )

    def to_bytes(self) -> bytes:
        """The 28 bytes."""
        return (
            self.sequence.to_bytes(2, "big")
            + bytes([self.transaction_type])
            + bytes.fromhex(self.terminal_number)
            + purse.bcd_datetime(self.when)
            + self.charge.amount.to_bytes(4, "big")
            + self.charge.self_pay.to_bytes(4, "big")
            + self.charge.pooled.to_bytes(4, "big")
        )


class MedicalAccountSession:
    """The medical account of DF04: SELECT on construction, then the spec's verbs.

    The PIN must have been verified in SSSE first (the card answers ``6982`` otherwise).

    :param connection: the card, with the T=0 chain
    :param card_id: 卡识别码 from EF05 (the card number a torn purchase is matched on)
    :param key_index: the purchase key index (INITIALIZE's first byte)
    :raises ApduError: the card has no DF04 (``6A82``) or refused
    :raises PurseLocked: ``9303``
    """

    kind = "medical"

    def __init__(
        self, connection: Connection, card_id: bytes, key_index: int = KEY_INDEX_DEFAULT
    ) -> None:
        self.connection = connection
        self.card_number = card_id
        self.key_index = key_index
        command = CommandApdu(CLA_ISO, INS_SELECT, P1_SELECT_BY_NAME, 0x00, AID_DF04, SELECT_LE)
        send_payment(connection, command)
        self.last_init: MedicalInit | None = None

    def get_balance(self, which: int) -> tuple[int, int | None]:
        """GET BALANCE ``B0 26 00 P2``: the amount, and the pay year for SPIP/SPFP.

        :param which: :data:`P2_ACCOUNT`, :data:`P2_SELF_PAY` or :data:`P2_POOLED`
        :raises ProtocolError: an answer of the wrong length
        """
        length = 4 if which == P2_ACCOUNT else 6
        data = send_payment(
            self.connection, CommandApdu(CLA_MEDICAL, INS_GET_BALANCE, 0x00, which, le=length)
        )
        if len(data) != length:
            raise ProtocolError(f"B0 26 answers {length} bytes, got {len(data)}")
        return int.from_bytes(data[:4], "big"), (_year(data[4:6]) if length == 6 else None)

    def balances(self) -> MedicalBalances:
        """The three balances (three GET BALANCE commands).

        :raises SecurityNotSatisfied: ``6982``: the PIN first
        """
        account, _ = self.get_balance(P2_ACCOUNT)
        self_pay, year = self.get_balance(P2_SELF_PAY)
        pooled, _ = self.get_balance(P2_POOLED)
        return MedicalBalances(account, self_pay, pooled, year or 0)

    def initialize_for_purchase(self, charge: Charge, terminal_number: str) -> MedicalInit:
        """``B0 28 01 01 13``.

        :param charge: the three amounts
        :param terminal_number: 12 digits
        :raises InsufficientBalance: ``9401``: the personal account is short
        """
        if (
            not terminal_number.isascii()
            or not terminal_number.isdigit()
            or len(terminal_number) != 12
        ):
            raise ProtocolError("the terminal number is 12 digits")
        data = (
            bytes([self.key_index])
            + charge.amount.to_bytes(4, "big")
            + charge.self_pay.to_bytes(4, "big")
            + charge.pooled.to_bytes(4, "big")
            + bytes.fromhex(terminal_number)
        )
        command = CommandApdu(CLA_MEDICAL, INS_INITIALIZE, P1_PURCHASE, P2_INIT, data, INIT_LEN)
        self.last_init = MedicalInit.parse(send_payment(self.connection, command))
        return self.last_init

    def debit_for_purchase(
        self, terminal_sequence: int, when: dt.datetime, mac1: bytes
    ) -> DebitAnswer:
        """``B0 2C 01 00 0F`` → TAC and MAC2.

        :param terminal_sequence: 4 bytes
        :param when: the time sent with MAC1
        :param mac1: 4 bytes
        :raises Mac1Invalid: ``9302``
        """
        data = DebitRequest(terminal_sequence, when, mac1).to_bytes()
        command = CommandApdu(
            CLA_MEDICAL, INS_DEBIT, payment.P1_DEBIT, 0x00, data, payment.ANSWER_LEN
        )
        return DebitAnswer.parse(send_payment(self.connection, command))

    def get_transaction_proof(self, sequence_after: int) -> DebitAnswer:
        """``B0 2E 00 06 02 <sequence> 08`` → MAC2 and TAC again (assumed layout).

        :param sequence_after: the medical sequence after the purchase
        :raises ProofUnavailable: ``9406``
        """
        data = (sequence_after & 0xFFFF).to_bytes(2, "big")
        command = CommandApdu(
            CLA_MEDICAL, INS_GET_PROOF, 0x00, purse.TYPE_PURCHASE, data, payment.ANSWER_LEN
        )
        return DebitAnswer.parse_proof(send_payment(self.connection, command))

    def read_debit_record(self, number: int) -> DebitRecord | None:
        """READ RECORD ``00 B2 <n> 44 1C`` of EF08 (1 = newest).

        :param number: 1 … 30
        :returns: the record, ``None`` past the last written one (``6A83``)
        :raises SecurityNotSatisfied: ``6982``: the PIN first
        """
        if not 1 <= number <= RECORDS_MAX:
            raise ValueError(f"EF08 holds records 1-{RECORDS_MAX}, not {number}")
        data = read_numbered_record(self.connection, SFI_DEBIT_RECORDS, number, RECORD_LEN)
        return None if data is None else DebitRecord.parse(data)

    def read_debit_records(self) -> Iterator[DebitRecord]:
        """EF08, newest first, until the first record never written (``iReadDebitRecord``)."""
        return until_gap(self.read_debit_record, RECORDS_MAX)

    # -- apdu.payment.PurseApplication -------------------------------------------------------

    @property
    def card_id(self) -> str:
        """卡识别码 as 32 hex digits."""
        return self.card_number.hex().upper()

    def factors(self) -> tuple[bytes, ...]:
        """:func:`medical_factors` of the card."""
        return medical_factors(self.card_number)

    def initialize(self, charge: Charge, terminal_number: str) -> PurchaseInit:
        """:meth:`initialize_for_purchase`, in the flow's shared fields."""
        return self.initialize_for_purchase(charge, terminal_number).purchase_init()

    def debit(self, terminal_sequence: int, when: dt.datetime, mac1: bytes) -> DebitAnswer:
        """:meth:`debit_for_purchase`."""
        return self.debit_for_purchase(terminal_sequence, when, mac1)

    def proof(self, sequence_after: int) -> DebitAnswer:
        """:meth:`get_transaction_proof`."""
        return self.get_transaction_proof(sequence_after)

    def history(self) -> Iterator[HistoryEntry]:
        """EF08 as history entries, newest first."""
        for record in self.read_debit_records():
            yield HistoryEntry(
                record.sequence,
                record.charge.amount,
                record.terminal_number,
                record.when,
                record.transaction_type == TYPE_PURCHASE_AN,
            )


# -- the national interface strings (spec doc §4.6) ---------------------------------------------


def fen(text: str, what: str) -> int:
    """A decimal amount with at most two places (``12.30``) as fen.

    :param text: the amount
    :param what: the field, for the message
    :raises ProtocolError: not a decimal of at most 2 places, negative, or ≥ 42949672.96
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ProtocolError(f"{what}: {text!r} is not an amount like 12.30") from None
    if not text.replace(".", "", 1).isdigit() or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ProtocolError(f"{what}: {text!r} is not an amount with at most 2 decimals")
    if value > AMOUNT_LIMIT:
        raise ProtocolError(f"{what}: {text} is not below 42949672.96")
    return int(value * 100)


def yuan(amount: int) -> str:
    """Fen as the interface writes amounts: ``1230`` → ``12.30``.

    :param amount: fen
    """
    return f"{amount // 100}.{amount % 100:02d}"


@dataclass(frozen=True, slots=True)
class PayInfo:
    """``iDoDebit``'s ``pPayInfo`` (spec doc §4.6):
    ``本次消费总金额|个人账户交易金额+统筹基金支付金额|YYYYMMDDHHMMSS|``.

    :param charge: the amounts
    :param when: the transaction time
    """

    charge: Charge
    when: dt.datetime

    @classmethod
    def parse(cls, text: str) -> PayInfo:
        """Parse the string (see the module docstring for the second field).

        :param text: three fields, each followed by ``|``
        :raises ProtocolError: a malformed field, or parts larger than the total
        """
        fields = text.split("|")
        if len(fields) != 4 or fields[3] != "":
            raise ProtocolError("pPayInfo is three fields, each followed by '|'")
        total = fen(fields[0], "本次消费总金额")
        parts = fields[1].split("+")
        if len(parts) > 2:
            raise ProtocolError("个人账户交易金额+统筹基金支付金额: at most two amounts")
        account = fen(parts[0], "个人账户交易金额")
        pooled = fen(parts[1], "统筹基金支付金额") if len(parts) == 2 else 0
        if account + pooled > total:
            raise ProtocolError("the account and pooled amounts exceed the total")
        digits = fields[2]
        if len(digits) != 14 or not (digits.isascii() and digits.isdigit()):
            raise ProtocolError("the transaction time is YYYYMMDDHHMMSS")
        try:
            when = dt.datetime.strptime(digits, "%Y%m%d%H%M%S")
        except ValueError:
            raise ProtocolError(f"the transaction time {digits} is not a calendar time") from None
        return cls(Charge(account, total - account - pooled, pooled), when)


def idodebit_output(record: PurchaseRecord, card_algorithm_id: int) -> str:
    """``iDoDebit``'s output (spec doc §4.6):
    ``算法标识|密钥地址|交易金额|交易类型|终端机编号|终端交易序号|交易时间|TAC|``.

    交易金额 is the personal-account amount (what the card debited), 交易类型 ``06``, the terminal
    sequence 8 hex digits (its 4 bytes), the TAC 8 hex digits.

    :param record: a medical purchase the card debited (its TAC known)
    :param card_algorithm_id: the card's algorithm (FCI ``9F0C/86``: 01 DES, 03 SM4)
    :raises ProtocolError: a record without a TAC or a terminal sequence
    """
    if record.tac is None or record.terminal_sequence is None or record.terminal_number is None:
        raise ProtocolError("iDoDebit reports a debit: the record has no TAC yet")
    version = record.key_version or 1
    fields = [
        f"{card_algorithm_id:02X}",
        DPK_ADDRESSES.get(version, f"{version:04X}"),
        yuan(record.charge.amount),
        f"{purse.TYPE_PURCHASE:02X}",
        record.terminal_number,
        f"{record.terminal_sequence:08X}",
        record.when.strftime("%Y%m%d%H%M%S"),
        record.tac.hex().upper(),
    ]
    return "".join(field + "|" for field in fields)


def ireaddebitrecord_output(records: list[DebitRecord]) -> str:
    """``iReadDebitRecord``'s output: records separated by ``|``, each
    ``交易序号^终端机编号^交易时间^本次消费总金额^个人账户+统筹合计^``.

    :param records: EF08, newest first
    """
    return "".join(
        "".join(
            item + "^"
            for item in (
                str(r.sequence),
                r.terminal_number,
                r.when.strftime("%Y%m%d%H%M%S"),
                yuan(r.charge.total),
                yuan(r.charge.amount + r.charge.pooled),
            )
        )
        + "|"
        for r in records
    )
