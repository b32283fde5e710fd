"""Unit tests for offline_store.identity: canonical card identifiers, their keyed hash and the
pepper check.

The hash vectors are those of docs/offline-store.md §2.4, computed with
``openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f``; the HMAC
construction itself is checked against RFC 4231 §4.2 (test case 1) through the same code path.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.errors import SscardError
from apdu.identity import card_number_valid
from offline_store.errors import StoreError
from offline_store.identity import (
    canonical_card_id,
    canonical_ecard_id,
    is_card_hash,
    keyed_card_hash,
    pepper_check,
)

DOC_PEPPER = bytes(range(16))
CANONICAL = re.compile(r"ssc:[0-9]{6}:[0-9A-Z]{9}")
CARD_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_the_canonical_card_id_is_region_and_card_number_in_capitals() -> None:
    assert canonical_card_id("440100", "D2143569X") == "ssc:440100:D2143569X"
    assert canonical_card_id("440100", "d2143569x") == "ssc:440100:D2143569X"


def test_the_check_character_is_not_verified() -> None:
    assert not card_number_valid("D21435690")  # the wrong check character: still a card
    assert canonical_card_id("330100", "D21435690") == "ssc:330100:D21435690"


@pytest.mark.parametrize(
    "region",
    ["44010", "4401000", "44010A", "４40100", "", " 440100", "440100\n"],
    ids=repr,
)
def test_a_malformed_region_code_is_refused(region: str) -> None:
    with pytest.raises(StoreError, match="region code must be 6 ASCII digits"):
        canonical_card_id(region, "D2143569X")


@pytest.mark.parametrize(
    "number",
    ["D2143569", "D2143569XX", "D214356-X", "D2143569Ｘ", "D2143569 ", "", "D2143569\u0130"],
    ids=repr,
)
def test_a_malformed_card_number_is_refused_without_repeating_it(number: str) -> None:
    with pytest.raises(StoreError) as caught:
        canonical_card_id("440100", number)
    message = str(caught.value)
    assert "9 characters of 0-9 and A-Z" in message
    if number:
        assert number not in message


def test_non_strings_are_refused() -> None:
    with pytest.raises(StoreError):
        canonical_card_id(440100, "D2143569X")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        canonical_card_id("440100", None)  # type: ignore[arg-type]


def test_store_errors_are_sscard_errors() -> None:
    assert issubclass(StoreError, SscardError)


def test_the_ecard_id_is_prefixed() -> None:
    assert canonical_ecard_id("QR-7f3a9c") == "ecard:QR-7f3a9c"


@pytest.mark.parametrize("token", ["", "a b", "a:b", "é", "x" * 257, "tab\t"], ids=repr)
def test_a_malformed_ecard_token_is_refused(token: str) -> None:
    with pytest.raises(StoreError):
        canonical_ecard_id(token)


def test_the_keyed_hash_matches_the_documented_vectors() -> None:
    # docs/offline-store.md §2.4 (openssl)
    assert (
        keyed_card_hash(DOC_PEPPER, "ssc:440100:D2143569X")
        == "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"
    )
    assert (
        keyed_card_hash(DOC_PEPPER, "ecard:QR-7f3a9c")
        == "e64edae1dbbdd2da1d0267549d6a36e10b7ac6c7d7ff0bec962a5093427a1df0"
    )
    assert pepper_check(DOC_PEPPER) == "997886f6bfc23020"


def test_the_hmac_is_rfc_4231_hmac_sha256() -> None:
    # RFC 4231 §4.2, test case 1: key 0x0b × 20, data "Hi There"
    key = b"\x0b" * 20
    expected = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert hmac.new(key, b"Hi There", hashlib.sha256).hexdigest() == expected
    # the store's hash is that construction over the identifier's UTF-8 bytes
    canonical = "ssc:440100:D2143569X"
    assert (
        keyed_card_hash(key, canonical) == hmac.new(key, canonical.encode(), "sha256").hexdigest()
    )


def test_a_short_pepper_is_refused() -> None:
    with pytest.raises(StoreError, match="at least 16 bytes"):
        keyed_card_hash(b"x" * 15, "ssc:440100:D2143569X")
    with pytest.raises(StoreError, match="at least 16 bytes"):
        pepper_check(b"x" * 15)


def test_only_canonical_identifiers_are_hashed() -> None:
    with pytest.raises(StoreError, match="canonical identifier"):
        keyed_card_hash(DOC_PEPPER, "D2143569X")  # a bare card number


def test_another_pepper_gives_another_hash_and_check() -> None:
    other = bytes(range(1, 17))
    canonical = "ssc:440100:D2143569X"
    assert keyed_card_hash(other, canonical) != keyed_card_hash(DOC_PEPPER, canonical)
    assert pepper_check(other) != pepper_check(DOC_PEPPER)


def test_is_card_hash() -> None:
    assert is_card_hash("5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f")
    assert not is_card_hash("5490D353FB3C81EC1E7CD95AF4251A356C8B47B2BF0906B6900021ADAE19597F")
    assert not is_card_hash("5490d353")
    assert not is_card_hash(None)


@given(
    region=st.text(alphabet="0123456789", min_size=6, max_size=6),
    number=st.text(alphabet=CARD_CHARS, min_size=9, max_size=9),
    pepper=st.binary(min_size=16, max_size=64),
)
def test_identifiers_are_canonical_case_blind_and_reversible(
    region: str, number: str, pepper: bytes
) -> None:
    canonical = canonical_card_id(region, number)
    assert CANONICAL.fullmatch(canonical)
    assert canonical == canonical_card_id(region, number.swapcase())
    # injective: the parts come back out of the identifier
    assert canonical.split(":")[1:] == [region, number.upper()]
    digest = keyed_card_hash(pepper, canonical)
    assert is_card_hash(digest)
    assert digest == hmac.new(pepper, canonical.encode("ascii"), hashlib.sha256).hexdigest()
