"""The records of the social-security application: tags, item codecs, EF05/EF06 parsers.

Spec doc §2–§3 (人社信息函〔2012〕37号 V2.0; 3.0 changes from S4 §10.2). Pure code: the card
session (:class:`apdu.ssc.SscSession`) reads the bytes, these functions give them meaning.

* Each record is one SIMPLE-TLV object whose tag is the record identifier; ``cn`` items are
  BCD right-padded with ``F``, ``an`` items are ASCII/GB18030 right-padded with ``00``; an item
  left all ``FF`` is absent.
* :data:`HOLDER_ITEMS` is the one table from a holder item (``ssn``, ``name``, …) to the EF06
  records it is read from: profiles, the card session and the emulator's personas use it.

The item decoders serve the other applications under SSSE too (:mod:`apdu.medical`, DF04).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from apdu.errors import CardIdFormatError, RecordFormatError, TlvError
from apdu.identity import SsnInfo, card_number_valid, classify_ssn
from apdu.tlv import parse_ber_one, parse_simple_one

TAG_FCI = 0x6F
TAG_DF_NAME = 0x84
TAG_FCI_PROPRIETARY = 0xA5
TAG_SFI_DIR = 0x88
TAG_ISSUER_DISCRETIONARY = 0x9F0C
TAG_ALGORITHM = 0x86

# EF05 发卡机构数据
TAG_CARD_ID = 0x01  # 卡识别码 cn16
TAG_CATEGORY = 0x02  # 卡的类别 an1
TAG_SPEC_VERSION = 0x03  # 规范版本 an4
TAG_INIT_ORG = 0x04  # 初始化机构编号 cn12
TAG_ISSUE_DATE = 0x05  # 发卡日期 cn4
TAG_EXPIRY_DATE = 0x06  # 卡有效期 cn4
TAG_CARD_NUMBER = 0x07  # 卡号 an9
# EF06 持卡人基本信息
TAG_SSN = 0x08  # 社会保障号码 an18
TAG_NAME = 0x09  # 姓名 an30
TAG_NAME_EXTENSION = 0x4E  # 姓名扩展 an20 (2.0 and later)
TAG_SEX = 0x0A  # 性别 an1
TAG_ETHNICITY = 0x0B  # 民族 cn1
TAG_BIRTHPLACE = 0x0C  # 出生地 cn3
TAG_BIRTH_DATE = 0x0D  # 出生日期 cn4

RECORD_LENGTHS: dict[int, int] = {
    TAG_CARD_ID: 16,
    TAG_CATEGORY: 1,
    TAG_SPEC_VERSION: 4,
    TAG_INIT_ORG: 12,
    TAG_ISSUE_DATE: 4,
    TAG_EXPIRY_DATE: 4,
    TAG_CARD_NUMBER: 9,
    TAG_SSN: 18,
    TAG_NAME: 30,
    TAG_NAME_EXTENSION: 20,
    TAG_SEX: 1,
    TAG_ETHNICITY: 1,
    TAG_BIRTHPLACE: 3,
    TAG_BIRTH_DATE: 4,
}

CARD_NUMBER_LENGTH = 9  # S4 §10.4: read and return only the first 9 characters


class Generation(StrEnum):
    """Card generation from the first three characters of 规范版本 (S4 §10.2)."""

    V1 = "1.0"
    V2 = "2.0"
    V3 = "3.0"

    @classmethod
    def from_version(cls, version: str | None) -> Generation:
        """Classify a 规范版本 string; an empty or absent one is 1.0.

        :param version: the decoded EF05 tag 03, e.g. ``"2.00"`` or ``"2.0"``
        :raises RecordFormatError: for a version this terminal does not know
        """
        if not version:
            return cls.V1
        try:
            return cls(version[:3])
        except ValueError:
            raise RecordFormatError(f"unknown card spec version {version!r}") from None


class CardAlgorithm(StrEnum):
    """The card's algorithm, from FCI ``9F0C/86`` (S4 §10.1)."""

    DES = "des"
    SSF33 = "ssf33"
    SM4 = "sm4"

    @classmethod
    def from_id(cls, algorithm_id: int | None, card_id: bytes) -> CardAlgorithm:
        """Map the FCI algorithm byte; without one, region ``11…`` means SSF33, else DES.

        :param algorithm_id: the value of tag 86, or ``None`` when the FCI has none
        :param card_id: 卡识别码, whose first digits are the region code
        :raises RecordFormatError: for an algorithm id outside 01–03
        """
        if algorithm_id is None:
            return cls.SSF33 if card_id.hex().startswith("11") else cls.DES
        for algorithm in cls:
            if algorithm.algorithm_id == algorithm_id:
                return algorithm
        raise RecordFormatError(f"unknown card algorithm id {algorithm_id:02X} in the FCI")

    @property
    def algorithm_id(self) -> int:
        """The algorithm byte of FCI ``9F0C/86`` (and of :class:`apdu.crypto.Algorithm`)."""
        return _ALGORITHM_IDS[self]


_ALGORITHM_IDS = {CardAlgorithm.DES: 0x01, CardAlgorithm.SSF33: 0x02, CardAlgorithm.SM4: 0x03}


@dataclass(frozen=True, slots=True)
class Fci:
    """The SSSE file control information returned by SELECT.

    :param df_name: tag 84, the AID
    :param dir_sfi: tag 88, SFI of the DIR file, if present
    :param algorithm_id: tag 9F0C/86, if present
    """

    df_name: bytes
    dir_sfi: int | None
    algorithm_id: int | None

    @classmethod
    def parse(cls, data: bytes, application: str = "SSSE") -> Fci:
        """Parse ``6F L | 84 L AID | A5 L [88 01 sfi] [9F0C 03 86 01 alg]``.

        Every item is optional (an empty answer gives an empty FCI): cards without ``9F0C``
        exist, and the algorithm then comes from the region rule.

        :param data: the SELECT response data
        :param application: the selected application, for the error message (``"DF04"``)
        :raises RecordFormatError: when the data is not a 6F template
        """
        if not data:
            return cls(b"", None, None)
        try:
            fci = parse_ber_one(data)
            if fci.tag != TAG_FCI:
                raise RecordFormatError(
                    f"{application} FCI must start with tag 6F, got {fci.tag:X}"
                )
            name = fci.find(TAG_DF_NAME)
            sfi = fci.find(TAG_SFI_DIR)
            # 9F0C is primitive (bit 6 of 9F is 0): its value holds the 86 object as raw bytes
            discretionary = fci.find(TAG_ISSUER_DISCRETIONARY)
            algorithm = None
            if discretionary is not None:
                algorithm = parse_ber_one(discretionary.value)
                if algorithm.tag != TAG_ALGORITHM:
                    algorithm = None
        except TlvError as exc:
            raise RecordFormatError(f"{application} FCI does not parse: {exc}") from exc
        return cls(
            df_name=name.value if name else b"",
            dir_sfi=sfi.value[0] if sfi and len(sfi.value) == 1 else None,
            algorithm_id=algorithm.value[0] if algorithm and len(algorithm.value) == 1 else None,
        )


def _absent(value: bytes) -> bool:
    return not value or all(b == 0xFF for b in value)


def decode_an(tag: int, value: bytes) -> str | None:
    """Decode an ``an`` item: ASCII right-padded with ``00``; all ``FF`` is absent.

    :param tag: the record tag, for the error message
    :param value: the raw value
    :raises RecordFormatError: for bytes that are not printable ASCII
    """
    if _absent(value):
        return None
    text = value.rstrip(b"\x00")
    if not text:
        return None
    if any(b < 0x20 or b > 0x7E for b in text):
        raise RecordFormatError(f"record {tag:02X}: an item is not printable ASCII")
    return text.decode("ascii")


def decode_cn(value: bytes) -> str | None:
    """Decode a ``cn`` item: BCD digits right-padded with ``F``; all ``FF`` is absent.

    Serial fields may hold nibbles A–F, so the digits are returned as upper-case hex.

    :param value: the raw value
    """
    if _absent(value):
        return None
    return value.hex().upper().rstrip("F") or None


def decode_date(tag: int, value: bytes) -> dt.date | None:
    """Decode a BCD ``YYYYMMDD`` date; all ``FF`` (or all ``00``) is absent.

    :param tag: the record tag, for the error message
    :param value: four raw bytes
    :raises RecordFormatError: for a value that is not a real calendar date
    """
    if _absent(value) or not any(value):
        return None
    digits = value.hex()
    if len(digits) != 8 or not digits.isdigit():
        raise RecordFormatError(f"record {tag:02X}: date {digits.upper()} is not BCD YYYYMMDD")
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise RecordFormatError(f"record {tag:02X}: {digits} is not a calendar date") from None


def decode_name(primary: bytes | None, extension: bytes | None) -> str | None:
    """Join 姓名 (tag 09) and 姓名扩展 (tag 4E) as bytes, then decode GB18030.

    The join happens before decoding because a double-byte character may straddle the two
    records.

    :param primary: the raw value of tag 09, or ``None``
    :param extension: the raw value of tag 4E, or ``None`` (1.0 cards, or record absent)
    :raises RecordFormatError: when the bytes are not GB18030
    """
    raw = b""
    for part in (primary, extension):
        if part is not None and not _absent(part):
            raw += part.rstrip(b"\x00")
    if not raw:
        return None
    try:
        return raw.decode("gb18030").strip()
    except UnicodeDecodeError:
        raise RecordFormatError("record 09/4E: name is not valid GB18030") from None


def parse_record(expected_tag: int, data: bytes) -> bytes:
    """Check that a READ RECORD answer is exactly one TLV with the tag asked for.

    :param expected_tag: the record identifier that was requested
    :param data: the response data
    :raises RecordFormatError: on another tag, a length past the data, or trailing bytes
    """
    try:
        tag, value = parse_simple_one(data)
    except TlvError as exc:
        raise RecordFormatError(f"record {expected_tag:02X}: {exc}") from exc
    if tag != expected_tag:
        raise RecordFormatError(
            f"asked for record {expected_tag:02X}, the card returned record {tag:02X}"
        )
    return value


@dataclass(frozen=True, slots=True)
class IssuerData:
    """EF05 发卡机构数据.

    :param card_id: 卡识别码, 16 bytes
    :param category: 卡的类别 (``'1'``–``'4'``)
    :param spec_version: 规范版本 as stored, NUL padding removed
    :param init_org: 初始化机构编号 as hex digits
    :param issue_date: 发卡日期
    :param expiry_date: 卡有效期
    :param card_number: 卡号, first 9 characters
    """

    card_id: bytes
    category: str | None
    spec_version: str | None
    init_org: str | None
    issue_date: dt.date | None
    expiry_date: dt.date | None
    card_number: str | None

    @property
    def region_code(self) -> str:
        """发卡地区行政区划代码: the first six digits of 卡识别码."""
        return self.card_id.hex().upper()[:6]

    @property
    def generation(self) -> Generation:
        """The card generation from 规范版本."""
        return Generation.from_version(self.spec_version)

    @property
    def card_number_valid(self) -> bool | None:
        """Whether the card number's check character is right; ``None`` without a number."""
        return None if self.card_number is None else card_number_valid(self.card_number)


@dataclass(frozen=True, slots=True)
class HolderData:
    """EF06 持卡人基本信息, with sex and birth date derived from the SSN when left ``FF``.

    :param ssn: 社会保障号码
    :param name: 姓名 joined with 姓名扩展
    :param sex: GB 2261.1 code
    :param ethnicity: GB 3304 two-digit code
    :param birthplace: GB/T 2260 region code
    :param birth_date: 出生日期
    :param sex_derived: sex came from the SSN, not the card
    :param birth_date_derived: birth date came from the SSN, not the card
    """

    ssn: str | None
    name: str | None
    sex: str | None
    ethnicity: str | None
    birthplace: str | None
    birth_date: dt.date | None
    sex_derived: bool = False
    birth_date_derived: bool = False

    @property
    def ssn_info(self) -> SsnInfo | None:
        """The SSN's kind (mainland, HK/Macao/Taiwan, foreign) and check-digit result."""
        return None if self.ssn is None else classify_ssn(self.ssn)


ISSUER_TAGS = (
    TAG_CARD_ID,
    TAG_CATEGORY,
    TAG_SPEC_VERSION,
    TAG_INIT_ORG,
    TAG_ISSUE_DATE,
    TAG_EXPIRY_DATE,
    TAG_CARD_NUMBER,
)
#: the EF05 records a tap decides on: the region and the module's level-2 factor (01), the
#: fare category (02), the generation's rules (03), the expiry (06) and the deny-list identity
#: (07); 04 初始化机构编号 and 05 发卡日期 decide nothing (spec doc §2.4)
DECISION_TAGS = (TAG_CARD_ID, TAG_CATEGORY, TAG_SPEC_VERSION, TAG_EXPIRY_DATE, TAG_CARD_NUMBER)


def parse_issuer(records: dict[int, bytes]) -> IssuerData:
    """Build :class:`IssuerData` from raw EF05 record values keyed by tag.

    :param records: tag → value; a missing tag is an absent item
    :raises CardIdFormatError: for a missing or malformed 卡识别码
    :raises RecordFormatError: for a malformed item
    """
    card_id = records.get(TAG_CARD_ID, b"")
    if len(card_id) != RECORD_LENGTHS[TAG_CARD_ID] or _absent(card_id):
        raise CardIdFormatError("EF05 record 01 (卡识别码) must hold 16 bytes")
    number = decode_an(TAG_CARD_NUMBER, records.get(TAG_CARD_NUMBER, b""))
    version = records.get(TAG_SPEC_VERSION, b"")
    return IssuerData(
        card_id=card_id,
        category=decode_an(TAG_CATEGORY, records.get(TAG_CATEGORY, b"")),
        spec_version=decode_an(TAG_SPEC_VERSION, version),
        init_org=decode_cn(records.get(TAG_INIT_ORG, b"")),
        issue_date=decode_date(TAG_ISSUE_DATE, records.get(TAG_ISSUE_DATE, b"")),
        expiry_date=decode_date(TAG_EXPIRY_DATE, records.get(TAG_EXPIRY_DATE, b"")),
        card_number=number[:CARD_NUMBER_LENGTH] if number else None,
    )


#: holder item → the EF06 records it is read from (spec doc §2.5), in the order they are read;
#: the name extension 4E comes with the name. The one table of holder items.
HOLDER_ITEMS: dict[str, tuple[int, ...]] = {
    "ssn": (TAG_SSN,),
    "name": (TAG_NAME, TAG_NAME_EXTENSION),
    "sex": (TAG_SEX,),
    "ethnicity": (TAG_ETHNICITY,),
    "birthplace": (TAG_BIRTHPLACE,),
    "birth_date": (TAG_BIRTH_DATE,),
}

#: holder items a card may leave ``FF`` that the SSN carries (:func:`parse_holder`)
DERIVED_FROM_SSN = ("sex", "birth_date")


def holder_tags(items: Iterable[str], generation: Generation) -> tuple[int, ...]:
    """The EF06 records to read for some holder items, in the order of :data:`HOLDER_ITEMS`.

    :param items: holder item names (``ssn``, ``name``, …)
    :param generation: 1.0 cards have no name extension (4E exists from 2.0 on)
    :raises ValueError: for a name that is not a holder item
    """
    wanted = set(items)
    unknown = wanted - HOLDER_ITEMS.keys()
    if unknown:
        raise ValueError(f"not holder items: {sorted(unknown)}")
    skip = {TAG_NAME_EXTENSION} if generation == Generation.V1 else set()
    return tuple(
        tag
        for item, item_tags in HOLDER_ITEMS.items()
        if item in wanted
        for tag in item_tags
        if tag not in skip
    )


def parse_holder(records: dict[int, bytes]) -> HolderData:
    """Build :class:`HolderData` from raw EF06 record values keyed by tag.

    :param records: tag → value; a missing tag is an absent item
    :raises RecordFormatError: for a malformed item
    """
    ssn = decode_an(TAG_SSN, records.get(TAG_SSN, b""))
    sex = decode_an(TAG_SEX, records.get(TAG_SEX, b""))
    birth_date = decode_date(TAG_BIRTH_DATE, records.get(TAG_BIRTH_DATE, b""))
    info = classify_ssn(ssn) if ssn else None
    sex_derived = birth_derived = False
    if sex is None and info is not None and info.sex is not None:
        sex, sex_derived = info.sex, True
    if birth_date is None and info is not None and info.birth_date is not None:
        birth_date, birth_derived = info.birth_date, True
    ethnicity = decode_cn(records.get(TAG_ETHNICITY, b""))
    return HolderData(
        ssn=ssn,
        name=decode_name(records.get(TAG_NAME), records.get(TAG_NAME_EXTENSION)),
        sex=sex,
        ethnicity=ethnicity.zfill(2) if ethnicity else None,
        birthplace=decode_cn(records.get(TAG_BIRTHPLACE, b"")),
        birth_date=birth_date,
        sex_derived=sex_derived,
        birth_date_derived=birth_derived,
    )


@dataclass(frozen=True, slots=True)
class CardContents:
    """What was read from a card, and what could not be read and why.

    :param historical: ATR historical bytes (卡复位信息)
    :param algorithm: the card algorithm
    :param issuer: EF05
    :param holder: EF06, or ``None`` when it could not be read
    :param unreadable: item name → reason, for items the terminal could not read
    """

    historical: bytes
    algorithm: CardAlgorithm
    issuer: IssuerData
    holder: HolderData | None
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def generation(self) -> Generation:
        """The card generation."""
        return self.issuer.generation
