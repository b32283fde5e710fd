"""Unit tests for apdu.ssc: ``SscSession`` driven by a scripted fake card that asserts the exact
APDUs of SSC spec doc §3.3 and §5 — SELECT, the EF05/EF06 reads (only the holder items asked
for), the PIN outcomes — and the free read of terminal.reading built on it.

Known answers: see ssc_vectors (spec doc §2.2, §3.3, §4.3).
"""

from __future__ import annotations

import datetime as dt

import pytest
from scripted_connection import ScriptedConnection, hexbytes
from ssc_vectors import (
    AID_SSSE,
    EF05_2_0,
    EF05_TAGS,
    EF06_2_0,
    EF06_TAGS_2_0,
    FCI_3_0,
    FCI_NO_ALGORITHM,
    HISTORICAL,
    READ,
    SELECT_EF05,
    SELECT_EF06,
    SELECT_SSSE,
    SSN,
    ZHANG_SAN,
    ascii_bytes,
    reads,
    record,
)

from apdu.errors import (
    ApduError,
    ApplicationLocked,
    CardBlocked,
    PinBlocked,
    RecordFormatError,
    SecurityNotSatisfied,
    WrongPin,
)
from apdu.pin import PinFormatError
from apdu.records import (
    HOLDER_ITEMS,
    CardAlgorithm,
    CardContents,
    Generation,
    HolderData,
    holder_tags,
    parse_issuer,
)
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from terminal.reading import read_contents


def read_free(card: ScriptedConnection, historical: bytes) -> CardContents:
    """The free read of ``sscard read`` without a module (terminal.reading)."""
    return read_contents(card, historical)


# --- SscSession and read_free ------------------------------------------------------------------


def _script_2_0(ef05: dict[int, bytes] = EF05_2_0) -> list[tuple[str, str]]:
    """The full spec doc §3.3 read of a 2.0 card, every record present."""
    return [
        (SELECT_SSSE, FCI_NO_ALGORITHM + "9000"),
        (SELECT_EF05, "9000"),
        *reads(ef05, EF05_TAGS),
        (SELECT_EF06, "9000"),
        *reads(EF06_2_0, EF06_TAGS_2_0),
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
    ef05 = {**EF05_2_0, 0x03: ascii_bytes("3.00")}
    card = ScriptedConnection(
        [
            (SELECT_SSSE, FCI_3_0 + "9000"),
            (SELECT_EF05, "9000"),
            *reads(ef05, EF05_TAGS),
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
    ef05 = {**EF05_2_0, 0x03: ascii_bytes("1.00")}
    card = ScriptedConnection(
        [
            (SELECT_SSSE, FCI_NO_ALGORITHM + "9000"),
            (SELECT_EF05, "9000"),
            *reads(ef05, EF05_TAGS),
            (SELECT_EF06, "9000"),
            *reads(EF06_2_0, holder_tags(HOLDER_ITEMS, Generation.V1)),
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


# --- read_holder(items): only what is asked -----------------------------------------------------


def _after_ef05(fci: str = FCI_NO_ALGORITHM, ef05: dict[int, bytes] = EF05_2_0) -> list:
    return [(SELECT_SSSE, fci + "9000"), (SELECT_EF05, "9000"), *reads(ef05, EF05_TAGS)]


def test_read_holder_of_the_name_reads_09_and_4e_and_nothing_else() -> None:
    card = ScriptedConnection([*_after_ef05(), (SELECT_EF06, "9000"), *reads(EF06_2_0, (9, 0x4E))])
    session = SscSession(card)
    session.read_issuer()
    holder = session.read_holder(["name"])
    card.assert_consumed()
    assert holder.name == "张三" and holder.ssn is None and holder.birth_date is None


def test_read_holder_reads_ef05_first_when_it_was_not_read() -> None:
    script = [*_after_ef05(), (SELECT_EF06, "9000"), *reads(EF06_2_0, (0x08,))]
    card = ScriptedConnection(script)
    holder = SscSession(card).read_holder(["ssn"])
    card.assert_consumed()
    assert holder.ssn == SSN


def test_read_holder_of_a_birth_date_left_ff_reads_the_ssn_for_it_alone() -> None:
    # spec doc §2.5: an FF birth date is taken from the SSN, which is read only then
    card = ScriptedConnection(
        [*_after_ef05(), (SELECT_EF06, "9000"), *reads(EF06_2_0, (0x0D, 0x08))]
    )
    session = SscSession(card)
    session.read_issuer()
    holder = session.read_holder(["birth_date"])
    card.assert_consumed()
    assert holder.birth_date == dt.date(1981, 1, 1) and holder.birth_date_derived


def test_read_holder_of_a_sex_on_the_card_does_not_read_the_ssn() -> None:
    card = ScriptedConnection([*_after_ef05(), (SELECT_EF06, "9000"), *reads(EF06_2_0, (0x0A,))])
    session = SscSession(card)
    session.read_issuer()
    assert session.read_holder(["sex"]).sex == "2"
    card.assert_consumed()


def test_read_holder_of_no_items_sends_nothing() -> None:
    card = ScriptedConnection(_after_ef05())
    session = SscSession(card)
    session.read_issuer()
    assert session.read_holder([]) == HolderData(None, None, None, None, None, None)
    card.assert_consumed()


def test_read_holder_refuses_an_unknown_item_before_sending_anything() -> None:
    card = ScriptedConnection(_after_ef05())
    session = SscSession(card)
    session.read_issuer()
    with pytest.raises(ValueError, match="blood_type"):
        session.read_holder(["name", "blood_type"])
    card.assert_consumed()


# --- the PIN: each status word its own outcome (spec doc §5) -------------------------------------

VERIFY_123456 = "0020000003123456"
CHANGE_123456_TO_24680 = "805E010007123456FF24680F"


def _pin_session(*exchanges: tuple[str, str]) -> tuple[SscSession, ScriptedConnection]:
    card = ScriptedConnection([(SELECT_SSSE, FCI_3_0 + "9000"), *exchanges])
    return SscSession(card), card


def test_verify_pin_sends_the_bcd_pin_and_returns_on_9000() -> None:
    session, card = _pin_session((VERIFY_123456, "9000"))
    session.verify_pin("123456")
    card.assert_consumed()


@pytest.mark.parametrize(
    ("sw", "error", "tries_left"),
    [
        ("63C2", WrongPin, 2),
        ("63C0", WrongPin, 0),
        ("6983", PinBlocked, None),
        ("9303", ApplicationLocked, None),
        ("6A81", CardBlocked, None),
    ],
)
def test_each_pin_status_word_is_its_own_outcome(
    sw: str, error: type[Exception], tries_left: int | None
) -> None:
    for method, command, pins in (
        ("verify_pin", VERIFY_123456, ("123456",)),
        ("change_pin", CHANGE_123456_TO_24680, ("123456", "24680")),
    ):
        session, card = _pin_session((command, sw))
        with pytest.raises(error) as caught:
            getattr(session, method)(*pins)
        card.assert_consumed()
        assert type(caught.value) is error
        assert getattr(caught.value, "tries_left", None) == tries_left
        assert "123456" not in f"{caught.value} {caught.value!r}"
        assert caught.value.__cause__ is None  # the command bytes, with the PIN, stay behind


def test_another_pin_refusal_is_an_apdu_error_without_the_pin() -> None:
    session, card = _pin_session((VERIFY_123456, "6A88"))
    with pytest.raises(ApduError) as caught:
        session.verify_pin("123456")
    card.assert_consumed()
    assert caught.value.sw == 0x6A88 and caught.value.command == hexbytes("00200000")


def test_a_malformed_pin_sends_nothing() -> None:
    session, card = _pin_session()
    with pytest.raises(PinFormatError):
        session.verify_pin("12a4")
    with pytest.raises(PinFormatError):
        session.change_pin("123456", "123")
    card.assert_consumed()


@pytest.mark.parametrize(("sw", "left"), [("63C3", 3), ("63C1", 1), ("9000", None)])
def test_pin_tries_left_asks_with_case_1_verify(sw: str, left: int | None) -> None:
    session, card = _pin_session(("00200000", sw))
    assert session.pin_tries_left() == left
    card.assert_consumed()


@pytest.mark.parametrize(
    ("sw", "error"), [("6983", PinBlocked), ("9303", ApplicationLocked), ("6A81", CardBlocked)]
)
def test_pin_tries_left_of_a_blocked_pin_or_a_locked_card(sw: str, error: type) -> None:
    session, card = _pin_session(("00200000", sw))
    with pytest.raises(error):
        session.pin_tries_left()
    card.assert_consumed()


def test_read_medical_of_no_fields_sends_nothing() -> None:
    session, card = _pin_session()
    assert session.read_medical([]).fields_read == frozenset()
    card.assert_consumed()
