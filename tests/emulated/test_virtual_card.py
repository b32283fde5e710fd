"""The emulated card in-process: T=0 chaining, faults, personas, and the reader flow against it."""

from __future__ import annotations

import pytest
from support import all_persona_names, make_card, persona

from apdu.errors import CardRemoved
from apdu.files import AID_SSSE
from drivers.virtual.card import VirtualConnection
from drivers.virtual.persona import PersonaError, parse_persona
from terminal.reading import read_and_classify, result_json

pytestmark = pytest.mark.emulated

SELECT = bytes.fromhex("00A404000F") + AID_SSSE


def answer(card, hex_apdu: str | bytes) -> str:
    raw = bytes.fromhex(hex_apdu) if isinstance(hex_apdu, str) else hex_apdu
    return card.process(raw).hex().upper()


def test_t0_select_announces_61xx_and_get_response_hands_out_chunks() -> None:
    card = make_card("ordinary-2.0", t0=True)
    card.power_on()
    assert answer(card, SELECT) == "611E"
    first = answer(card, "00C0000010")
    assert first.startswith("6F1C840F") and first.endswith("610E")
    assert answer(card, "00C0000020") == "6C0E"  # asking for more than is left
    assert answer(card, "00C000000E").endswith("9F0C038601019000")
    assert answer(card, "00C000000E") == "6985"  # nothing pending any more


def test_t0_read_record_needs_the_exact_le() -> None:
    card = make_card("ordinary-2.0", t0=True)
    card.power_on()
    answer(card, SELECT + b"\x00")
    answer(card, "00A4020002EF05")
    assert answer(card, "00B2070000") == "6C0B"
    assert answer(card, "00B2070010") == "6C0B"
    assert answer(card, "00B207000B").endswith("9000")


def test_t1_read_record_returns_up_to_le() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    assert answer(card, SELECT + b"\x00").endswith("9000")
    answer(card, "00A4020002EF05")
    assert answer(card, "00B2070000") == "0709" + b"A01023450".hex().upper() + "9000"
    assert answer(card, "00B2070005") == "6C0B"


def test_read_by_sfi_and_by_record_number() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    answer(card, SELECT)
    assert answer(card, "00B2072C0B") == "0709" + b"A01023450".hex().upper() + "9000"
    assert answer(card, "00B2010412").startswith("0110440100D156000005")


def test_select_unknown_application_and_no_current_ef() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    assert answer(card, "00A4040005A000000333") == "6A82"
    answer(card, SELECT)
    assert answer(card, "00B2070000") == "6986"
    assert answer(card, "90B2070000") == "6E00"


def test_power_on_forgets_the_selection() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    answer(card, SELECT)
    answer(card, "00A4020002EF05")
    card.power_on()
    assert answer(card, "00B2070000") == "6986"


def test_tearing_removes_the_card_for_good() -> None:
    card = make_card("ordinary-2.0", tear_after=2)
    connection = VirtualConnection(card)
    connection.transmit(SELECT)
    connection.transmit(bytes.fromhex("00A4020002EF05"))
    with pytest.raises(CardRemoved):
        connection.transmit(bytes.fromhex("00B2070000"))
    with pytest.raises(CardRemoved):
        connection.transmit(SELECT)


@pytest.mark.parametrize("t0", [False, True])
@pytest.mark.parametrize("name", all_persona_names())
def test_every_persona_reads_in_process(name: str, t0: bool) -> None:
    card = make_card(name, t0=t0)
    result = read_and_classify(VirtualConnection(card), card.atr)
    if name.startswith("v3"):
        assert result.code == -27010
        assert result.contents is not None and result.contents.holder is None
    else:
        assert result.ok, result.failure


def test_foreign_name_is_joined_from_09_and_4e() -> None:
    card = make_card("foreign-4e")
    result = read_and_classify(VirtualConnection(card), card.atr)
    assert result.contents is not None and result.contents.holder is not None
    assert result.contents.holder.name == "ALEXANDRA KATHERINE MONTGOMERY-WILLIAMSON"
    # the record really was split: 30 bytes in 09, the rest in 4E
    assert card.persona.ef06[0x4E][2:13] == b"-WILLIAMSON"


def test_v1_card_has_no_4e_and_takes_the_algorithm_from_the_region() -> None:
    card = make_card("v1-legacy")
    result = read_and_classify(VirtualConnection(card), card.atr)
    assert result.ok and result.contents is not None
    assert result.contents.algorithm == "ssf33"  # no 9F0C in the FCI, region 11
    assert not any(cmd.startswith(bytes.fromhex("00B24E")) for cmd, _ in card.log)


def raw_record_persona(records: dict[str, str]):
    data = {
        "card": {
            "spec_version": "2.00",
            "city_code": "440100",
            "serial": "00000001",
            "card_number": "A01023450",
        },
        "holder": {"ssn": "440000199003071027", "name": "陈静怡"},
        "raw_records": records,
    }
    return parse_persona(data, "raw")


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ({"EF06.09": "0A03C2C1C0"}, "asked for record 09, the card returned record 0A"),
        ({"EF06.08": "0812343430"}, "record 08"),
        ({"EF05.05": "050420231399"}, "not a calendar date"),
        ({"EF06.0D": "0D0419AB0101"}, "not BCD"),
    ],
)
def test_malformed_records_give_a_clear_error_not_a_trace(records, needle) -> None:
    from drivers.virtual.ssc_card import VirtualSscCard

    card = VirtualSscCard(raw_record_persona(records))
    result = read_and_classify(VirtualConnection(card), card.atr)
    assert not result.ok
    assert result.failure is not None and needle in result.failure.reason
    assert result.code in (-15, -20)
    assert result_json(result)["ok"] is False


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": "red"}, "unknown keys"),
        ({"card": {"city_code": "44"}}, "city_code"),
        ({"card": {"city_code": "440100", "serial": "01"}}, "four bytes"),
        ({"card": {"city_code": "440100", "serial": "00000001", "algorithm": "rot"}}, "algorithm"),
        ({"card": {"city_code": "440100", "serial": "00000001", "issue_date": "today"}}, "date"),
        # issue 10 finding 9's siblings: wrong types and odd text are errors, not tracebacks
        ({"card": "440100"}, r"\[card\] must be a table"),
        ({"holder": ["x"]}, r"\[holder\] must be a table"),
        ({"raw_records": "EF05.01"}, r"\[raw_records\] must be a table"),
        ({"card": {"city_code": "440100", "serial": 1}}, "serial must be a quoted string"),
        ({"card": {"city_code": "440100", "serial": "zz000001"}}, "serial must be hex bytes"),
        (
            {"card": {"city_code": "440100", "serial": "00000001", "algorithm": ["des"]}},
            "algorithm",
        ),
        ({"card": {"city_code": "４４０１００", "serial": "00000001"}}, "city_code"),
        ({"holder": {"name": "X\x00Y"}}, "name must be a quoted string without control"),
        ({"holder": {"ssn": 123}}, "ssn must be a quoted string"),
        ({"description": 7}, "description must be a quoted string"),
        ({"raw_records": {"EF05.01": 7}}, "must be a quoted string of hex bytes"),
    ],
)
def test_bad_persona_files_are_clear_errors(change, needle) -> None:
    data = {"card": {"city_code": "440100", "serial": "00000001"}} | change
    with pytest.raises(PersonaError, match=needle):
        parse_persona(data, "bad")


def test_name_longer_than_50_bytes_is_refused() -> None:
    data = {"card": {"city_code": "440100", "serial": "00000001"}, "holder": {"name": "X" * 51}}
    with pytest.raises(PersonaError, match="50"):
        parse_persona(data, "long")


def test_persona_files_are_synthetic_with_valid_check_digits() -> None:
    from apdu.identity import card_number_valid, classify_ssn

    for name in all_persona_names():
        p = persona(name)
        number = p.ef05[0x07][2:].decode()
        assert card_number_valid(number), name
        ssn = p.ef06[0x08][2:].decode()
        assert classify_ssn(ssn).check_valid, name


def test_a_persona_file_nested_5000_deep_or_not_utf8_is_a_persona_error(tmp_path) -> None:
    from drivers.virtual.persona import load_persona

    deep = tmp_path / "deep.toml"
    deep.write_text("description = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n")
    with pytest.raises(PersonaError, match=rf"^{deep}: not valid TOML: .*nested too deeply"):
        load_persona(deep)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'description = "caf\xe9"\n')
    with pytest.raises(PersonaError, match=rf"^{latin1}: not UTF-8 text \(line 1"):
        load_persona(latin1)
    with pytest.raises(PersonaError, match="cannot read persona file"):
        load_persona(tmp_path / "absent.toml")
