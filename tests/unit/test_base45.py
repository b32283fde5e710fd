"""Base45 (RFC 9285): the RFC's own examples, round trips, and strict refusal of what an
encoder cannot produce."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecard.base45 import ALPHABET, b45decode, b45encode
from ecard.errors import Base45Error

# RFC 9285 §4.3 (encoding examples) and §4.4 (decoding example)
RFC_9285_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


@pytest.mark.parametrize(("raw", "text"), RFC_9285_EXAMPLES)
def test_the_rfc_9285_examples_encode_and_decode(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text
    assert b45decode(text) == raw


def test_the_alphabet_is_the_45_characters_of_rfc_9285_table_1() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 45
    assert b45encode(b"") == "" and b45decode("") == b""
    assert b45encode(b"\xff\xff") == "FGW"  # 65535 = 30 + 45·19 + 45²·32
    assert b45encode(b"\x00") == "00"


@given(st.binary(max_size=300))
def test_any_bytes_round_trip(data: bytes) -> None:
    text = b45encode(data)
    assert set(text) <= set(ALPHABET)
    assert len(text) == 3 * (len(data) // 2) + 2 * (len(data) % 2)
    assert b45decode(text) == data


@given(st.text(max_size=40))
def test_any_text_decodes_or_is_refused_with_base45error(text: str) -> None:
    try:
        data = b45decode(text)
    except Base45Error:
        return
    assert b45encode(data) == text  # whatever decodes is canonical: one text per byte string


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GGW", "worth 65536"),  # RFC 9285 §6: a triple above 65535
        (":::", "worth 91124"),
        ("FGW:", "3k\\+1"),  # one character left over
        ("A", "3k\\+1"),
        ("U6", "worth 300"),  # a final pair above 255: 30 + 6·45
        ("bb8", "character 0 \\(U\\+0062\\)"),  # lower case is not in the alphabet
        ("BB8\n", "3k\\+1"),
        ("BB8 \n0", "character 4"),
        ("BB8=", "3k\\+1"),
        ("BB=", "character 2 \\(U\\+003D\\)"),
        ("BÖ8", "character 1"),
    ],
)
def test_what_no_encoder_writes_is_refused(text: str, message: str) -> None:
    with pytest.raises(Base45Error, match=message):
        b45decode(text)


def test_only_text_is_decoded() -> None:
    with pytest.raises(Base45Error, match="must be text"):
        b45decode(b"BB8")  # type: ignore[arg-type]
