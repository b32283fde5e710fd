"""Unit tests for apdu.ssc: the SSSE FCI, card generation and algorithm, the EF05/EF06 item
decoders and record parsers, and ``SscSession``/``read_free`` driven by a scripted fake card
that asserts the exact APDUs of SSC spec doc §3.3.

Known answers: the FCI is the real 3.0 card of spec doc §2.2 (trace S5); the card id, card
number, dates and SSN are those of the interface spec's own iReadCardBas example (spec doc
§4.3); the EF06 record shapes (``0A 01 32``, ``0B 01 FF`` …) are the masked 2.0 card of spec
doc §3.3.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from scripted_connection import ScriptedConnection, hexbytes

from apdu.errors import (
    ApduError,
    ApplicationLocked,
    CardBlocked,
    RecordFormatError,
    SecurityNotSatisfied,
    TlvError,
)
from apdu.identity import SsnKind
from apdu.ssc import (
    HOLDER_ITEMS,
    CardAlgorithm,
    CardContents,
    Fci,
    Generation,
    HolderData,
    IssuerData,
    SscSession,
    decode_an,
    decode_cn,
    decode_date,
    decode_name,
    holder_tags,
    parse_holder,
    parse_issuer,
    parse_record,
    read_free,
)
from apdu.transport import t0_chain

AID_SSSE = "7378312E73682EC9E7BBE1B1A3D5CF"
# spec doc §2.2: the FCI of a real 3.0 card (DIR SFI 1E, algorithm 03 = SM4), without 9000.
FCI_3_0 = f"6F1C840F{AID_SSSE}A50988011E9F0C03860103"
# The same without 9F0C: the algorithm then follows from the region code.
FCI_NO_ALGORITHM = f"6F16840F{AID_SSSE}A50388011E"

CARD_ID = "639900D15600000500BF7C7A48FB4966"  # spec doc §4.3 example
SSN = "111111198101011110"  # spec doc §4.3 example: born 1981-01-01, digit 17 odd → male
ZHANG_SAN = "张三".encode("gb18030")  # D5C5 C8FD
HISTORICAL = hexbytes("00814E43238697159900BF7C7A")

# spec doc §3.3, in order
SELECT_SSSE = f"00A404000F{AID_SSSE}00"
SELECT_EF05 = "00A4020002EF05"
SELECT_EF06 = "00A4020002EF06"
READ = {
    0x01: "00B2010012",
    0x02: "00B2020003",
    0x03: "00B2030006",
    0x04: "00B204000E",
    0x05: "00B2050006",
    0x06: "00B2060006",
    0x07: "00B207000B",
    0x08: "00B2080014",
    0x09: "00B2090020",
    0x4E: "00B24E0016",
    0x0A: "00B20A0003",
    0x0B: "00B20B0003",
    0x0C: "00B20C0005",
    0x0D: "00B20D0006",
}


def record(tag: int, value: bytes) -> str:
    """One SIMPLE-TLV record as hex, the way READ RECORD returns it.

    :param tag: the record identifier
    :param value: the value, under 255 bytes
    """
    return (bytes((tag, len(value))) + value).hex().upper()


def _ascii(text: str) -> bytes:
    return text.encode("ascii")


def _name(raw: bytes) -> bytes:
    """Right-pad a GB18030 name to the 30 bytes of tag 09."""
    return raw + bytes(30 - len(raw))


EF05_2_0 = {
    0x01: hexbytes(CARD_ID),
    0x02: _ascii("3"),
    0x03: hexbytes("322E3000"),  # "2.0" + NUL, as seen on a real card (spec doc §2.4)
    0x04: hexbytes("915600000263990063990001"),
    0x05: hexbytes("20101001"),
    0x06: hexbytes("20201001"),
    0x07: _ascii("X00000019"),
}
EF06_2_0 = {
    0x08: _ascii(SSN),
    0x09: _name(ZHANG_SAN),
    0x4E: bytes(20),
    0x0A: _ascii("2"),
    0x0B: hexbytes("FF"),
    0x0C: hexbytes("FFFFFF"),
    0x0D: hexbytes("FFFFFFFF"),
}


def _reads(records: dict[int, bytes], tags: tuple[int, ...]) -> list[tuple[str, str]]:
    """The READ RECORD exchanges of ``tags``, each answered with its record and 9000."""
    return [(READ[tag], record(tag, records[tag]) + "9000") for tag in tags]


EF05_TAGS = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07)
EF06_TAGS_2_0 = (0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D)


# --- FCI ---------------------------------------------------------------------------------------


def test_fci_of_the_real_3_0_card_names_sm4_and_the_dir_sfi() -> None:
    fci = Fci.parse(hexbytes(FCI_3_0))
    assert fci == Fci(df_name=hexbytes(AID_SSSE), dir_sfi=0x1E, algorithm_id=0x03)


def test_fci_without_9f0c_has_no_algorithm_id() -> None:
    fci = Fci.parse(hexbytes(FCI_NO_ALGORITHM))
    assert fci == Fci(df_name=hexbytes(AID_SSSE), dir_sfi=0x1E, algorithm_id=None)


def test_fci_without_proprietary_template_has_no_sfi_and_no_algorithm() -> None:
    fci = Fci.parse(hexbytes(f"6F11840F{AID_SSSE}"))
    assert fci == Fci(df_name=hexbytes(AID_SSSE), dir_sfi=None, algorithm_id=None)


def test_fci_whose_9f0c_holds_another_tag_has_no_algorithm_id() -> None:
    fci = Fci.parse(hexbytes(f"6F1C840F{AID_SSSE}A50988011E9F0C03870103"))
    assert fci.algorithm_id is None


def test_fci_not_in_a_6f_template_is_rejected() -> None:
    with pytest.raises(RecordFormatError, match="FCI must start with tag 6F, got 84"):
        Fci.parse(hexbytes(f"840F{AID_SSSE}"))


def test_truncated_fci_is_a_record_format_error_chained_from_the_tlv_error() -> None:
    with pytest.raises(RecordFormatError, match="SSSE FCI does not parse") as caught:
        Fci.parse(hexbytes(FCI_3_0)[:-2])
    assert isinstance(caught.value.__cause__, TlvError)


# --- generation and algorithm --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "generation"),
    [
        ("2.00", Generation.V2),
        ("2.0", Generation.V2),  # "2.0\0" after the an decoder strips the NUL
        ("3.00", Generation.V3),
        ("1.00", Generation.V1),
        ("", Generation.V1),
        (None, Generation.V1),
    ],
)
def test_generation_follows_the_first_three_characters_of_the_version(
    version: str | None, generation: Generation
) -> None:
    assert Generation.from_version(version) is generation


def test_generation_of_the_real_2_0_nul_padded_version() -> None:
    assert Generation.from_version(decode_an(0x03, hexbytes("322E3000"))) is Generation.V2


@pytest.mark.parametrize("version", ["9.99", "4.00", "2", "v2.0"])
def test_unknown_spec_version_is_rejected_naming_it(version: str) -> None:
    with pytest.raises(
        RecordFormatError, match=re.escape(f"unknown card spec version '{version}'")
    ):
        Generation.from_version(version)


@pytest.mark.parametrize(
    ("algorithm_id", "algorithm"),
    [(0x01, CardAlgorithm.DES), (0x02, CardAlgorithm.SSF33), (0x03, CardAlgorithm.SM4)],
)
def test_fci_algorithm_id_maps_to_the_algorithm(
    algorithm_id: int, algorithm: CardAlgorithm
) -> None:
    # the FCI byte wins over the region code
    assert CardAlgorithm.from_id(algorithm_id, hexbytes("110000D156000005")) is algorithm


def test_without_algorithm_id_region_11_means_ssf33() -> None:
    card_id = hexbytes("110100D15600000500BF7C7A48FB4966")
    assert CardAlgorithm.from_id(None, card_id) is CardAlgorithm.SSF33


@pytest.mark.parametrize("card_id", [CARD_ID, "011100D15600000500BF7C7A48FB4966"])
def test_without_algorithm_id_other_regions_mean_des(card_id: str) -> None:
    assert CardAlgorithm.from_id(None, hexbytes(card_id)) is CardAlgorithm.DES


@pytest.mark.parametrize("algorithm_id", [0x00, 0x04, 0x07, 0xFF])
def test_unknown_algorithm_id_is_rejected(algorithm_id: int) -> None:
    with pytest.raises(RecordFormatError, match=f"unknown card algorithm id {algorithm_id:02X}"):
        CardAlgorithm.from_id(algorithm_id, hexbytes(CARD_ID))


# --- item decoders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (_ascii("X00000019"), "X00000019"),
        (hexbytes("322E3000"), "2.0"),
        (_ascii("3") + bytes(3), "3"),
        (b" A ", " A "),  # only the 00 padding goes
    ],
)
def test_an_item_strips_the_00_padding(value: bytes, text: str) -> None:
    assert decode_an(0x07, value) == text


@pytest.mark.parametrize("value", [b"", hexbytes("FF"), hexbytes("FFFFFFFF"), bytes(4)])
def test_an_item_all_ff_empty_or_all_00_is_absent(value: bytes) -> None:
    assert decode_an(0x07, value) is None


@pytest.mark.parametrize("value", [hexbytes("31FF"), hexbytes("0931"), b"2\x000", ZHANG_SAN])
def test_an_item_that_is_not_printable_ascii_is_rejected_naming_the_tag(value: bytes) -> None:
    with pytest.raises(RecordFormatError, match="record 07: an item is not printable ASCII"):
        decode_an(0x07, value)


@pytest.mark.parametrize(
    ("value", "digits"),
    [
        (hexbytes("01"), "01"),
        (hexbytes("110100"), "110100"),
        (hexbytes("123F"), "123"),  # right-padded with F
        (hexbytes("915600000211000011010002"), "915600000211000011010002"),
        (hexbytes("9156000002639900639900DB"), "9156000002639900639900DB"),  # non-BCD kept
    ],
)
def test_cn_item_gives_its_digits_without_the_f_padding(value: bytes, digits: str) -> None:
    assert decode_cn(value) == digits


@pytest.mark.parametrize("value", [b"", hexbytes("FF"), hexbytes("FFFFFF")])
def test_cn_item_all_ff_or_empty_is_absent(value: bytes) -> None:
    assert decode_cn(value) is None


@pytest.mark.parametrize(
    ("value", "date"),
    [
        (hexbytes("20101001"), dt.date(2010, 10, 1)),
        (hexbytes("20240229"), dt.date(2024, 2, 29)),
        (hexbytes("19810101"), dt.date(1981, 1, 1)),
    ],
)
def test_date_item_is_bcd_yyyymmdd(value: bytes, date: dt.date) -> None:
    assert decode_date(0x05, value) == date


@pytest.mark.parametrize("value", [b"", hexbytes("FFFFFFFF"), bytes(4)])
def test_date_item_all_ff_all_00_or_empty_is_absent(value: bytes) -> None:
    assert decode_date(0x0D, value) is None


@pytest.mark.parametrize("value", ["20231301", "20230230", "20230100", "00000101"])
def test_date_item_that_is_no_calendar_date_is_rejected_naming_the_tag(value: str) -> None:
    with pytest.raises(RecordFormatError, match=f"record 06: {value} is not a calendar date"):
        decode_date(0x06, hexbytes(value))


@pytest.mark.parametrize("value", ["2023A101", "2023FFFF", "201010", "2010100101"])
def test_date_item_that_is_not_bcd_yyyymmdd_is_rejected_naming_the_tag(value: str) -> None:
    with pytest.raises(RecordFormatError, match=f"record 0D: date {value} is not BCD YYYYMMDD"):
        decode_date(0x0D, hexbytes(value))


def test_name_decodes_gb18030_and_strips_the_00_padding() -> None:
    assert decode_name(_name(ZHANG_SAN), bytes(20)) == "张三"


def test_name_without_extension_record_is_the_primary_alone() -> None:
    assert decode_name(_name(ZHANG_SAN), None) == "张三"


def test_name_joins_the_extension_before_decoding_a_straddling_double_byte_character() -> None:
    zhang, san = "张".encode("gb18030"), "三".encode("gb18030")
    primary = b"A" + zhang * 14 + san[:1]  # 30 bytes: 三's lead byte is the last
    extension = san[1:] + bytes(19)  # its trail byte opens 4E
    assert len(primary) == 30
    assert len(extension) == 20
    assert decode_name(primary, extension) == "A" + "张" * 14 + "三"


def test_name_joins_a_straddling_four_byte_character() -> None:
    char = "\U00020000"  # 𠀀, four bytes in GB18030
    raw = char.encode("gb18030")
    assert len(raw) == 4
    primary = _ascii("B" * 28) + raw[:2]
    extension = raw[2:] + bytes(18)
    assert decode_name(primary, extension) == "B" * 28 + char


def test_name_running_on_into_the_extension() -> None:
    long_name = "阿卜杜热合曼·买买提艾力·阿不都克热木江"
    raw = long_name.encode("gb18030")
    assert 30 < len(raw) <= 50
    primary, extension = raw[:30], raw[30:] + bytes(50 - len(raw))
    assert decode_name(primary, extension) == long_name


@pytest.mark.parametrize(
    ("primary", "extension"),
    [
        (None, None),
        (hexbytes("FF" * 30), None),
        (bytes(30), bytes(20)),
        (None, hexbytes("FF" * 20)),
    ],
)
def test_name_that_is_absent_or_all_padding_is_none(
    primary: bytes | None, extension: bytes | None
) -> None:
    assert decode_name(primary, extension) is None


def test_name_with_an_absent_primary_uses_the_extension() -> None:
    assert decode_name(hexbytes("FF" * 30), ZHANG_SAN + bytes(16)) == "张三"


def test_name_that_is_not_gb18030_is_rejected_naming_both_records() -> None:
    # a lead byte with no trail byte: what a 30-byte name cut in half looks like on a 1.0 card
    primary = b"A" + "张".encode("gb18030") * 14 + "三".encode("gb18030")[:1]
    with pytest.raises(RecordFormatError, match="record 09/4E: name is not valid GB18030"):
        decode_name(primary, None)


def test_latin_passport_name_decodes_as_ascii() -> None:
    assert decode_name(_name(b"JOHN SMITH"), bytes(20)) == "JOHN SMITH"


# --- parse_record --------------------------------------------------------------------------------


def test_record_value_is_returned_when_the_tag_matches() -> None:
    assert parse_record(0x08, hexbytes(record(0x08, _ascii(SSN)))) == _ascii(SSN)


def test_record_with_another_tag_is_rejected() -> None:
    with pytest.raises(RecordFormatError, match="asked for record 08, the card returned record 09"):
        parse_record(0x08, hexbytes(record(0x09, _name(ZHANG_SAN))))


def test_record_whose_length_runs_past_the_data_is_rejected() -> None:
    short = hexbytes("0812") + _ascii(SSN)[:17]
    with pytest.raises(
        RecordFormatError,
        match="record 08: SIMPLE-TLV tag 08 at offset 0 declares length 18 "
        "but only 17 bytes are available",
    ) as caught:
        parse_record(0x08, short)
    assert isinstance(caught.value.__cause__, TlvError)


def test_record_with_trailing_bytes_is_rejected() -> None:
    with pytest.raises(RecordFormatError, match="record 0A: 1 trailing bytes after SIMPLE-TLV"):
        parse_record(0x0A, hexbytes("0A013200"))


def test_empty_record_answer_is_rejected() -> None:
    with pytest.raises(RecordFormatError, match="record 01: expected one SIMPLE-TLV object"):
        parse_record(0x01, b"")


def test_record_missing_its_length_byte_is_rejected() -> None:
    with pytest.raises(RecordFormatError, match=r"record 0B: .*length byte is missing"):
        parse_record(0x0B, hexbytes("0B"))


# --- parse_issuer ------------------------------------------------------------------------------


def test_issuer_data_of_a_2_0_card() -> None:
    issuer = parse_issuer(EF05_2_0)
    assert issuer == IssuerData(
        card_id=hexbytes(CARD_ID),
        category="3",
        spec_version="2.0",
        init_org="915600000263990063990001",
        issue_date=dt.date(2010, 10, 1),
        expiry_date=dt.date(2020, 10, 1),
        card_number="X00000019",
    )
    assert issuer.region_code == "639900"
    assert issuer.generation is Generation.V2
    assert issuer.card_number_valid is True  # spec doc §2.4 checks X00000019 by hand


def test_issuer_with_only_the_card_id_has_every_other_item_absent() -> None:
    issuer = parse_issuer({0x01: hexbytes(CARD_ID)})
    assert issuer.category is None
    assert issuer.spec_version is None
    assert issuer.generation is Generation.V1  # spec doc §1: empty version → 1.0
    assert issuer.init_org is None
    assert issuer.issue_date is None
    assert issuer.expiry_date is None
    assert issuer.card_number is None
    assert issuer.card_number_valid is None


def test_issuer_card_number_keeps_only_the_first_nine_characters() -> None:
    # spec doc §2.4, S4 §10.4: read and return only the first 9
    issuer = parse_issuer({**EF05_2_0, 0x07: _ascii("X00000019ABC")})
    assert issuer.card_number == "X00000019"


def test_issuer_card_number_with_a_wrong_check_character_is_flagged_not_rejected() -> None:
    issuer = parse_issuer({**EF05_2_0, 0x07: _ascii("X00000018")})
    assert issuer.card_number == "X00000018"
    assert issuer.card_number_valid is False


@pytest.mark.parametrize(
    "card_id", [None, hexbytes(CARD_ID)[:15], hexbytes(CARD_ID) + b"\x00", hexbytes("FF" * 16)]
)
def test_issuer_without_a_16_byte_card_id_is_rejected(card_id: bytes | None) -> None:
    records = {k: v for k, v in EF05_2_0.items() if k != 0x01}
    if card_id is not None:
        records[0x01] = card_id
    with pytest.raises(RecordFormatError, match=r"EF05 record 01 \(卡识别码\) must hold 16 bytes"):
        parse_issuer(records)


def test_issuer_with_an_impossible_expiry_date_is_rejected_naming_record_06() -> None:
    with pytest.raises(RecordFormatError, match="record 06"):
        parse_issuer({**EF05_2_0, 0x06: hexbytes("20201301")})


# --- parse_holder --------------------------------------------------------------------------------


def test_holder_with_sex_and_birth_date_left_ff_derives_both_from_the_ssn() -> None:
    holder = parse_holder({**EF06_2_0, 0x0A: hexbytes("FF")})
    assert holder == HolderData(
        ssn=SSN,
        name="张三",
        sex="1",
        ethnicity=None,
        birthplace=None,
        birth_date=dt.date(1981, 1, 1),
        sex_derived=True,
        birth_date_derived=True,
    )


def test_holder_values_on_the_card_win_over_the_ssn_and_are_not_flagged() -> None:
    holder = parse_holder(
        {
            **EF06_2_0,
            0x0A: _ascii("2"),  # differs from what the SSN says, on purpose
            0x0B: hexbytes("01"),
            0x0C: hexbytes("110100"),
            0x0D: hexbytes("19800202"),
        }
    )
    assert holder.sex == "2"
    assert holder.birth_date == dt.date(1980, 2, 2)
    assert holder.ethnicity == "01"
    assert holder.birthplace == "110100"
    assert holder.sex_derived is False
    assert holder.birth_date_derived is False


def test_holder_of_the_spec_2_0_card_derives_only_the_birth_date() -> None:
    holder = parse_holder(EF06_2_0)  # 0A 01 32 ('2') on the card, 0D 04 FFFFFFFF
    assert (holder.sex, holder.sex_derived) == ("2", False)
    assert (holder.birth_date, holder.birth_date_derived) == (dt.date(1981, 1, 1), True)


@pytest.mark.parametrize(("code", "ethnicity"), [("01", "01"), ("56", "56"), ("99", "99")])
def test_holder_ethnicity_is_the_two_digit_bcd_code(code: str, ethnicity: str) -> None:
    assert parse_holder({**EF06_2_0, 0x0B: hexbytes(code)}).ethnicity == ethnicity


def test_holder_without_ssn_derives_nothing() -> None:
    holder = parse_holder({0x09: _name(ZHANG_SAN), 0x0A: hexbytes("FF")})
    assert holder.ssn is None
    assert holder.ssn_info is None
    assert holder.sex is None
    assert holder.birth_date is None
    assert holder.sex_derived is False
    assert holder.birth_date_derived is False


def test_holder_with_a_passport_like_ssn_derives_nothing() -> None:
    holder = parse_holder({0x08: _ascii("E12345678") + bytes(9)})
    assert holder.ssn == "E12345678"
    assert holder.ssn_info is not None
    assert holder.ssn_info.kind is SsnKind.FOREIGN
    assert holder.sex is None
    assert holder.birth_date is None


def test_holder_ssn_info_classifies_the_number() -> None:
    info = parse_holder(EF06_2_0).ssn_info
    assert info is not None
    assert info.kind is SsnKind.MAINLAND
    assert info.check_valid is True


def test_holder_with_an_ssn_that_is_not_ascii_is_rejected_naming_record_08() -> None:
    with pytest.raises(RecordFormatError, match="record 08"):
        parse_holder({**EF06_2_0, 0x08: ZHANG_SAN})


def test_holder_name_joins_09_and_4e() -> None:
    zhang, san = "张".encode("gb18030"), "三".encode("gb18030")
    holder = parse_holder(
        {**EF06_2_0, 0x09: b"A" + zhang * 14 + san[:1], 0x4E: san[1:] + bytes(19)}
    )
    assert holder.name == "A" + "张" * 14 + "三"


def test_holder_tags_of_a_1_0_card_skip_the_name_extension() -> None:
    assert holder_tags(Generation.V1) == (0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D)


@pytest.mark.parametrize("generation", [Generation.V2, Generation.V3])
def test_holder_tags_from_2_0_on_read_4e_right_after_the_name(generation: Generation) -> None:
    assert holder_tags(generation) == EF06_TAGS_2_0


# --- SscSession and read_free ------------------------------------------------------------------


def _script_2_0(ef05: dict[int, bytes] = EF05_2_0) -> list[tuple[str, str]]:
    """The full spec doc §3.3 read of a 2.0 card, every record present."""
    return [
        (SELECT_SSSE, FCI_NO_ALGORITHM + "9000"),
        (SELECT_EF05, "9000"),
        *_reads(ef05, EF05_TAGS),
        (SELECT_EF06, "9000"),
        *_reads(EF06_2_0, EF06_TAGS_2_0),
    ]


def test_read_free_of_a_2_0_card_sends_exactly_the_spec_apdus_in_order() -> None:
    card = ScriptedConnection(_script_2_0())
    read_free(card, HISTORICAL)
    card.assert_consumed()
    assert [c.hex().upper() for c in card.sent] == [
        SELECT_SSSE,
        "00A4020002EF05",
        "00B2010012",
        "00B2020003",
        "00B2030006",
        "00B204000E",
        "00B2050006",
        "00B2060006",
        "00B207000B",
        "00A4020002EF06",
        "00B2080014",
        "00B2090020",
        "00B24E0016",
        "00B20A0003",
        "00B20B0003",
        "00B20C0005",
        "00B20D0006",
    ]


def test_select_ssse_is_by_aid_with_le_00() -> None:
    assert SELECT_SSSE == "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00"


def test_read_free_of_a_2_0_card_returns_every_item() -> None:
    card = ScriptedConnection(_script_2_0())
    contents = read_free(card, HISTORICAL)
    card.assert_consumed()
    assert contents == CardContents(
        historical=HISTORICAL,
        algorithm=CardAlgorithm.DES,  # no 9F0C, region 63 → DES
        issuer=parse_issuer(EF05_2_0),
        holder=HolderData(
            ssn=SSN,
            name="张三",
            sex="2",
            ethnicity=None,
            birthplace=None,
            birth_date=dt.date(1981, 1, 1),
            sex_derived=False,
            birth_date_derived=True,
        ),
        unreadable={},
    )
    assert contents.generation is Generation.V2


def test_read_free_of_a_3_0_card_reports_ef06_unreadable_after_6982() -> None:
    ef05 = {**EF05_2_0, 0x03: _ascii("3.00")}
    card = ScriptedConnection(
        [
            (SELECT_SSSE, FCI_3_0 + "9000"),
            (SELECT_EF05, "9000"),
            *_reads(ef05, EF05_TAGS),
            (SELECT_EF06, "9000"),
            (READ[0x08], "6982"),  # RKSSSE external authentication first (spec doc §0)
        ]
    )
    contents = read_free(card, HISTORICAL)
    card.assert_consumed()
    assert contents.algorithm is CardAlgorithm.SM4
    assert contents.generation is Generation.V3
    assert contents.issuer.card_number == "X00000019"
    assert contents.holder is None
    assert set(contents.unreadable) == set(HOLDER_ITEMS)
    assert all("6982" in reason and "RKSSSE" in reason for reason in contents.unreadable.values())


def test_read_free_of_a_1_0_card_does_not_read_the_name_extension() -> None:
    ef05 = {**EF05_2_0, 0x03: _ascii("1.00")}
    card = ScriptedConnection(
        [
            (SELECT_SSSE, FCI_NO_ALGORITHM + "9000"),
            (SELECT_EF05, "9000"),
            *_reads(ef05, EF05_TAGS),
            (SELECT_EF06, "9000"),
            *_reads(EF06_2_0, holder_tags(Generation.V1)),
        ]
    )
    contents = read_free(card, HISTORICAL)
    card.assert_consumed()
    assert READ[0x4E] not in [c.hex().upper() for c in card.sent]
    assert contents.holder is not None
    assert contents.holder.name == "张三"


def test_read_free_treats_6a83_for_a_record_as_an_absent_item() -> None:
    script = _script_2_0()
    answers = {READ[0x02]: "6A83", READ[0x4E]: "6A83", READ[0x0C]: "6A83"}
    card = ScriptedConnection([(command, answers.get(command, rsp)) for command, rsp in script])
    contents = read_free(card, HISTORICAL)
    card.assert_consumed()
    assert contents.issuer.category is None
    assert contents.holder is not None
    assert contents.holder.name == "张三"
    assert contents.holder.birthplace is None
    assert contents.unreadable == {}


def test_read_free_through_the_t0_chain_follows_61xx() -> None:
    name = record(0x09, EF06_2_0[0x09])
    script: list[tuple[str, str]] = []
    for command, response in _script_2_0():
        if command == SELECT_SSSE:
            script += [(command, "6116"), ("00C0000016", response)]
        elif command == READ[0x09]:
            script += [(command, "6120"), ("00C0000020", name + "9000")]
        else:
            script.append((command, response))
    card = ScriptedConnection(script)
    contents = read_free(t0_chain(card), HISTORICAL)
    card.assert_consumed()
    assert contents.holder is not None
    assert contents.holder.name == "张三"


def test_session_keeps_the_fci_and_its_algorithm_id() -> None:
    card = ScriptedConnection([(SELECT_SSSE, FCI_3_0 + "9000")])
    session = SscSession(card)
    card.assert_consumed()
    assert session.fci.df_name == hexbytes(AID_SSSE)
    assert session.algorithm_id == 0x03


def test_select_answered_9303_raises_application_locked() -> None:
    card = ScriptedConnection([(SELECT_SSSE, "9303")])
    with pytest.raises(ApplicationLocked) as caught:
        read_free(card, HISTORICAL)
    card.assert_consumed()
    assert caught.value.sw == 0x9303
    assert isinstance(caught.value.__cause__, ApduError)
    assert caught.value.__cause__.sw == 0x9303


def test_select_answered_6a81_raises_card_blocked() -> None:
    card = ScriptedConnection([(SELECT_SSSE, "6A81")])
    with pytest.raises(CardBlocked):
        read_free(card, HISTORICAL)
    card.assert_consumed()


def test_record_answered_6a81_raises_card_blocked() -> None:
    card = ScriptedConnection(
        [(SELECT_SSSE, FCI_3_0 + "9000"), (SELECT_EF05, "9000"), (READ[0x01], "6A81")]
    )
    with pytest.raises(CardBlocked):
        read_free(card, HISTORICAL)
    card.assert_consumed()


def test_select_of_a_card_without_ssse_raises_apdu_error() -> None:
    card = ScriptedConnection([(SELECT_SSSE, "6A82")])
    with pytest.raises(ApduError) as caught:
        SscSession(card)
    card.assert_consumed()
    assert caught.value.sw == 0x6A82


def test_session_with_a_malformed_fci_raises_record_format_error() -> None:
    card = ScriptedConnection([(SELECT_SSSE, f"840F{AID_SSSE}9000")])
    with pytest.raises(RecordFormatError, match="FCI must start with tag 6F"):
        SscSession(card)
    card.assert_consumed()


def _session() -> tuple[SscSession, ScriptedConnection]:
    """A session over a card whose script starts after SELECT SSSE."""
    card = ScriptedConnection([(SELECT_SSSE, FCI_3_0 + "9000")])
    session = SscSession(card)
    return session, card


def test_read_record_sends_read_by_identifier_with_le_of_value_plus_two() -> None:
    session, card = _session()
    card.script.append((hexbytes(READ[0x09]), hexbytes(record(0x09, EF06_2_0[0x09]) + "9000")))
    assert session.read_record(0x09) == EF06_2_0[0x09]
    card.assert_consumed()


def test_read_record_answered_6a83_returns_none() -> None:
    session, card = _session()
    card.script.append((hexbytes(READ[0x4E]), hexbytes("6A83")))
    assert session.read_record(0x4E) is None
    card.assert_consumed()


def test_read_record_answered_6982_raises_security_not_satisfied_naming_the_record() -> None:
    session, card = _session()
    card.script.append((hexbytes(READ[0x08]), hexbytes("6982")))
    with pytest.raises(SecurityNotSatisfied, match="record 08") as caught:
        session.read_record(0x08)
    card.assert_consumed()
    assert isinstance(caught.value.__cause__, ApduError)


def test_read_record_answered_with_another_record_is_rejected() -> None:
    session, card = _session()
    card.script.append((hexbytes(READ[0x08]), hexbytes(record(0x09, ZHANG_SAN) + "9000")))
    with pytest.raises(RecordFormatError, match="asked for record 08, the card returned record 09"):
        session.read_record(0x08)
    card.assert_consumed()


def test_read_record_other_refusals_raise_apdu_error() -> None:
    session, card = _session()
    card.script.append((hexbytes(READ[0x08]), hexbytes("6986")))
    with pytest.raises(ApduError, match="SW 6986"):
        session.read_record(0x08)
    card.assert_consumed()


def test_select_ef_sends_select_by_file_identifier() -> None:
    session, card = _session()
    card.script.append((hexbytes(SELECT_EF06), hexbytes("9000")))
    session.select_ef(0xEF06)
    card.assert_consumed()


def test_read_free_rejects_a_malformed_record() -> None:
    script = _script_2_0()
    bad = record(0x05, hexbytes("20101301")) + "9000"  # month 13
    card = ScriptedConnection([(c, bad if c == READ[0x05] else r) for c, r in script][:9])
    with pytest.raises(RecordFormatError, match="record 05"):
        read_free(card, HISTORICAL)
    card.assert_consumed()
