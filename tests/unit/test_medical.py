"""Unit tests for apdu.medical: DF04 EF05 医疗保险基本信息, its item decoders and
``SscSession.read_medical`` driven by a scripted fake card that asserts the exact APDUs.

No published trace of a DF04 read is known (spec doc §9). The vectors are built from the
spec doc's tag table (§2.6), its padding rule (§2.5: ``cn`` right-padded ``F``, ``an``
right-padded ``00``, unset ``FF``) and its addressing (§3.1–§3.2: ``00 B2 <tag> 00 <len+2>``);
the lengths the spec doc does not give are the module's stated assumptions. All codes are
fictional.
"""

from __future__ import annotations

import dataclasses
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
from apdu.medical import (
    AID_DF04,
    FIELD_TAGS,
    MEDICAL_FIELDS,
    MEDICAL_ITEMS,
    MedicalInfo,
    MedicalSession,
    NoMedicalApplication,
    medical_tags,
    parse_medical,
    requested_fields,
)
from apdu.ssc import SscSession
from apdu.transport import t0_chain

SELECT_DF04 = "00A4040006D1560000050300"
SELECT_EF05 = "00A4020002EF05"
SELECT_SSSE = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00"
FCI_DF04 = "6F108406D15600000503A5069F0C03860101"  # the emulator's layout (module docstring)

# value lengths: 81 an8, 84 cn3, 8B an29, 8C cn1, 8F an1 (spec doc §2.6); 80 cn4 and an20 for
# the others (apdu.medical's assumptions)
LENGTHS = {
    0x80: 4,
    0x81: 8,
    0x83: 20,
    0x84: 3,
    0x86: 20,
    0x87: 20,
    0x89: 20,
    0x8A: 20,
    0x8B: 29,
    0x8C: 1,
    0x8D: 20,
    0x8E: 20,
    0x8F: 1,
    0x7D: 20,
    0x7E: 20,
    0x7F: 20,
}


def an(text: str, length: int) -> bytes:
    """An ``an`` value: ASCII right-padded with ``00``."""
    return text.encode("ascii").ljust(length, b"\x00")


def cn(digits: str, length: int) -> bytes:
    """A ``cn`` value: BCD right-padded with ``F``."""
    return bytes.fromhex(digits.ljust(2 * length, "F"))


def record(tag: int, value: bytes) -> str:
    """One SIMPLE-TLV record as hex, the way READ RECORD returns it."""
    return (bytes((tag, len(value))) + value).hex().upper()


def read(tag: int) -> str:
    """READ RECORD by identifier, Le = value length + 2."""
    return f"00B2{tag:02X}00{LENGTHS[tag] + 2:02X}"


ABSENT = {tag: b"\xff" * length for tag, length in LENGTHS.items()}
FULL = {
    0x81: an("31000000", 8),
    0x84: cn("440106", 3),
    0x87: an("44010600100200317", 20),
    0x8C: cn("11", 1),
    0x80: cn("20120701", 4),
    0x8B: an("GZ4401060000000000731", 29),
    0x8A: an("YB440100000123", 20),
    0x83: an("H44010600011", 20),
    0x86: an("H44010600023", 20),
    0x89: an("H44010400007", 20),
    0x7D: an("H44010600011", 20),
    0x7E: ABSENT[0x7E],
    0x7F: ABSENT[0x7F],
    0x8D: an("H44010600023", 20),
    0x8E: ABSENT[0x8E],
    0x8F: an("1", 1),
}
FULL_INFO = MedicalInfo(
    insurance_type="31000000",
    insured_region="440106",
    health_record_number="44010600100200317",
    person_category="11",
    account_opened=dt.date(2012, 7, 1),
    medical_account="GZ4401060000000000731",
    medical_card_number="YB440100000123",
    designated_institutions=("H44010600011", "H44010600023", "H44010400007"),
    injury_institutions=("H44010600011",),
    maternity_institutions=("H44010600023",),
    card_usage="1",
    fields_read=frozenset(MEDICAL_FIELDS),
)
# every record in reading order (MEDICAL_FIELDS order, slots in order)
ALL_TAGS = (0x81, 0x84, 0x87, 0x8C, 0x80, 0x8B, 0x8A, 0x83, 0x86, 0x89, 0x7D, 0x7E, 0x7F)
ALL_TAGS += (0x8D, 0x8E, 0x8F)


def reads(records: dict[int, bytes], tags: tuple[int, ...]) -> list[tuple[str, str]]:
    """The READ RECORD exchanges of ``tags``, each answered with its record and 9000."""
    return [(read(tag), record(tag, records[tag]) + "9000") for tag in tags]


def opening() -> list[tuple[str, str]]:
    return [(SELECT_DF04, FCI_DF04 + "9000"), (SELECT_EF05, "9000")]


# --- the catalogue ------------------------------------------------------------------------------


def test_aid_is_the_spec_doc_df04_aid() -> None:
    assert bytes.fromhex("D1 56 00 00 05 03") == AID_DF04


def test_medical_fields_are_the_fields_of_medical_info_in_order() -> None:
    names = [f.name for f in dataclasses.fields(MedicalInfo) if f.name != "fields_read"]
    assert list(MEDICAL_FIELDS) == names
    assert set(FIELD_TAGS) == set(MEDICAL_FIELDS)


def test_every_ef05_tag_of_the_spec_doc_belongs_to_exactly_one_field() -> None:
    tags = [tag for name in MEDICAL_FIELDS for tag in FIELD_TAGS[name]]
    assert sorted(tags) == sorted(LENGTHS) == sorted(MEDICAL_ITEMS)
    assert len(tags) == len(set(tags)) == 16
    assert tuple(tags) == ALL_TAGS


@pytest.mark.parametrize(("tag", "length"), sorted(LENGTHS.items()))
def test_item_lengths(tag: int, length: int) -> None:
    assert MEDICAL_ITEMS[tag].length == length


def test_every_field_is_documented_with_its_tag() -> None:
    doc = MedicalInfo.__doc__ or ""
    for name, tags in FIELD_TAGS.items():
        line = next(line for line in doc.splitlines() if f":param {name}:" in line)
        assert f"tag {tags[0]:02X}" in line or f"tags {tags[0]:02X}" in line, name


# --- decoding -----------------------------------------------------------------------------------


def test_a_full_record_set_decodes_every_item() -> None:
    assert parse_medical(FULL) == FULL_INFO


@pytest.mark.parametrize(
    ("name", "records", "expected"),
    [
        ("insurance_type", {0x81: an("31000000", 8)}, "31000000"),
        ("insurance_type", {0x81: an("3", 8)}, "3"),  # 00 padding goes
        ("insured_region", {0x84: cn("440106", 3)}, "440106"),
        ("health_record_number", {0x87: an("44010600100200317", 20)}, "44010600100200317"),
        ("person_category", {0x8C: cn("11", 1)}, "11"),
        ("person_category", {0x8C: cn("2", 1)}, "2"),  # F padding goes
        ("account_opened", {0x80: cn("20120701", 4)}, dt.date(2012, 7, 1)),
        ("medical_account", {0x8B: an("A" * 29, 29)}, "A" * 29),  # the full an29
        ("medical_card_number", {0x8A: an("YB440100000123", 20)}, "YB440100000123"),
        ("card_usage", {0x8F: an("1", 1)}, "1"),
        ("designated_institutions", {0x83: an("H1", 20)}, ("H1",)),
        (
            "designated_institutions",
            {0x83: ABSENT[0x83], 0x86: an("H2", 20), 0x89: an("H3", 20)},
            ("H2", "H3"),  # the codes present, in slot order
        ),
        ("injury_institutions", {0x7F: an("W3", 20), 0x7D: an("W1", 20)}, ("W1", "W3")),
        ("maternity_institutions", {0x8D: an("M1", 20), 0x8E: an("M2", 20)}, ("M1", "M2")),
        ("insured_region", {0x84: cn("4401", 3)}, "4401"),  # a short value is kept raw
        ("insurance_type", {0x81: b"31"}, "31"),  # a value shorter than its item is accepted
    ],
)
def test_each_item_decodes(name: str, records: dict[int, bytes], expected: object) -> None:
    info = parse_medical(records, [name])
    assert getattr(info, name) == expected
    assert info.fields_read == {name}


@pytest.mark.parametrize("name", MEDICAL_FIELDS)
@pytest.mark.parametrize("fill", [b"\xff", b""], ids=["FF", "empty"])
def test_items_left_ff_or_empty_are_absent(name: str, fill: bytes) -> None:
    records = {tag: fill * LENGTHS[tag] for tag in FIELD_TAGS[name]}
    assert getattr(parse_medical(records, [name]), name) is None


CN_FIELDS = ("insured_region", "person_category")


@pytest.mark.parametrize("name", [name for name in MEDICAL_FIELDS if name not in CN_FIELDS])
def test_an_items_and_dates_left_all_00_are_absent(name: str) -> None:
    records = {tag: bytes(LENGTHS[tag]) for tag in FIELD_TAGS[name]}
    assert getattr(parse_medical(records, [name]), name) is None


def test_cn_items_of_zeros_are_digits_not_padding() -> None:
    info = parse_medical({0x84: bytes(3), 0x8C: bytes(1)}, CN_FIELDS)
    assert (info.insured_region, info.person_category) == ("000000", "00")


@pytest.mark.parametrize("name", MEDICAL_FIELDS)
def test_a_missing_record_is_an_absent_item(name: str) -> None:
    assert getattr(parse_medical({}, [name]), name) is None


def test_fields_not_asked_for_stay_none_even_when_the_records_are_there() -> None:
    info = parse_medical(FULL, ["insured_region", "card_usage"])
    assert info == MedicalInfo(
        insured_region="440106",
        card_usage="1",
        fields_read=frozenset({"insured_region", "card_usage"}),
    )


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        (
            {0x81: an("310000001", 9)},
            "record 81 (险种类型及标识) holds 9 bytes; the item is an of 8",
        ),
        ({0x84: cn("44010600", 4)}, "record 84 (参保地) holds 4 bytes; the item is cn of 3"),
        ({0x8B: an("A" * 30, 30)}, "record 8B (个人账号) holds 30 bytes"),
        ({0x80: cn("2012070100", 5)}, "record 80 (个人账户建立日期) holds 5 bytes"),
        ({0x89: an("H" * 21, 21)}, "record 89 (定点医疗机构代码3) holds 21 bytes"),
    ],
)
def test_a_value_longer_than_its_item_is_refused(records: dict[int, bytes], needle: str) -> None:
    with pytest.raises(RecordFormatError, match=re.escape(needle)):
        parse_medical(records)


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ({0x80: cn("20121301", 4)}, "not a calendar date"),
        ({0x80: hexbytes("2012AB01")}, "not BCD YYYYMMDD"),
        ({0x8B: "个人".encode("gb18030").ljust(29, b"\x00")}, "not printable ASCII"),
        ({0x8F: b"\x07"}, "not printable ASCII"),
    ],
)
def test_invalid_values_name_the_record_and_item(records: dict[int, bytes], needle: str) -> None:
    with pytest.raises(RecordFormatError, match=needle) as caught:
        parse_medical(records)
    assert str(caught.value).startswith("DF04 EF05 record")


# --- the field set ------------------------------------------------------------------------------


def test_none_means_every_field_and_the_order_is_the_reading_order() -> None:
    assert requested_fields(None) == MEDICAL_FIELDS
    assert requested_fields(["card_usage", "insured_region", "card_usage"]) == (
        "insured_region",
        "card_usage",
    )
    assert medical_tags(["designated_institutions"]) == (0x83, 0x86, 0x89)
    assert medical_tags(None) == ALL_TAGS


def test_an_unknown_field_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\['insurance_typ'\] are not DF04 EF05 fields"):
        requested_fields(["insurance_typ"])


def test_a_bare_string_is_not_a_field_set() -> None:
    with pytest.raises(ValueError, match="not the string 'card_usage'"):
        requested_fields("card_usage")


# --- read_medical against a scripted card --------------------------------------------------------


def read_medical(
    card: ScriptedConnection, fields: list[str] | set[str] | None = None, *, t0: bool = False
) -> MedicalInfo:
    """``SscSession.read_medical``: SELECT SSSE (answered here with an empty FCI), then DF04."""
    card.script.appendleft((hexbytes(SELECT_SSSE), hexbytes("9000")))
    return SscSession(t0_chain(card) if t0 else card).read_medical(fields)


def test_read_all_sends_select_df04_select_ef05_and_every_record_by_identifier() -> None:
    card = ScriptedConnection([*opening(), *reads(FULL, ALL_TAGS)])
    assert read_medical(card) == FULL_INFO
    card.assert_consumed()


def test_only_the_records_of_the_requested_fields_are_read() -> None:
    card = ScriptedConnection([*opening(), *reads(FULL, (0x84, 0x8C, 0x8F))])
    info = read_medical(card, {"card_usage", "person_category", "insured_region"})
    card.assert_consumed()
    assert (info.insured_region, info.person_category, info.card_usage) == ("440106", "11", "1")
    assert info.insurance_type is None and info.designated_institutions is None


def test_an_empty_field_set_sends_nothing() -> None:
    card = ScriptedConnection([])
    assert read_medical(card, []) == MedicalInfo()
    assert card.sent == [hexbytes(SELECT_SSSE)]


def test_an_unknown_field_sends_nothing() -> None:
    card = ScriptedConnection([])
    with pytest.raises(ValueError, match="not DF04 EF05 fields"):
        read_medical(card, ["insured_region", "blood_type"])
    assert card.sent == [hexbytes(SELECT_SSSE)]


def test_6982_before_the_pin_names_the_pin_and_rk1df04() -> None:
    card = ScriptedConnection([*opening(), (read(0x81), "6982")])
    with pytest.raises(SecurityNotSatisfied) as caught:
        read_medical(card, ["insurance_type", "insured_region"])
    card.assert_consumed()
    message = str(caught.value)
    assert "record 81" in message and "PIN" in message and "RK1DF04" in message
    assert caught.value.sw == 0x6982
    assert isinstance(caught.value.__cause__, ApduError)
    assert caught.value.__cause__.sw == 0x6982


@pytest.mark.parametrize("sw", ["6A83", "6A82"])
def test_record_not_found_is_an_absent_item(sw: str) -> None:
    found = record(0x86, FULL[0x86]) + "9000"
    card = ScriptedConnection([*opening(), (read(0x83), sw), (read(0x86), found), (read(0x89), sw)])
    info = read_medical(card, ["designated_institutions"])
    card.assert_consumed()
    assert info.designated_institutions == ("H44010600023",)


def test_a_record_with_another_tag_is_refused() -> None:
    card = ScriptedConnection([*opening(), (read(0x81), record(0x84, FULL[0x84]) + "9000")])
    with pytest.raises(
        RecordFormatError, match="DF04 EF05 asked for record 81, the card returned record 84"
    ):
        read_medical(card, ["insurance_type"])
    card.assert_consumed()


def test_a_record_whose_length_runs_past_its_data_is_refused() -> None:
    truncated = "8B1E" + FULL[0x8B].hex().upper()  # says 30 bytes, holds 29
    card = ScriptedConnection([*opening(), (read(0x8B), truncated + "9000")])
    with pytest.raises(RecordFormatError, match="DF04 EF05 record 8B") as caught:
        read_medical(card, ["medical_account"])
    card.assert_consumed()
    assert isinstance(caught.value.__cause__, RecordFormatError)
    assert isinstance(caught.value.__cause__.__cause__, TlvError)


def test_a_record_longer_than_its_item_is_refused() -> None:
    card = ScriptedConnection([*opening(), (read(0x8F), record(0x8F, b"12") + "9000")])
    with pytest.raises(RecordFormatError, match=re.escape("record 8F (用卡方式) holds 2 bytes")):
        read_medical(card, ["card_usage"])
    card.assert_consumed()


def test_trailing_bytes_after_the_record_are_refused() -> None:
    card = ScriptedConnection([*opening(), (read(0x8F), record(0x8F, b"1") + "00" + "9000")])
    with pytest.raises(RecordFormatError, match="trailing"):
        read_medical(card, ["card_usage"])
    card.assert_consumed()


def test_a_card_without_df04_is_a_clear_error() -> None:
    card = ScriptedConnection([(SELECT_DF04, "6A82")])
    with pytest.raises(NoMedicalApplication, match="no medical-insurance data") as caught:
        read_medical(card)
    card.assert_consumed()
    assert isinstance(caught.value, ApduError) and caught.value.sw == 0x6A82
    assert "DF04" in str(caught.value)


def test_df04_without_ef05_is_a_clear_error() -> None:
    card = ScriptedConnection([(SELECT_DF04, FCI_DF04 + "9000"), (SELECT_EF05, "6A82")])
    with pytest.raises(NoMedicalApplication, match="DF04 has no EF05"):
        read_medical(card)
    card.assert_consumed()


def test_select_ef05_answered_6982_names_the_pin() -> None:
    card = ScriptedConnection([(SELECT_DF04, FCI_DF04 + "9000"), (SELECT_EF05, "6982")])
    with pytest.raises(SecurityNotSatisfied, match="PIN"):
        read_medical(card)
    card.assert_consumed()


def test_locked_df04_raises_application_locked() -> None:
    card = ScriptedConnection([(SELECT_DF04, "9303")])
    with pytest.raises(ApplicationLocked):
        read_medical(card)
    card.assert_consumed()


@pytest.mark.parametrize("script", [[(SELECT_DF04, "6A81")], [*opening(), (read(0x81), "6A81")]])
def test_blocked_card_raises_card_blocked(script: list[tuple[str, str]]) -> None:
    card = ScriptedConnection(script)
    with pytest.raises(CardBlocked):
        read_medical(card, ["insurance_type"])
    card.assert_consumed()


def test_other_refusals_raise_apdu_error() -> None:
    card = ScriptedConnection([*opening(), (read(0x81), "6986")])
    with pytest.raises(ApduError, match="SW 6986"):
        read_medical(card, ["insurance_type"])
    card.assert_consumed()


@pytest.mark.parametrize(
    ("fci", "needle"),
    [
        ("840F7378312E73682EC9E7BBE1B1A3D5CF", "DF04 FCI must start with tag 6F"),
        ("6F108406D15600000503A5069F0C0386", "DF04 FCI does not parse"),
        ("6F0884067378312E7368", "SELECT DF04 answered the FCI of 7378312E7368"),
    ],
)
def test_a_malformed_or_foreign_fci_is_refused(fci: str, needle: str) -> None:
    card = ScriptedConnection([(SELECT_DF04, fci + "9000")])
    with pytest.raises(RecordFormatError, match=needle):
        MedicalSession(card)
    card.assert_consumed()


def test_an_empty_fci_is_accepted() -> None:
    card = ScriptedConnection([(SELECT_DF04, "9000")])
    assert MedicalSession(card).fci.df_name == b""


def test_through_the_t0_chain_61xx_and_6cxx_are_followed() -> None:
    short = b"44010600100200317"  # a card whose 健康档案编号 record holds 17 bytes, not 20
    card = ScriptedConnection(
        [
            (SELECT_DF04, "6112"),
            ("00C0000012", FCI_DF04 + "9000"),
            (SELECT_EF05, "9000"),
            (read(0x87), "6C13"),  # a T=0 card names the exact Le …
            ("00B2870013", record(0x87, short) + "9000"),  # … and the reader re-issues with it
            (read(0x8B), "611F"),
            ("00C000001F", record(0x8B, FULL[0x8B]) + "9000"),
        ]
    )
    info = read_medical(card, ["health_record_number", "medical_account"], t0=True)
    card.assert_consumed()
    assert info.health_record_number == "44010600100200317"
    assert info.medical_account == "GZ4401060000000000731"
