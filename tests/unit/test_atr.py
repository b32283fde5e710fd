"""Unit tests for apdu.atr: walking the ATR's interface bytes, TCK, and building test ATRs."""

from __future__ import annotations

from functools import reduce
from operator import xor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.atr import Atr, InterfaceBytes, build_atr
from apdu.errors import AtrError

# SSC spec §8 note 1 and §4.3 卡复位信息: a T=0 SSC ATR with TB1 and TC1.
SSC_HISTORICAL = bytes.fromhex("00814E43238697159900BF7C7A")
SSC_ATR = bytes.fromhex("3B6D0000") + SSC_HISTORICAL
# The PC/SC Part 3 ATR that contactless readers synthesise for a MIFARE Classic 1K
# (listed in Ludovic Rousseau's smartcard_list.txt): TD1 = T=0, TD2 = T=1, TCK 6A.
MIFARE_1K_ATR = bytes.fromhex("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A")
# A YubiKey 5 NFC over CCID (pcsc_scan): TA1 = 13, T=1 with IFSC FE, TCK 40.
YUBIKEY_ATR = bytes.fromhex("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40")

protocol_sets = st.sampled_from([(0,), (1,), (0, 1)])


def _with_tck(hex_without_tck: str) -> bytes:
    """Append the TCK that makes T0..TCK XOR to zero.

    :param hex_without_tck: the ATR from TS up to the last historical byte, in hex
    """
    body = bytes.fromhex(hex_without_tck)
    return body + bytes((reduce(xor, body[1:], 0),))


def test_parse_ssc_atr_finds_the_historical_bytes_after_tb1_and_tc1() -> None:
    atr = Atr.parse(SSC_ATR)
    assert atr.historical == SSC_HISTORICAL
    assert atr.historical_hex == "00814E43238697159900BF7C7A"
    assert atr.convention == "direct"
    assert atr.interface_bytes == (InterfaceBytes(tb=0x00, tc=0x00),)
    assert atr.protocols == (0,)
    assert atr.tck is None
    assert not atr.t1
    assert atr.fi_di == (372, 1)
    assert atr.raw == SSC_ATR
    assert atr.to_bytes() == SSC_ATR


def test_parse_mifare_atr_offers_t0_then_t1_and_checks_tck() -> None:
    atr = Atr.parse(MIFARE_1K_ATR)
    assert atr.interface_bytes == (
        InterfaceBytes(td=0x80),
        InterfaceBytes(td=0x01),
        InterfaceBytes(),
    )
    assert atr.protocols == (0, 1)
    assert atr.t1
    assert atr.tck == 0x6A
    assert atr.historical_hex == "804F0CA00000030603000100000000"


def test_parse_yubikey_atr_reads_ta1_and_t1_parameters() -> None:
    atr = Atr.parse(YUBIKEY_ATR)
    assert atr.interface_bytes == (
        InterfaceBytes(ta=0x13, tb=0x00, tc=0x00, td=0x81),
        InterfaceBytes(td=0x31),
        InterfaceBytes(ta=0xFE, tb=0x15),
    )
    assert atr.protocols == (1,)  # TD1 and TD2 both say T=1: listed once
    assert atr.historical.endswith(b"YubiKey")
    assert atr.tck == 0x40
    assert atr.fi_di == (372, 4)


def test_parse_inverse_convention() -> None:
    atr = Atr.parse(bytes.fromhex("3F00"))
    assert atr.convention == "inverse"
    assert atr.interface_bytes == (InterfaceBytes(),)
    assert atr.historical == b""
    assert atr.protocols == (0,)


def test_minimal_direct_atr_has_no_interface_bytes() -> None:
    atr = Atr.parse(bytes.fromhex("3B00"))
    assert atr.interface_bytes == (InterfaceBytes(),)
    assert atr.historical_hex == ""


def test_t15_requires_tck_but_is_not_a_protocol() -> None:
    # TD1 = 80: T=0, TD2 follows; TD2 = 1F: T=15, TA3 = 03 (global). T=15 makes TCK mandatory.
    atr = Atr.parse(_with_tck("3B80801F03"))
    assert atr.protocols == (0,)
    assert atr.interface_bytes[2] == InterfaceBytes(ta=0x03)
    assert atr.tck is not None


@pytest.mark.parametrize(
    ("ta1", "fi_di"),
    [("11", (372, 1)), ("96", (512, 32)), ("18", (372, 12)), ("D9", (2048, 20))],
)
def test_fi_di_from_ta1(ta1: str, fi_di: tuple[int, int]) -> None:
    assert Atr.parse(bytes.fromhex("3B10" + ta1)).fi_di == fi_di


@pytest.mark.parametrize("ta1", ["71", "81", "E1", "10", "1A"])
def test_fi_di_is_none_for_rfu_values(ta1: str) -> None:
    assert Atr.parse(bytes.fromhex("3B10" + ta1)).fi_di is None


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("atr", "message"),
    [
        ("", "empty ATR"),
        ("3B", "too short: T0 is missing"),
        ("3C00", "TS 3C is neither 3B"),
        ("00", "TS 00 is neither 3B"),
        ("3B10", "truncated interface bytes: T0 announces TA1, but the ATR ends after 2 bytes"),
        ("3B6D00", "T0 announces TC1, but the ATR ends after 3 bytes"),
        ("3B8081", "TD1 announces TD2, but the ATR ends after 3 bytes"),
        ("3B80F1FF", "TD1 announces TB2, but the ATR ends after 4 bytes"),
        ("3B6D0000" + "00814E43", "truncated historical bytes: T0 announces 13, only 4 present"),
        ("3B8001", "missing TCK: required because TD bytes announce T=1"),
        ("3B80800F", "missing TCK: required because TD bytes announce T=0, T=15"),
        ("3B81014100", "TCK mismatch: ATR 3B81014100 ends in 00, T0..TCK XOR to 00 only with C1"),
        ("3B0000", "1 trailing bytes after the ATR: 00 \\(a TCK\\? it must be absent"),
        ("3B6D0000" + "00814E43238697159900BF7C7A" + "9000", "2 trailing bytes .*: 9000"),
        ("3B" + "00" * 33, "ATR is 34 bytes; ISO/IEC 7816-3 allows at most 33"),
    ],
)
def test_parse_rejects_malformed_atrs(atr: str, message: str) -> None:
    with pytest.raises(AtrError, match=message):
        Atr.parse(bytes.fromhex(atr))


def test_parse_rejects_trailing_bytes_after_a_tck() -> None:
    with pytest.raises(AtrError, match=r"1 trailing bytes after the ATR: 00$"):
        Atr.parse(MIFARE_1K_ATR + b"\x00")


def test_parse_rejects_a_corrupted_historical_byte_by_tck() -> None:
    corrupted = bytearray(YUBIKEY_ATR)
    corrupted[-2] ^= 0x01
    with pytest.raises(AtrError, match=r"TCK mismatch: .* ends in 40, .* only with 41"):
        Atr.parse(bytes(corrupted))


def test_parse_rejects_a_tck_on_a_t0_only_atr() -> None:
    with pytest.raises(AtrError, match="a TCK"):
        Atr.parse(SSC_ATR + bytes((reduce(xor, SSC_ATR[1:], 0),)))


# --- build_atr -------------------------------------------------------------------------------


def test_build_atr_for_t0_matches_the_ssc_card() -> None:
    assert build_atr(SSC_HISTORICAL) == SSC_ATR
    assert build_atr(b"") == bytes.fromhex("3B600000")


def test_build_atr_for_t1() -> None:
    atr = build_atr(SSC_HISTORICAL, protocols=(1,))
    assert atr == bytes.fromhex("3BED00008131FE45") + SSC_HISTORICAL + bytes.fromhex("6D")


def test_build_atr_for_t0_and_t1() -> None:
    atr = build_atr(SSC_HISTORICAL, protocols=[0, 1])
    assert atr == bytes.fromhex("3BED00008031FE45") + SSC_HISTORICAL + bytes.fromhex("6C")
    parsed = Atr.parse(atr)
    assert parsed.protocols == (0, 1)
    assert parsed.interface_bytes[2] == InterfaceBytes(ta=0xFE, tb=0x45)


def test_build_atr_rejects_16_historical_bytes() -> None:
    with pytest.raises(ValueError, match="at most 15 historical bytes, not 16"):
        build_atr(bytes(16))


@pytest.mark.parametrize("protocols", [(), (2,), (1, 0), (0, 0), (0, 1, 1), (15,)])
def test_build_atr_rejects_other_protocol_sets(protocols: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"protocols must be \(0,\), \(1,\) or \(0, 1\)"):
        build_atr(b"", protocols=protocols)


@given(st.binary(max_size=15), protocol_sets)
def test_build_then_parse_round_trip(historical: bytes, protocols: tuple[int, ...]) -> None:
    raw = build_atr(historical, protocols=protocols)
    atr = Atr.parse(raw)
    assert atr.historical == historical
    assert atr.protocols == protocols
    assert atr.t1 == (1 in protocols)
    assert (atr.tck is None) == (protocols == (0,))
    assert atr.to_bytes() == raw


@given(st.binary(max_size=36))
def test_parse_raises_only_atr_error_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        atr = Atr.parse(raw)
    except AtrError:
        return
    assert atr.raw == raw
    assert len(atr.historical) == raw[1] & 0x0F
    assert Atr.parse(atr.to_bytes()) == atr
