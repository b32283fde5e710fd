"""Unit tests for apdu.national: the ``iReadCardBas`` output string of 人社信息函〔2016〕38号 and
the national error codes (SSC spec doc §4.3 and §4.7, App A of S4).

The known answer is the interface spec's own example line (S4 §1.1.2, §1.3.2, quoted in spec
doc §4.3), rebuilt from raw record values through the EF05/EF06 parsers.
"""

from __future__ import annotations

import re

import pytest

from apdu.national import (
    NO_TERMINAL_NUMBER,
    NationalCode,
    for_sw,
    ireadcardbas,
    message,
)
from apdu.records import CardAlgorithm, CardContents, parse_holder, parse_issuer
from apdu.sw import Sw

SPEC_EXAMPLE = (
    "639900|111111198101011110|X00000019|639900D15600000500BF7C7A48FB4966|张三|"
    "00814E43238697159900BF7C7A|1.00|20101001|20201001|410100813475|终端设备号|"
)
HISTORICAL = bytes.fromhex("00814E43238697159900BF7C7A")


def _contents(*, name: bytes = "张三".encode("gb18030"), holder: bool = True) -> CardContents:
    """The card of the spec example, built from raw EF05/EF06 record values.

    :param name: the raw GB18030 bytes of tag 09, before 00 padding
    :param holder: whether EF06 was read
    """
    issuer = parse_issuer(
        {
            0x01: bytes.fromhex("639900D15600000500BF7C7A48FB4966"),
            0x02: b"3",
            0x03: b"1.00",
            0x05: bytes.fromhex("20101001"),
            0x06: bytes.fromhex("20201001"),
            0x07: b"X00000019",
        }
    )
    ef06 = parse_holder(
        {
            0x08: b"111111198101011110",
            0x09: name + bytes(30 - len(name)),
            0x0A: b"\xff",
            0x0B: b"\xff",
            0x0C: b"\xff\xff\xff",
            0x0D: b"\xff\xff\xff\xff",
        }
    )
    return CardContents(HISTORICAL, CardAlgorithm.DES, issuer, ef06 if holder else None)


def test_ireadcardbas_reproduces_the_spec_example_exactly() -> None:
    line = ireadcardbas(_contents(), terminal_number="410100813475", device_number="终端设备号")
    assert line == SPEC_EXAMPLE


def test_ireadcardbas_has_eleven_fields_each_followed_by_the_separator() -> None:
    line = ireadcardbas(_contents(), terminal_number="410100813475", device_number="终端设备号")
    assert line.endswith("|")
    fields = line.split("|")
    assert len(fields) == 12
    assert fields[-1] == ""


def test_ireadcardbas_without_psam_writes_twelve_zeros_and_an_empty_device_number() -> None:
    line = ireadcardbas(_contents())
    assert NO_TERMINAL_NUMBER == "000000000000"
    assert line.endswith("|20201001|000000000000||")
    assert line.count("|") == 11


def test_ireadcardbas_writes_absent_items_as_empty_fields() -> None:
    issuer = parse_issuer({0x01: bytes.fromhex("639900D15600000500BF7C7A48FB4966")})
    holder = parse_holder({})
    line = ireadcardbas(CardContents(b"", CardAlgorithm.DES, issuer, holder))
    assert line == "639900|||639900D15600000500BF7C7A48FB4966||||||000000000000||"


def test_ireadcardbas_needs_the_holder_data() -> None:
    with pytest.raises(ValueError, match=r"needs the holder data \(EF06\)"):
        ireadcardbas(_contents(holder=False))


@pytest.mark.parametrize(
    "terminal_number",
    [
        "",
        "41010081347",  # 11 digits
        "4101008134750",  # 13 digits
        "41010081347A",
        " 41010081347",
        "４１０１００８１３４７５",  # full-width digits: str.isdigit() says yes
        "41010081347²",  # superscript two: str.isdigit() says yes
        "٤١٠١٠٠٨١٣٤٧٥",  # Arabic-Indic digits
    ],
)
def test_ireadcardbas_rejects_a_terminal_number_that_is_not_12_ascii_digits(
    terminal_number: str,
) -> None:
    with pytest.raises(ValueError, match="terminal number must be 12 digits"):
        ireadcardbas(_contents(), terminal_number=terminal_number)


def test_ireadcardbas_rejects_a_device_number_containing_the_separator() -> None:
    with pytest.raises(ValueError, match=re.escape("contains the separator '|'")):
        ireadcardbas(_contents(), device_number="HDOS|1001")


def test_ireadcardbas_rejects_a_card_field_containing_the_separator() -> None:
    with pytest.raises(ValueError, match=re.escape("contains the separator '|'")):
        ireadcardbas(_contents(name="张|三".encode("gb18030")))


# --- error codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sw", "code"),
    [
        (0x6A81, -27265),  # card blocked
        (0x9303, -37635),  # application permanently locked
        (0x6982, -27010),
        (0x6700, -26368),
        (0x6A88, -27272),  # spec doc §3.7: an HSM fallback trigger
        (0x63C0, -25536),  # spec doc §4.7: the table's "0 tries left"
    ],
)
def test_for_sw_is_minus_the_unsigned_status_word(sw: int, code: int) -> None:
    assert for_sw(sw) == code


def test_for_sw_accepts_the_sw_enum() -> None:
    assert for_sw(Sw.FUNCTION_NOT_SUPPORTED) == -27265


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "成功 / success"),
        (-1, "卡类型不对 / wrong card type"),
        (-21, "内部认证失败 / internal authentication failed: card not genuine"),
        (-51, "PIN校验失败 / wrong PIN"),
        (-52, "PIN锁定 / PIN locked"),
        (-2201, "无PSAM卡 / no PSAM"),
        (-2204, "无需加密机认证 / HSM authentication not needed"),
    ],
)
def test_message_of_an_app_a_code_is_chinese_and_english(code: int, text: str) -> None:
    assert message(code) == text


@pytest.mark.parametrize("code", list(NationalCode))
def test_every_app_a_code_has_a_message(code: NationalCode) -> None:
    assert code.zh and code.en
    assert message(code) == f"{code.zh} / {code.en}"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (-27265, "卡返回 6A81 / card status 6A81: function not supported (card blocked)"),
        (-37635, "卡返回 9303 / card status 9303: application permanently locked"),
        (-27010, "卡返回 6982 / card status 6982: security status not satisfied"),
        (-26368, "卡返回 6700 / card status 6700: wrong Lc or Le"),
        (-25538, "卡返回 63C2 / card status 63C2: verification failed, 2 tries left"),
        (-27268, "卡返回 6A84 / card status 6A84: wrong parameters"),  # family only
    ],
)
def test_message_of_a_status_word_code_names_the_sw_and_its_meaning(code: int, text: str) -> None:
    assert message(code) == text


@pytest.mark.parametrize("sw", [0x6A81, 0x9303, 0x6982, 0x6700, 0x6983])
def test_message_round_trips_for_sw(sw: int) -> None:
    assert f"{sw:04X}" in message(for_sw(sw))


@pytest.mark.parametrize("code", [1, -6, -99, -2205, -0x5FFF, -0x10000, -100000])
def test_message_of_an_unknown_code_says_unknown(code: int) -> None:
    assert message(code) == "未知错误 / unknown error"
