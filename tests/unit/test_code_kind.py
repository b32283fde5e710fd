"""Which kind of code a scanned text is (docs/qr-format.md §14): the open format by its exact
prefix, a national code by its syntax, everything else nothing at all."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ecard import CodeKind, code_kind, is_national_code
from ecard.national import NATIONAL_MAX_LEN, NATIONAL_MIN_LEN

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "qr"
VALID = (VECTORS / "valid-es256.txt").read_text(encoding="ascii")
#: a code as the reference platform issues it: CNSSC + Base32 of 20 random bytes (37 in all)
REFERENCE = "CNSSC" + base64.b32encode(bytes(range(20))).decode("ascii")


def test_the_open_format_is_known_by_its_exact_prefix() -> None:
    assert code_kind(VALID) is CodeKind.OPEN
    assert code_kind("SSC1:") is CodeKind.OPEN  # the verifier then says what is wrong


def test_the_reference_platform_codes_are_one_instance_of_the_national_syntax() -> None:
    assert len(REFERENCE) == 37
    assert code_kind(REFERENCE) is CodeKind.NATIONAL and is_national_code(REFERENCE)


@pytest.mark.parametrize(
    "text",
    [
        "A" * NATIONAL_MIN_LEN,
        "Z" + "9" * (NATIONAL_MAX_LEN - 1),
        "HC1" + "0" * 20,  # another scheme's prefix without its colon is just characters
        "SSCX" + "0" * 20,  # "SSC" not followed by a digit is not reserved
    ],
)
def test_national_syntax_at_its_bounds(text: str) -> None:
    assert code_kind(text) is CodeKind.NATIONAL


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "",
        "SSC2:" + VALID[5:],  # a later version of the open format: never national
        "ssc1:" + VALID[5:],  # lower case: QR alphanumeric mode and Base45 have none
        "Ssc1:" + VALID[5:],
        "SSC1" + "A" * 30,  # the open format's prefix without its colon
        "SSC2" + "A" * 30,
        REFERENCE.lower(),
        "CNSSC" + "a" * 32,
        "A" * (NATIONAL_MIN_LEN - 1),
        "A" * (NATIONAL_MAX_LEN + 1),
        "1" + "A" * 20,  # must start with a letter: a payment code is digits
        "281234567890123456",
        REFERENCE + "\n",
        " " + REFERENCE,
        REFERENCE[:10] + " " + REFERENCE[10:],
        REFERENCE[:10] + "-" + REFERENCE[10:],
        "https://example.com/" + REFERENCE,
        "ＣＮＳＳＣ" + REFERENCE[5:],  # full-width letters are not A-Z
        "HC1:" + "NCFR80K80" * 3,
    ],
)
def test_anything_else_is_no_code(text: str) -> None:
    assert code_kind(text) is CodeKind.UNKNOWN and not is_national_code(text)
