"""Unit tests for apdu.records: the SSSE FCI, card generation and algorithm, the EF05/EF06 item
decoders and record parsers, and the one holder item → tag table.

Known answers: see ssc_vectors (spec doc §2.2, §3.3, §4.3).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from scripted_connection import hexbytes
from ssc_vectors import (
    AID_SSSE,
    CARD_ID,
    EF05_2_0,
    EF06_2_0,
    EF06_TAGS_2_0,
    FCI_3_0,
    FCI_NO_ALGORITHM,
    SSN,
    ZHANG_SAN,
    ascii_bytes,
    name_30,
    record,
)

from apdu.errors import CardIdFormatError, RecordFormatError, TlvError
from apdu.identity import SsnKind
from apdu.records import (
    HOLDER_ITEMS,
    CardAlgorithm,
    Fci,
    Generation,
    HolderData,
    IssuerData,
    decode_an,
    decode_cn,
    decode_date,
    decode_name,
    holder_tags,
    parse_holder,
    parse_issuer,
    parse_record,
)

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
        (ascii_bytes("X00000019"), "X00000019"),
        (hexbytes("322E3000"), "2.0"),
        (ascii_bytes("3") + bytes(3), "3"),
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
    assert decode_name(name_30(ZHANG_SAN), bytes(20)) == "张三"


def test_name_without_extension_record_is_the_primary_alone() -> None:
    assert decode_name(name_30(ZHANG_SAN), None) == "张三"


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
    primary = ascii_bytes("B" * 28) + raw[:2]
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


def test_latin_passport_name_decodes_asascii_bytes() -> None:
    assert decode_name(name_30(b"JOHN SMITH"), bytes(20)) == "JOHN SMITH"


# --- parse_record --------------------------------------------------------------------------------


def test_record_value_is_returned_when_the_tag_matches() -> None:
    assert parse_record(0x08, hexbytes(record(0x08, ascii_bytes(SSN)))) == ascii_bytes(SSN)


def test_record_with_another_tag_is_rejected() -> None:
    with pytest.raises(RecordFormatError, match="asked for record 08, the card returned record 09"):
        parse_record(0x08, hexbytes(record(0x09, name_30(ZHANG_SAN))))


def test_record_whose_length_runs_past_the_data_is_rejected() -> None:
    short = hexbytes("0812") + ascii_bytes(SSN)[:17]
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
    issuer = parse_issuer({**EF05_2_0, 0x07: ascii_bytes("X00000019ABC")})
    assert issuer.card_number == "X00000019"


def test_issuer_card_number_with_a_wrong_check_character_is_flagged_not_rejected() -> None:
    issuer = parse_issuer({**EF05_2_0, 0x07: ascii_bytes("X00000018")})
    assert issuer.card_number == "X00000018"
    assert issuer.card_number_valid is False


@pytest.mark.parametrize(
    "card_id", [None, hexbytes(CARD_ID)[:15], hexbytes(CARD_ID) + b"\x00", hexbytes("FF" * 16)]
)
def test_issuer_without_a_16_byte_card_id_is_rejected(card_id: bytes | None) -> None:
    records = {k: v for k, v in EF05_2_0.items() if k != 0x01}
    if card_id is not None:
        records[0x01] = card_id
    with pytest.raises(CardIdFormatError, match=r"EF05 record 01 \(卡识别码\) must hold 16 bytes"):
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
            0x0A: ascii_bytes("2"),  # differs from what the SSN says, on purpose
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
    holder = parse_holder({0x09: name_30(ZHANG_SAN), 0x0A: hexbytes("FF")})
    assert holder.ssn is None
    assert holder.ssn_info is None
    assert holder.sex is None
    assert holder.birth_date is None
    assert holder.sex_derived is False
    assert holder.birth_date_derived is False


def test_holder_with_a_passport_like_ssn_derives_nothing() -> None:
    holder = parse_holder({0x08: ascii_bytes("E12345678") + bytes(9)})
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
    assert holder_tags(HOLDER_ITEMS, Generation.V1) == (0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D)


@pytest.mark.parametrize("generation", [Generation.V2, Generation.V3])
def test_holder_tags_from_2_0_on_read_4e_right_after_thename_30(generation: Generation) -> None:
    assert holder_tags(HOLDER_ITEMS, generation) == EF06_TAGS_2_0


def test_holder_tags_of_some_items_are_those_items_records_only() -> None:
    assert holder_tags(["birth_date", "ssn"], Generation.V2) == (0x08, 0x0D)
    assert holder_tags(["name"], Generation.V3) == (0x09, 0x4E)
    assert holder_tags(["name"], Generation.V1) == (0x09,)
    assert holder_tags([], Generation.V2) == ()


def test_holder_tags_refuse_a_name_that_is_not_a_holder_item() -> None:
    with pytest.raises(ValueError, match="blood_type"):
        holder_tags(["ssn", "blood_type"], Generation.V2)


def test_the_holder_item_table_covers_every_ef06_record_once() -> None:
    tags = [tag for item_tags in HOLDER_ITEMS.values() for tag in item_tags]
    assert sorted(tags) == sorted(EF06_TAGS_2_0) and len(set(tags)) == len(tags)
    fields = {f for f in HolderData.__slots__ if not f.endswith("_derived")}
    assert set(HOLDER_ITEMS) == fields
