"""Unit tests for apdu.command: the seven ISO/IEC 7816-4 §5.1 encodings of a command APDU,
strict parsing, round trips, and response APDUs.

The vectors are READ RECORD and SELECT commands of the SSC spec doc §3.1–§3.3 plus
hand-built extended APDUs; Le is the number of bytes expected (256 is written ``00`` short,
65536 is written ``0000`` extended).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.command import CommandApdu, ResponseApdu
from apdu.errors import ApduFormatError, ProtocolError

AID_SSSE = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
_PATTERN = bytes(range(256)) * 2  # 512 bytes to slice data fields from


def _h(text: str) -> bytes:
    """Hex with spaces → bytes.

    :param text: e.g. ``"00 B2 08 00 14"``
    """
    return bytes.fromhex(text)


# (encoding, hex, the CommandApdu it stands for, case, is_extended)
ENCODINGS = [
    ("case 1", "00 A4 00 00", CommandApdu(0x00, 0xA4, 0x00, 0x00), 1, False),
    ("case 2 short, Le 20", "00 B2 08 00 14", CommandApdu(0x00, 0xB2, 0x08, 0x00, le=20), 2, False),
    ("case 2 short, Le 1", "00 84 00 00 01", CommandApdu(0x00, 0x84, 0x00, 0x00, le=1), 2, False),
    (
        "case 2 short, Le 256",
        "00 B2 08 00 00",
        CommandApdu(0x00, 0xB2, 0x08, 0x00, le=256),
        2,
        False,
    ),
    (
        "case 3 short",
        "00 A4 02 00 02 EF05",
        CommandApdu(0x00, 0xA4, 0x02, 0x00, _h("EF05")),
        3,
        False,
    ),
    (
        "case 4 short, Le 256",
        "00 A4 04 00 0F 7378312E73682EC9E7BBE1B1A3D5CF 00",
        CommandApdu(0x00, 0xA4, 0x04, 0x00, AID_SSSE, 256),
        4,
        False,
    ),
    (
        "case 4 short, Le 8",
        "00 88 00 00 10 0102030405060708 1112131415161718 08",
        CommandApdu(0x00, 0x88, 0x00, 0x00, _h("0102030405060708 1112131415161718"), 8),
        4,
        False,
    ),
    (
        "case 2 extended, Le 300",
        "00 B0 00 00 00 012C",
        CommandApdu(0x00, 0xB0, 0x00, 0x00, le=300, extended=True),
        2,
        True,
    ),
    (
        "case 2 extended, Le 65536",
        "00 B0 00 00 00 0000",
        CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536, extended=True),
        2,
        True,
    ),
    (
        "case 3 extended",
        "80 D6 00 00 00 0003 AABBCC",
        CommandApdu(0x80, 0xD6, 0x00, 0x00, _h("AABBCC"), extended=True),
        3,
        True,
    ),
    (
        "case 4 extended, Le 65536",
        "00 88 00 00 00 0002 0102 0000",
        CommandApdu(0x00, 0x88, 0x00, 0x00, _h("0102"), 65536, extended=True),
        4,
        True,
    ),
    (
        "case 4 extended, Le 2",
        "00 88 00 00 00 0002 0102 0002",
        CommandApdu(0x00, 0x88, 0x00, 0x00, _h("0102"), 2, extended=True),
        4,
        True,
    ),
]


@pytest.mark.parametrize(
    ("raw", "apdu"), [(e[1], e[2]) for e in ENCODINGS], ids=[e[0] for e in ENCODINGS]
)
def test_encodes_each_iso_case_to_the_expected_bytes(raw: str, apdu: CommandApdu) -> None:
    assert apdu.to_bytes() == _h(raw)


@pytest.mark.parametrize(
    ("raw", "apdu"), [(e[1], e[2]) for e in ENCODINGS], ids=[e[0] for e in ENCODINGS]
)
def test_parses_each_iso_case_back_to_the_same_command(raw: str, apdu: CommandApdu) -> None:
    assert CommandApdu.parse(_h(raw)) == apdu


@pytest.mark.parametrize(
    ("raw", "case", "extended"),
    [(e[1], e[3], e[4]) for e in ENCODINGS],
    ids=[e[0] for e in ENCODINGS],
)
def test_parsed_command_reports_its_case_and_length_encoding(
    raw: str, case: int, extended: bool
) -> None:
    parsed = CommandApdu.parse(_h(raw))
    assert parsed.case == case
    assert parsed.is_extended is extended


def test_short_le_00_means_256_and_256_is_written_00() -> None:
    assert CommandApdu.parse(_h("00 C0 00 00 00")).le == 256
    assert CommandApdu(0x00, 0xC0, 0x00, 0x00, le=256).to_bytes() == _h("00 C0 00 00 00")


def test_extended_le_0000_means_65536_with_and_without_data() -> None:
    assert CommandApdu.parse(_h("00 B0 00 00 00 0000")).le == 65536
    assert CommandApdu.parse(_h("00 88 00 00 00 0001 AA 0000")).le == 65536


def test_le_above_256_switches_to_the_extended_encoding() -> None:
    apdu = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=257)
    assert apdu.is_extended
    assert apdu.to_bytes() == _h("00 B0 00 00 00 0101")


def test_le_of_256_stays_short() -> None:
    apdu = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)
    assert not apdu.is_extended
    assert len(apdu.to_bytes()) == 5


def test_data_longer_than_255_bytes_switches_to_the_extended_encoding() -> None:
    data = _PATTERN[:256]
    apdu = CommandApdu(0x80, 0xD6, 0x00, 0x00, data, le=256)
    assert apdu.is_extended
    # case 4E: 00 ‖ Lc (2) ‖ data ‖ Le (2), and Le 256 is written 0100 here, not 00
    assert apdu.to_bytes() == _h("80 D6 00 00 00 0100") + data + _h("0100")


def test_data_of_255_bytes_stays_short() -> None:
    apdu = CommandApdu(0x80, 0xD6, 0x00, 0x00, _PATTERN[:255])
    assert not apdu.is_extended
    assert apdu.to_bytes()[4] == 0xFF


def test_extended_flag_forces_extended_encoding_of_a_short_le() -> None:
    apdu = CommandApdu(0x00, 0xB2, 0x08, 0x00, le=20, extended=True)
    assert apdu.is_extended
    assert apdu.to_bytes() == _h("00 B2 08 00 00 0014")


def test_extended_flag_on_a_case_1_command_still_encodes_the_header_only() -> None:
    apdu = CommandApdu(0x00, 0xA4, 0x00, 0x00, extended=True)
    assert apdu.to_bytes() == _h("00 A4 00 00")
    assert apdu.case == 1


@pytest.mark.parametrize(
    ("data", "le", "case"),
    [(b"", None, 1), (b"", 5, 2), (b"\x01", None, 3), (b"\x01", 5, 4)],
)
def test_case_follows_presence_of_data_and_le(data: bytes, le: int | None, case: int) -> None:
    assert CommandApdu(0x00, 0xB2, 0x01, 0x00, data, le).case == case


def test_with_le_changes_only_le() -> None:
    select = CommandApdu(0x00, 0xA4, 0x04, 0x00, AID_SSSE, 256, extended=True)
    changed = select.with_le(0x1E)
    assert changed == CommandApdu(0x00, 0xA4, 0x04, 0x00, AID_SSSE, 0x1E, extended=True)
    assert select.le == 256  # frozen: the original is untouched


def test_with_le_none_removes_the_le_field() -> None:
    read = CommandApdu(0x00, 0xB2, 0x08, 0x00, le=20)
    assert read.with_le(None).to_bytes() == _h("00 B2 08 00")
    assert read.with_le(None).case == 1


def test_with_le_rejects_an_out_of_range_le() -> None:
    with pytest.raises(ApduFormatError, match=r"Le must be 1\.\.65536"):
        CommandApdu(0x00, 0xB2, 0x08, 0x00, le=20).with_le(0)


# --- construction errors -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cla", "ins", "p1", "p2"])
@pytest.mark.parametrize("value", [-1, 0x100])
def test_header_byte_out_of_range_is_rejected_naming_the_field(name: str, value: int) -> None:
    fields = {"cla": 0x00, "ins": 0xB2, "p1": 0x01, "p2": 0x00, name: value}
    with pytest.raises(ApduFormatError, match=rf"{name.upper()} must be one byte, got {value}"):
        CommandApdu(**fields)


def test_data_longer_than_65535_bytes_is_rejected() -> None:
    with pytest.raises(ApduFormatError, match="65536 bytes exceeds 65535"):
        CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(65536))


def test_data_of_65535_bytes_is_accepted() -> None:
    apdu = CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(65535))
    assert apdu.to_bytes()[4:7] == _h("00 FFFF")


@pytest.mark.parametrize("le", [0, -1, 65537])
def test_le_outside_1_to_65536_is_rejected(le: int) -> None:
    with pytest.raises(ApduFormatError, match=rf"Le must be 1\.\.65536 .*got {le}"):
        CommandApdu(0x00, 0xB2, 0x01, 0x00, le=le)


def test_format_errors_are_protocol_errors() -> None:
    assert issubclass(ApduFormatError, ProtocolError)


# --- parse errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "00", "00 B2", "00 B2 01"])
def test_parse_rejects_fewer_than_four_bytes(raw: str) -> None:
    n = len(_h(raw))
    with pytest.raises(ApduFormatError, match=f"at least 4 bytes, got {n}"):
        CommandApdu.parse(_h(raw))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Lc 02 but one data byte
        ("00 A4 02 00 02 EF", "short Lc 2 does not match a body of 2 bytes"),
        # Lc 02, two data bytes, then two more: neither case 3 nor case 4
        ("00 A4 02 00 02 EF05 00 00", "short Lc 2 does not match a body of 5 bytes"),
        ("00 A4 02 00 0F 7378", "short Lc 15 does not match a body of 3 bytes"),
    ],
)
def test_parse_rejects_a_short_lc_that_does_not_match_the_body(raw: str, message: str) -> None:
    with pytest.raises(ApduFormatError, match=message):
        CommandApdu.parse(_h(raw))


def test_parse_rejects_an_extended_lc_of_zero() -> None:
    with pytest.raises(ApduFormatError, match="extended Lc of 0 is not allowed"):
        CommandApdu.parse(_h("00 D6 00 00 00 0000 AA"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Lc 0003, two data bytes
        ("00 D6 00 00 00 0003 AABB", "extended Lc 3 does not match a body of 5 bytes"),
        # Lc 0002, data, then one Le byte instead of two
        ("00 D6 00 00 00 0002 AABB 01", "extended Lc 2 does not match a body of 6 bytes"),
        # Lc 0001, data, then three trailing bytes
        ("00 D6 00 00 00 0001 AA 000000", "extended Lc 1 does not match a body of 7 bytes"),
    ],
)
def test_parse_rejects_an_extended_lc_that_does_not_match_the_body(raw: str, message: str) -> None:
    with pytest.raises(ApduFormatError, match=message):
        CommandApdu.parse(_h(raw))


def test_parse_rejects_a_two_byte_body_starting_00() -> None:
    # Neither case 2S (one byte), case 3S/4S (Lc 00 is not short) nor any extended case.
    with pytest.raises(ApduFormatError, match="body of 2 bytes"):
        CommandApdu.parse(_h("00 B2 01 00 00 05"))


# --- round trips -----------------------------------------------------------------------------

bytes_1 = st.integers(min_value=0, max_value=0xFF)
command_apdus = st.builds(
    CommandApdu,
    cla=bytes_1,
    ins=bytes_1,
    p1=bytes_1,
    p2=bytes_1,
    data=st.binary(max_size=300),
    le=st.none() | st.integers(min_value=1, max_value=65536) | st.sampled_from([256, 257, 65536]),
    extended=st.booleans(),
)


@given(command_apdus)
def test_parse_of_to_bytes_gives_back_the_same_encoding(apdu: CommandApdu) -> None:
    raw = apdu.to_bytes()
    parsed = CommandApdu.parse(raw)
    assert parsed.to_bytes() == raw
    assert (parsed.cla, parsed.ins, parsed.p1, parsed.p2) == (apdu.cla, apdu.ins, apdu.p1, apdu.p2)
    assert parsed.data == apdu.data
    assert parsed.le == apdu.le
    assert parsed.case == apdu.case
    # The flag normalises: only case 1 cannot carry the extended encoding on the wire.
    assert parsed.is_extended == (apdu.is_extended and apdu.case != 1)


@given(command_apdus)
def test_encoded_length_matches_the_case(apdu: CommandApdu) -> None:
    n = len(apdu.data)
    lc_size = 0 if not n else (3 if apdu.is_extended else 1)
    le_size = 0
    if apdu.le is not None:
        le_size = (2 if n else 3) if apdu.is_extended else 1
    assert len(apdu.to_bytes()) == 4 + lc_size + n + le_size


# --- response APDUs ----------------------------------------------------------------------------


def test_response_splits_data_and_status_word() -> None:
    response = ResponseApdu.parse(_h("01 10 639900D15600000500BF7C7A48FB4966 9000"))
    assert response.data == _h("01 10 639900D15600000500BF7C7A48FB4966")
    assert response.sw == 0x9000
    assert (response.sw1, response.sw2) == (0x90, 0x00)
    assert response.ok


def test_response_of_status_word_only_has_empty_data() -> None:
    response = ResponseApdu.parse(_h("6A 83"))
    assert response.data == b""
    assert response.sw == 0x6A83
    assert (response.sw1, response.sw2) == (0x6A, 0x83)
    assert not response.ok


@pytest.mark.parametrize("raw", ["", "90"])
def test_response_shorter_than_a_status_word_is_rejected(raw: str) -> None:
    with pytest.raises(ApduFormatError, match=f"at least 2 bytes, got {len(_h(raw))}"):
        ResponseApdu.parse(_h(raw))


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=0xFFFF))
def test_response_round_trips(data: bytes, sw: int) -> None:
    response = ResponseApdu(data, sw)
    assert ResponseApdu.parse(response.to_bytes()) == response
