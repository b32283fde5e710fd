"""DF04 EF05 医疗保险基本信息 in-process: the virtual card's DF04 byte by byte, its PIN-guarded
reads and security status, persona ``[medical]`` tables, and ``apdu.ssc.SscSession.read_medical``
against the card on T=0 and T=1.

The expected values come from the persona TOML files, not from the code under test.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from support import all_persona_names, make_card, persona, persona_path

from apdu.errors import (
    ApplicationLocked,
    CardBlocked,
    RecordFormatError,
    SecurityNotSatisfied,
    WrongPin,
)
from apdu.files import AID_SSSE
from apdu.medical import (
    AID_DF04,
    MEDICAL_FIELDS,
    MedicalInfo,
    MedicalSession,
    NoMedicalApplication,
)
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from drivers.virtual.card import VirtualConnection
from drivers.virtual.persona import PersonaError, parse_persona
from drivers.virtual.ssc_card import VirtualSscCard

pytestmark = pytest.mark.emulated

H = bytes.fromhex
SELECT_SSSE = H("00A404000F") + AID_SSSE + H("00")
SELECT_DF04 = H("00A4040006") + AID_DF04 + H("00")
SELECT_EF05 = H("00A4020002EF05")
PINS = {"ordinary-2.0": "123456", "v3-sm4": "123456", "hk-resident": "654321"}
WITH_MEDICAL = sorted(PINS)
WITHOUT_MEDICAL = [name for name in all_persona_names() if persona(name).medical is None]
INSTITUTIONS = ("designated_institutions", "injury_institutions", "maternity_institutions")


def toml(name: str) -> dict[str, Any]:
    """The persona file as the test's independent source of truth."""
    return tomllib.loads(persona_path(name).read_text(encoding="utf-8"))


def expected_info(name: str) -> MedicalInfo:
    """What the persona file says EF05 holds; items it leaves out are absent."""
    table = toml(name)["medical"]
    values = {
        field: (tuple(table[field]) if field in INSTITUTIONS else table[field])
        for field in MEDICAL_FIELDS
        if field in table
    }
    return MedicalInfo(**values, fields_read=frozenset(MEDICAL_FIELDS))


def connect(card: VirtualSscCard) -> SscSession:
    """Power the card on and select SSSE: the card session."""
    return SscSession(t0_chain(VirtualConnection(card)))


def answer(card: VirtualSscCard, command: bytes | str) -> str:
    raw = H(command) if isinstance(command, str) else command
    return card.process(raw).hex().upper()


def reads(card: VirtualSscCard) -> list[int]:
    """The record identifiers of every READ RECORD the card saw."""
    return [command[2] for command, _ in card.log if command[1] == 0xB2]


def after_pin(name: str, **behaviour: object) -> tuple[VirtualSscCard, SscSession]:
    card = make_card(name, **behaviour)
    session = connect(card)
    session.verify_pin(PINS[name])
    return card, session


# --- the read flow ------------------------------------------------------------------------------


@pytest.mark.parametrize("t0", [False, True], ids=["T1", "T0"])
@pytest.mark.parametrize("name", WITH_MEDICAL)
def test_before_the_pin_ef05_answers_6982(name: str, t0: bool) -> None:
    card = make_card(name, t0=t0)
    session = connect(card)
    with pytest.raises(SecurityNotSatisfied, match=r"PIN .* or RK1DF04"):
        session.read_medical()
    assert card.log[-1] == (H("00B281000A"), H("6982"))


@pytest.mark.parametrize("t0", [False, True], ids=["T1", "T0"])
@pytest.mark.parametrize("name", WITH_MEDICAL)
def test_after_the_pin_every_field_reads_as_the_persona_says(name: str, t0: bool) -> None:
    card, session = after_pin(name, t0=t0)
    assert session.read_medical() == expected_info(name)
    assert len(reads(card)) == 16


@pytest.mark.parametrize("t0", [False, True], ids=["T1", "T0"])
def test_only_the_records_of_the_requested_fields_are_read(t0: bool) -> None:
    card, session = after_pin("ordinary-2.0", t0=t0)
    before = len(card.log)
    info = session.read_medical(["insurance_type", "insured_region", "person_category"])
    assert (info.insurance_type, info.insured_region, info.person_category) == (
        "31000000",
        "440106",
        "11",
    )
    sent = [command for command, _ in card.log[before:]]
    reads_sent = [H("00B281000A"), H("00B2840005"), H("00B28C0003")]
    if t0:  # SELECT DF04 is case 4: 61xx, then GET RESPONSE for the FCI
        assert sent == [SELECT_DF04, H("00C0000012"), SELECT_EF05, *reads_sent]
    else:
        assert sent == [SELECT_DF04, SELECT_EF05, *reads_sent]


def test_institution_slots_are_read_together_and_nothing_else() -> None:
    card, session = after_pin("hk-resident")
    info = session.read_medical(["designated_institutions"])
    assert info.designated_institutions == ("H44030400019", "H44030400042")
    assert reads(card) == [0x83, 0x86, 0x89]


def test_an_empty_field_set_does_not_touch_the_card() -> None:
    card, session = after_pin("ordinary-2.0")
    before = len(card.log)
    assert session.read_medical(()) == MedicalInfo()
    assert len(card.log) == before


def test_a_wrong_pin_does_not_open_ef05() -> None:
    card = make_card("ordinary-2.0")
    session = connect(card)
    with pytest.raises(WrongPin):
        session.verify_pin("000000")
    with pytest.raises(SecurityNotSatisfied):
        session.read_medical(["card_usage"])


# --- the security status ------------------------------------------------------------------------


@pytest.mark.parametrize("t0", [False, True], ids=["T1", "T0"])
def test_the_verified_pin_is_lost_at_power_off(t0: bool) -> None:
    card, session = after_pin("v3-sm4", t0=t0)
    assert session.read_medical(["insured_region"]).insured_region == "330106"
    session = connect(card)  # a new VirtualConnection powers the card on again
    with pytest.raises(SecurityNotSatisfied):
        session.read_medical(["insured_region"])


def test_the_verified_pin_is_lost_when_ssse_is_selected_again() -> None:
    _, session = after_pin("ordinary-2.0")
    SscSession(session.connection)
    with pytest.raises(SecurityNotSatisfied):
        session.read_medical(["insured_region"])
    session.verify_pin(PINS["ordinary-2.0"])
    assert session.read_medical(["insured_region"]).insured_region == "440106"


def test_the_verified_pin_survives_selecting_df04_again_and_the_mf_leaves_df04() -> None:
    card, session = after_pin("ordinary-2.0")
    session.read_medical(["card_usage"])
    assert session.read_medical(["card_usage"]).card_usage == "1"  # DF04 from DF04
    assert answer(card, "00A40000023F00") == "9000"
    assert answer(card, SELECT_DF04) == "6A82"  # DF04 lies under SSSE


def test_pin_verified_in_df04_opens_ef05_too() -> None:
    card = make_card("ordinary-2.0")
    session = connect(card)
    with pytest.raises(SecurityNotSatisfied):
        session.read_medical(["card_usage"])  # leaves DF04 selected
    session.verify_pin(PINS["ordinary-2.0"])
    assert session.read_medical(["card_usage"]).card_usage == "1"


# --- bytes on the wire ----------------------------------------------------------------------


def test_df04_fci_and_records_byte_for_byte() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    answer(card, SELECT_SSSE)
    assert answer(card, SELECT_DF04) == "6F108406D15600000503A5069F0C038601019000"
    assert answer(card, SELECT_EF05) == "9000"
    assert answer(card, "00B2840005") == "6982"
    assert answer(card, "0020000003123456") == "9000"
    assert answer(card, "00B2840005") == "8403440106" + "9000"  # cn3
    assert answer(card, "00B28C0003") == "8C0111" + "9000"  # cn1
    assert answer(card, "00B2800006") == "800420120701" + "9000"  # BCD date
    assert answer(card, "00B28F0003") == "8F0131" + "9000"  # an1 '1'
    account = b"GZ4401060000000000731".ljust(29, b"\x00").hex().upper()
    assert answer(card, "00B28B001F") == "8B1D" + account + "9000"  # an29, 00-padded
    assert answer(card, "00B27E0016") == "7E14" + "FF" * 20 + "9000"  # unset slot: FF
    assert answer(card, "00B2010012") == "6A83"  # SSSE's EF05 is not DF04's


def test_cn_items_are_f_padded_and_unset_items_ff() -> None:
    card, _ = after_pin("v3-sm4")
    answer(card, SELECT_DF04)
    answer(card, SELECT_EF05)
    assert answer(card, "00B28C0003") == "8C0121" + "9000"
    assert answer(card, "00B2870016") == "8714" + "FF" * 20 + "9000"  # 健康档案编号 left out
    p = parse_persona({**BASE, "medical": {"person_category": "2"}}, "cat")
    assert p.medical is not None and p.medical[0x8C] == H("8C012F")


def test_t0_select_df04_announces_61xx_and_reads_need_the_exact_le() -> None:
    card = make_card("ordinary-2.0", t0=True)
    card.power_on()
    answer(card, SELECT_SSSE)
    assert answer(card, SELECT_DF04) == "6112"
    assert answer(card, "00C0000012") == "6F108406D15600000503A5069F0C038601019000"
    answer(card, SELECT_EF05)
    answer(card, "0020000003123456")
    assert answer(card, "00B2840000") == "6C05"
    assert answer(card, "00B2840005") == "8403440106" + "9000"


def test_t1_reads_return_up_to_le() -> None:
    card, _ = after_pin("ordinary-2.0")
    answer(card, SELECT_DF04)
    answer(card, SELECT_EF05)
    assert answer(card, "00B2840000") == "8403440106" + "9000"
    assert answer(card, "00B2840003") == "6C05"


def test_df04_files_by_sfi_and_by_record_number() -> None:
    card, _ = after_pin("ordinary-2.0")
    answer(card, SELECT_DF04)
    assert answer(card, "00B2842805") == "8403440106" + "9000"  # SFI 05, by identifier
    assert answer(card, "00B2013006") == "6A82"  # SFI 06: DF04's EF06 is not emulated
    assert answer(card, "00A4020002EF06") == "6A82"
    assert answer(card, "00B2010416").startswith("7D14")  # record 1 in tag order


def test_a_locked_application_answers_9303_to_df04_too() -> None:
    card = make_card("ordinary-2.0", app_locked=True)
    connection = t0_chain(VirtualConnection(card))
    with pytest.raises(ApplicationLocked):
        SscSession(connection)
    with pytest.raises(ApplicationLocked):
        MedicalSession(connection)
    assert card.log[-1] == (SELECT_DF04, H("9303"))


def test_a_blocked_card_answers_6a81_to_df04() -> None:
    card = make_card("v3-sm4", card_blocked=True)
    with pytest.raises(CardBlocked):
        MedicalSession(t0_chain(VirtualConnection(card)))
    assert card.log == [(SELECT_DF04, H("6A81"))]


@pytest.mark.parametrize("name", WITHOUT_MEDICAL)
def test_a_persona_without_medical_has_no_df04(name: str) -> None:
    card = make_card(name)
    session = connect(card)
    with pytest.raises(NoMedicalApplication, match="no medical-insurance data") as caught:
        session.read_medical()
    assert caught.value.sw == 0x6A82
    assert card.log[-1] == (SELECT_DF04, H("6A82"))


def test_the_hospital_personas_have_medical_data_and_the_others_not() -> None:
    assert all(persona(name).medical for name in WITH_MEDICAL)
    assert {"absent-fields", "expired", "foreign-4e", "forged", "v1-legacy"} <= set(WITHOUT_MEDICAL)


def test_a_hong_kong_resident_can_register_at_a_hospital() -> None:
    _, session = after_pin("hk-resident", t0=True)
    info = session.read_medical(["insured_region", "person_category", "insurance_type"])
    assert (info.insured_region, info.person_category, info.insurance_type) == (
        "440304",
        "11",
        "31000000",
    )


# --- persona [medical] and raw records ----------------------------------------------------------

BASE: dict[str, Any] = {
    "card": {"spec_version": "2.00", "city_code": "440100", "serial": "00000001"},
    "pin": {"value": "123456"},
}


def medical_card(raw_records: dict[str, str]) -> VirtualSscCard:
    data = {**BASE, "medical": {"insured_region": "440100", "card_usage": "1"}}
    return VirtualSscCard(parse_persona({**data, "raw_records": raw_records}, "raw"))


def test_a_raw_record_with_another_tag_is_refused_by_the_reader() -> None:
    card = medical_card({"DF04.EF05.84": "8F0131"})
    session = connect(card)
    session.verify_pin("123456")
    with pytest.raises(RecordFormatError, match="asked for record 84, the card returned record 8F"):
        session.read_medical(["insured_region"])


def test_a_raw_record_longer_than_its_item_is_refused_by_the_reader() -> None:
    session = connect(medical_card({"DF04.EF05.8F": "8F023132"}))
    session.verify_pin("123456")
    with pytest.raises(RecordFormatError, match="holds 2 bytes"):
        session.read_medical(["card_usage"])


def test_a_removed_record_answers_6a83_and_reads_as_absent() -> None:
    card = medical_card({"DF04.EF05.84": ""})
    session = connect(card)
    session.verify_pin("123456")
    info = session.read_medical(["insured_region", "card_usage"])
    assert (info.insured_region, info.card_usage) == (None, "1")
    assert (H("00B2840005"), H("6A83")) in card.log


@pytest.mark.parametrize(
    ("medical", "needle"),
    [
        ("yes", r"\[medical\]: must be a table"),
        ({"blood_type": "A"}, r"\[medical\]: unknown keys \['blood_type'\]"),
        ({"insured_region": 440100}, "insured_region: must be a quoted string, got int"),
        ({"insured_region": "44AB00"}, "参保地 is cn, decimal digits only"),
        ({"insured_region": "4401001"}, "does not fit in 3 bytes"),
        ({"insurance_type": "310000001"}, "insurance_type: '310000001' needs 9 bytes"),
        ({"medical_account": "账号"}, "个人账号 is an, printable ASCII only"),
        ({"account_opened": "2012-07-01"}, "account_opened: expected a TOML date"),
        ({"designated_institutions": "H1"}, "designated_institutions: must be a list"),
        ({"maternity_institutions": ["M1", "M2", "M3"]}, "at most 2 codes, got 3"),
        ({"injury_institutions": ["W1", 2]}, "injury_institutions: must be a quoted string"),
    ],
)
def test_bad_medical_tables_are_clear_errors(medical: object, needle: str) -> None:
    with pytest.raises(PersonaError, match=needle):
        parse_persona({**BASE, "medical": medical}, "bad")


def test_raw_df04_records_need_a_medical_table() -> None:
    with pytest.raises(PersonaError, match=r"DF04\.EF05\.tt \(with a \[medical\] table\)"):
        parse_persona({**BASE, "raw_records": {"DF04.EF05.84": "8403440100"}}, "bad")


def test_a_medical_table_fills_every_record_and_leaves_the_rest_ff() -> None:
    p = parse_persona({**BASE, "medical": {}}, "empty")
    assert p.medical is not None and len(p.medical) == 16
    assert all(set(raw[2:]) == {0xFF} for raw in p.medical.values())
