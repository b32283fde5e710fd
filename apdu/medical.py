"""The medical-insurance application DF04 (社会保险信息区2): EF05 医疗保险基本信息.

Spec doc §2.1 and §2.6 (S1 表7, 表9):

* DF04 is an ADF under SSSE with the AID ``D1 56 00 00 05 03``; it is selected by name once
  SSSE is the current application (after :class:`apdu.ssc.SscSession`).
* EF05 医疗保险基本信息 is read with "PIN or RK1DF04": the card answers ``6982`` to READ RECORD
  until the holder's PIN was verified (VERIFY in SSSE, spec doc §5) or a terminal
  authenticated with RK1DF04.
* Each record is one SIMPLE-TLV whose tag is the record identifier, read by identifier like
  the SSSE records (spec doc §3.2): ``00 B2 <tag> 00 <len+2>``. ``cn`` items are BCD
  right-padded with ``F``, ``an`` items ASCII right-padded with ``00``; an item left all
  ``FF`` is absent, and so is a record the card answers ``6A82``/``6A83`` for.

Only the records of the requested fields are read: a scenario reads what it needs and no more.

Item lengths. The spec doc gives 81 an8, 84 cn3, 8B an29, 8C cn1 and 8F an1. It gives no
length for the others, and the LD/T 32.6 text is not among the sources (spec doc §9); this
module assumes:

* ``80`` 个人账户建立日期: cn4, BCD ``YYYYMMDD`` like every other date of the card;
* ``87`` 健康档案编号, ``8A`` 医疗证号 and the institution codes (``83``/``86``/``89``,
  ``7D``–``7F``, ``8D``/``8E``): an20. The national resident health-record number has 17
  digits and the NHSA institution codes 12 characters, so 20 bytes hold both with room.

A value shorter than its item is accepted (the padding may be cut); a longer one is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from apdu.errors import ApduError, RecordFormatError, SecurityNotSatisfied
from apdu.files import FID_EF05, read_record_by_id, select_by_name, select_ef
from apdu.records import Fci, decode_an, decode_cn, decode_date
from apdu.sw import Sw
from apdu.transport import Connection

AID_DF04 = bytes.fromhex("D15600000503")  # 社会保险信息区2 (spec doc §2.1, S1 表2)

# EF05 医疗保险基本信息 (spec doc §2.6, S1 表7/表9); the tag is the record identifier
TAG_ACCOUNT_OPENED = 0x80  # 个人账户建立日期 cn4 (BCD YYYYMMDD)
TAG_INSURANCE_TYPE = 0x81  # 险种类型及标识 an8
TAG_DESIGNATED_1 = 0x83  # 定点医疗机构代码1 an20
TAG_INSURED_REGION = 0x84  # 参保地 cn3 (GB/T 2260 region code)
TAG_DESIGNATED_2 = 0x86  # 定点医疗机构代码2 an20
TAG_HEALTH_RECORD = 0x87  # 健康档案编号 an20
TAG_DESIGNATED_3 = 0x89  # 定点医疗机构代码3 an20
TAG_MEDICAL_CARD_NUMBER = 0x8A  # 医疗证号 an20
TAG_MEDICAL_ACCOUNT = 0x8B  # 个人账号 an29
TAG_PERSON_CATEGORY = 0x8C  # 参保人员类别 cn1
TAG_MATERNITY_1 = 0x8D  # 生育定点医疗机构1 an20
TAG_MATERNITY_2 = 0x8E  # 生育定点医疗机构2 an20
TAG_CARD_USAGE = 0x8F  # 用卡方式 an1
TAG_INJURY_1 = 0x7D  # 工伤协议医疗机构1 an20
TAG_INJURY_2 = 0x7E  # 工伤协议医疗机构2 an20
TAG_INJURY_3 = 0x7F  # 工伤协议医疗机构3 an20

READ_CONDITION = "the holder's PIN (VERIFY) or RK1DF04 external authentication"


class ItemEncoding(StrEnum):
    """How an EF05 item is encoded (spec doc §2.5 padding rule)."""

    AN = "an"  # ASCII, right-padded with 00
    CN = "cn"  # BCD digits, right-padded with F
    DATE = "date"  # cn4, BCD YYYYMMDD


@dataclass(frozen=True, slots=True)
class MedicalItem:
    """One EF05 record: what the spec calls it, how it is encoded and how long it is.

    :param tag: the record identifier
    :param label: the spec's name, for messages
    :param encoding: ``an``, ``cn`` or a BCD date
    :param length: the value length in bytes
    """

    tag: int
    label: str
    encoding: ItemEncoding
    length: int


MEDICAL_ITEMS: dict[int, MedicalItem] = {
    item.tag: item
    for item in (
        MedicalItem(TAG_ACCOUNT_OPENED, "个人账户建立日期", ItemEncoding.DATE, 4),
        MedicalItem(TAG_INSURANCE_TYPE, "险种类型及标识", ItemEncoding.AN, 8),
        MedicalItem(TAG_DESIGNATED_1, "定点医疗机构代码1", ItemEncoding.AN, 20),
        MedicalItem(TAG_INSURED_REGION, "参保地", ItemEncoding.CN, 3),
        MedicalItem(TAG_DESIGNATED_2, "定点医疗机构代码2", ItemEncoding.AN, 20),
        MedicalItem(TAG_HEALTH_RECORD, "健康档案编号", ItemEncoding.AN, 20),
        MedicalItem(TAG_DESIGNATED_3, "定点医疗机构代码3", ItemEncoding.AN, 20),
        MedicalItem(TAG_MEDICAL_CARD_NUMBER, "医疗证号", ItemEncoding.AN, 20),
        MedicalItem(TAG_MEDICAL_ACCOUNT, "个人账号", ItemEncoding.AN, 29),
        MedicalItem(TAG_PERSON_CATEGORY, "参保人员类别", ItemEncoding.CN, 1),
        MedicalItem(TAG_MATERNITY_1, "生育定点医疗机构1", ItemEncoding.AN, 20),
        MedicalItem(TAG_MATERNITY_2, "生育定点医疗机构2", ItemEncoding.AN, 20),
        MedicalItem(TAG_CARD_USAGE, "用卡方式", ItemEncoding.AN, 1),
        MedicalItem(TAG_INJURY_1, "工伤协议医疗机构1", ItemEncoding.AN, 20),
        MedicalItem(TAG_INJURY_2, "工伤协议医疗机构2", ItemEncoding.AN, 20),
        MedicalItem(TAG_INJURY_3, "工伤协议医疗机构3", ItemEncoding.AN, 20),
    )
}

#: field name → the EF05 records it is made of, in the order they are read
FIELD_TAGS: dict[str, tuple[int, ...]] = {
    "insurance_type": (TAG_INSURANCE_TYPE,),
    "insured_region": (TAG_INSURED_REGION,),
    "health_record_number": (TAG_HEALTH_RECORD,),
    "person_category": (TAG_PERSON_CATEGORY,),
    "account_opened": (TAG_ACCOUNT_OPENED,),
    "medical_account": (TAG_MEDICAL_ACCOUNT,),
    "medical_card_number": (TAG_MEDICAL_CARD_NUMBER,),
    "designated_institutions": (TAG_DESIGNATED_1, TAG_DESIGNATED_2, TAG_DESIGNATED_3),
    "injury_institutions": (TAG_INJURY_1, TAG_INJURY_2, TAG_INJURY_3),
    "maternity_institutions": (TAG_MATERNITY_1, TAG_MATERNITY_2),
    "card_usage": (TAG_CARD_USAGE,),
}

#: the names a scenario profile lists (as ``medical.<name>``); the fields of :class:`MedicalInfo`
MEDICAL_FIELDS: tuple[str, ...] = tuple(FIELD_TAGS)


class NoMedicalApplication(ApduError):
    """The card has no DF04 (SELECT answered ``6A82``), or DF04 has no EF05.

    Many cards carry no medical-insurance data: the issuer never personalised DF04.

    :param command: the SELECT command, as bytes
    :param sw: the status word (``6A82``)
    :param what: which file is missing
    """

    def __init__(self, *, command: bytes, sw: int, what: str) -> None:
        super().__init__(command=command, sw=sw)
        self.args = (f"{what}: this card holds no medical-insurance data (SW {sw:04X})",)


@contextlib.contextmanager
def _not_found_is_no_medical(what: str) -> Iterator[None]:
    """A SELECT's ``6A82`` raised as :class:`NoMedicalApplication` naming the missing file;
    any other refusal as it came."""
    try:
        yield
    except ApduError as exc:
        if exc.sw == Sw.FILE_NOT_FOUND:
            raise NoMedicalApplication(command=exc.command, sw=exc.sw, what=what) from exc
        raise


@dataclass(frozen=True, slots=True)
class MedicalInfo:
    """EF05 医疗保险基本信息 of DF04; an item not read or absent on the card is ``None``.

    Codes are kept as the card stores them (padding removed): their meaning is the local
    medical-insurance system's.

    :param insurance_type: 险种类型及标识, tag 81 (an8)
    :param insured_region: 参保地, tag 84, the six-digit region code (cn3)
    :param health_record_number: 健康档案编号, tag 87
    :param person_category: 参保人员类别, tag 8C (cn1)
    :param account_opened: 个人账户建立日期, tag 80 (cn4, BCD YYYYMMDD)
    :param medical_account: 个人账号, tag 8B (an29)
    :param medical_card_number: 医疗证号, tag 8A
    :param designated_institutions: 定点医疗机构代码1–3, tags 83/86/89: the codes present, in
        slot order
    :param injury_institutions: 工伤协议医疗机构1–3, tags 7D–7F, the codes present
    :param maternity_institutions: 生育定点医疗机构1–2, tags 8D/8E, the codes present
    :param card_usage: 用卡方式, tag 8F (an1)
    :param fields_read: the fields that were read, to tell "absent" from "not asked for"
    """

    insurance_type: str | None = None
    insured_region: str | None = None
    health_record_number: str | None = None
    person_category: str | None = None
    account_opened: dt.date | None = None
    medical_account: str | None = None
    medical_card_number: str | None = None
    designated_institutions: tuple[str, ...] | None = None
    injury_institutions: tuple[str, ...] | None = None
    maternity_institutions: tuple[str, ...] | None = None
    card_usage: str | None = None
    fields_read: frozenset[str] = frozenset()


def requested_fields(fields: Collection[str] | None) -> tuple[str, ...]:
    """Check a field set and put it in reading order; ``None`` means every field.

    :param fields: names from :data:`MEDICAL_FIELDS`
    :raises ValueError: for a name that is not a medical field, or a bare string
    """
    if fields is None:
        return MEDICAL_FIELDS
    if isinstance(fields, str):
        raise ValueError(f"fields is a collection of names, not the string {fields!r}")
    unknown = sorted(set(fields) - set(MEDICAL_FIELDS))
    if unknown:
        raise ValueError(f"{unknown} are not DF04 EF05 fields; known: {list(MEDICAL_FIELDS)}")
    return tuple(name for name in MEDICAL_FIELDS if name in fields)


def medical_tags(fields: Collection[str] | None) -> tuple[int, ...]:
    """The EF05 records to read for a field set, in reading order.

    :param fields: names from :data:`MEDICAL_FIELDS`, ``None`` for all
    :raises ValueError: for a name that is not a medical field
    """
    return tuple(tag for name in requested_fields(fields) for tag in FIELD_TAGS[name])


def check_length(tag: int, value: bytes) -> None:
    """Refuse a record value longer than its item.

    :param tag: the record identifier
    :param value: the value the card returned
    :raises RecordFormatError: when the value is longer than the item
    """
    item = MEDICAL_ITEMS[tag]
    if len(value) > item.length:
        raise RecordFormatError(
            f"DF04 EF05 record {tag:02X} ({item.label}) holds {len(value)} bytes; "
            f"the item is {item.encoding} of {item.length}"
        )


def _decode(tag: int, value: bytes) -> str | dt.date | None:
    check_length(tag, value)
    encoding = MEDICAL_ITEMS[tag].encoding
    try:
        if encoding is ItemEncoding.DATE:
            return decode_date(tag, value)
        if encoding is ItemEncoding.CN:
            return decode_cn(value)
        return decode_an(tag, value)
    except RecordFormatError as exc:
        raise RecordFormatError(f"DF04 EF05 {exc} ({MEDICAL_ITEMS[tag].label})") from exc


def _text(records: Mapping[int, bytes], tag: int) -> str | None:
    value = _decode(tag, records[tag]) if tag in records else None
    return value if isinstance(value, str) else None


def _date(records: Mapping[int, bytes], tag: int) -> dt.date | None:
    value = _decode(tag, records[tag]) if tag in records else None
    return value if isinstance(value, dt.date) else None


def parse_medical(
    records: Mapping[int, bytes], fields: Collection[str] | None = None
) -> MedicalInfo:
    """Build :class:`MedicalInfo` from raw EF05 record values keyed by tag.

    :param records: tag → value; a missing tag is an absent item
    :param fields: the fields to decode (the others stay ``None``), ``None`` for all
    :raises ValueError: for a name that is not a medical field
    :raises RecordFormatError: for a value longer than its item, an ``an`` item that is not
        printable ASCII or a date that is not BCD ``YYYYMMDD``
    """
    wanted = frozenset(requested_fields(fields))

    def text(name: str) -> str | None:
        return _text(records, FIELD_TAGS[name][0]) if name in wanted else None

    def codes(name: str) -> tuple[str, ...] | None:
        if name not in wanted:
            return None
        present = (_text(records, tag) for tag in FIELD_TAGS[name])
        return tuple(code for code in present if code is not None) or None

    return MedicalInfo(
        insurance_type=text("insurance_type"),
        insured_region=text("insured_region"),
        health_record_number=text("health_record_number"),
        person_category=text("person_category"),
        account_opened=_date(records, TAG_ACCOUNT_OPENED) if "account_opened" in wanted else None,
        medical_account=text("medical_account"),
        medical_card_number=text("medical_card_number"),
        designated_institutions=codes("designated_institutions"),
        injury_institutions=codes("injury_institutions"),
        maternity_institutions=codes("maternity_institutions"),
        card_usage=text("card_usage"),
        fields_read=wanted,
    )


class MedicalSession:
    """The DF04 application of one card: SELECT on construction, then EF05 reads.

    SSSE must be the current application (as after :class:`apdu.ssc.SscSession`).

    :param connection: a connection to the card, with the T=0 chain
    :raises NoMedicalApplication: SELECT answered ``6A82``, the card has no DF04
    :raises ApplicationLocked: SELECT answered ``9303`` (LKDF04 or the whole application)
    :raises CardBlocked: ``6A81``
    :raises ApduError: any other refusal
    :raises RecordFormatError: when the FCI does not parse or names another application
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        with _not_found_is_no_medical("no DF04 社会保险信息区2"):
            data = select_by_name(connection, AID_DF04)
        self.fci = Fci.parse(data, "DF04")
        if self.fci.df_name and self.fci.df_name != AID_DF04:
            raise RecordFormatError(
                f"SELECT DF04 answered the FCI of {self.fci.df_name.hex().upper()}"
            )

    def select_ef05(self) -> None:
        """Select EF05 医疗保险基本信息 in DF04.

        :raises NoMedicalApplication: ``6A82``, DF04 has no EF05
        :raises SecurityNotSatisfied: ``6982``, naming the PIN or RK1DF04
        :raises ApduError: any other refusal
        """
        try:
            with _not_found_is_no_medical("DF04 has no EF05 医疗保险基本信息"):
                select_ef(self.connection, FID_EF05)
        except SecurityNotSatisfied as exc:
            raise SecurityNotSatisfied(f"DF04 EF05 needs {READ_CONDITION}") from exc.__cause__

    def read_record(self, tag: int) -> bytes | None:
        """Read one EF05 record by identifier and return its value.

        :param tag: a tag of :data:`MEDICAL_ITEMS`
        :returns: the value, or ``None`` when the card has no such record (``6A82``/``6A83``)
        :raises SecurityNotSatisfied: ``6982``: the PIN was not verified (or RK1DF04)
        :raises RecordFormatError: another record's tag, a length past the data, a value
            longer than the item
        :raises ApduError: any other refusal
        """
        item = MEDICAL_ITEMS[tag]
        try:
            value = read_record_by_id(self.connection, tag, item.length)
        except SecurityNotSatisfied as exc:
            raise SecurityNotSatisfied(
                f"DF04 EF05 医疗保险基本信息 (record {tag:02X} {item.label}) needs {READ_CONDITION}"
            ) from exc.__cause__
        except RecordFormatError as exc:
            raise RecordFormatError(f"DF04 EF05 {exc}") from exc
        except ApduError as exc:
            # some cards answer "file or application not found" for a record they lack
            if exc.sw == Sw.FILE_NOT_FOUND:
                return None
            raise
        if value is not None:
            check_length(tag, value)
        return value

    def read(self, fields: Collection[str] | None = None) -> MedicalInfo:
        """Read the records of the requested fields, and only those.

        :param fields: names from :data:`MEDICAL_FIELDS`, ``None`` for all; an empty set sends
            nothing
        :raises ValueError: for a name that is not a medical field (nothing is sent)
        :raises NoMedicalApplication: DF04 has no EF05
        :raises SecurityNotSatisfied: ``6982``: the PIN was not verified (or RK1DF04)
        :raises RecordFormatError: a malformed record
        :raises ApduError: any other refusal
        """
        wanted = requested_fields(fields)
        if not wanted:
            return MedicalInfo()
        self.select_ef05()
        records: dict[int, bytes] = {}
        for tag in medical_tags(wanted):
            value = self.read_record(tag)
            if value is not None:
                records[tag] = value
        return parse_medical(records, wanted)
