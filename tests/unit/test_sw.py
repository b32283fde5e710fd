"""Unit tests for apdu.sw: the status-word catalogue (SSC spec doc §5; S3-P5 §5.4 表5), the
ISO 7816-4 families that describe unknown status words, and ``63Cx`` try counters.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.sw import Sw, describe, tries_left


@pytest.mark.parametrize(
    ("sw", "meaning"),
    [
        (0x9000, "success"),
        (0x6581, "memory error (EEPROM fault, card locked)"),
        (0x6700, "wrong Lc or Le"),
        (0x6982, "security status not satisfied"),
        (0x6983, "authentication method blocked (PIN or key blocked)"),
        (0x6A81, "function not supported (card blocked)"),
        (0x6A82, "file or application not found"),
        (0x6A83, "record not found"),
        (0x6A88, "reference data (key) not found"),
        (0x9302, "MAC invalid"),
        (0x9303, "application permanently locked"),
        (0x9406, "required MAC unavailable"),
    ],
)
def test_catalogue_entries_are_described_by_their_meaning(sw: int, meaning: str) -> None:
    assert describe(sw) == meaning


@pytest.mark.parametrize("sw", list(Sw), ids=lambda sw: f"{sw:04X}")
def test_every_catalogue_entry_is_described(sw: Sw) -> None:
    assert describe(sw)
    assert describe(sw) != "unknown status word"


def test_catalogue_enum_accepts_plain_integers() -> None:
    assert describe(Sw.APPLICATION_LOCKED) == describe(0x9303)
    assert Sw(0x6A81) is Sw.FUNCTION_NOT_SUPPORTED


@pytest.mark.parametrize(
    ("sw", "meaning"),
    [
        (0x6101, "1 more bytes available (GET RESPONSE)"),
        (0x6114, "20 more bytes available (GET RESPONSE)"),
        (0x61FF, "255 more bytes available (GET RESPONSE)"),
        (0x6100, "256 more bytes available (GET RESPONSE)"),
    ],
)
def test_61xx_names_the_bytes_available_with_00_as_256(sw: int, meaning: str) -> None:
    assert describe(sw) == meaning


@pytest.mark.parametrize(
    ("sw", "meaning"),
    [
        (0x6C14, "wrong Le, exact length is 20"),
        (0x6C01, "wrong Le, exact length is 1"),
        (0x6C00, "wrong Le, exact length is 256"),
    ],
)
def test_6cxx_names_the_exact_le_with_00_as_256(sw: int, meaning: str) -> None:
    assert describe(sw) == meaning


@pytest.mark.parametrize("x", range(16))
def test_63cx_names_the_tries_left(x: int) -> None:
    assert describe(0x63C0 | x) == f"verification failed, {x} tries left"


@pytest.mark.parametrize(
    ("sw", "family"),
    [
        (0x6283, "warning, state unchanged"),
        (0x6300, "warning, state changed"),  # 63 but not 63Cx
        (0x6381, "warning, state changed"),
        (0x6400, "execution error, state unchanged"),
        (0x6501, "execution error, state changed"),
        (0x6701, "wrong length"),
        (0x6881, "function in CLA not supported"),
        (0x6999, "command not allowed"),
        (0x6A84, "wrong parameters"),
        (0x6B01, "wrong parameters P1-P2"),
        (0x6D01, "instruction not supported"),
        (0x6E01, "class not supported"),
        (0x6F01, "no precise diagnosis"),
        (0x9304, "proprietary error"),
        (0x9499, "proprietary error"),
    ],
)
def test_unlisted_status_words_are_described_by_their_iso_family(sw: int, family: str) -> None:
    assert describe(sw) == family


@pytest.mark.parametrize("sw", [0x0000, 0x1234, 0x6600, 0x9001, 0x9100, 0xFFFF])
def test_status_words_of_no_known_family_are_unknown(sw: int) -> None:
    assert describe(sw) == "unknown status word"


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_describe_never_fails(sw: int) -> None:
    assert isinstance(describe(sw), str)
    assert describe(sw)


@pytest.mark.parametrize("x", range(16))
def test_tries_left_reads_x_from_63cx(x: int) -> None:
    assert tries_left(0x63C0 | x) == x


def test_tries_left_of_63c0_is_zero_not_none() -> None:
    assert tries_left(0x63C0) == 0


@pytest.mark.parametrize("sw", [0x9000, 0x6983, 0x6300, 0x63B3, 0x6381, 0x62C3, 0x6C03])
def test_tries_left_is_none_for_other_status_words(sw: int) -> None:
    assert tries_left(sw) is None
