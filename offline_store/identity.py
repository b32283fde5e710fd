"""Canonical credential identifiers and their keyed hash: what the deny list and the journal
hold instead of a card number.

A social security card is named ``ssc:<region>:<card number>``: the six-digit region code
(GB/T 2260 行政区划代码, the first six digits of the 卡识别码, EF05 tag ``01``) and the
nine-character card number (卡号, EF05 tag ``07``) in capitals. The check character is not
verified: a card whose number fails the check still exists and may well be on the list. An
electronic social security card (电子社保卡) QR credential is named ``ecard:<token>``.

The store never keeps these identifiers. It keeps ``HMAC-SHA256(pepper, identifier)``: without
the pepper (a secret shared by the platform and its terminals) a hash cannot be turned back into a
card number by trying the small space of valid numbers, so a list of hashes is not a list of
people. See docs/offline-store.md §2.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from offline_store.errors import StoreError

__all__ = [
    "ECARD_PREFIX",
    "MIN_PEPPER_LEN",
    "SSC_PREFIX",
    "canonical_card_id",
    "canonical_ecard_id",
    "is_card_hash",
    "keyed_card_hash",
    "pepper_check",
]

SSC_PREFIX = "ssc:"
ECARD_PREFIX = "ecard:"
REGION_CODE_LEN = 6
CARD_NUMBER_LEN = 9
MIN_PEPPER_LEN = 16
ECARD_TOKEN_MAX = 256
CARD_HASH_HEX_LEN = 64
PEPPER_CHECK_LABEL = b"sscard-deny/1 pepper check"
PEPPER_CHECK_HEX_LEN = 16

_REGION = re.compile(r"[0-9]{6}")
_CARD_NUMBER = re.compile(r"[0-9A-Z]{9}")
# visible ASCII without ":" so the identifier stays one unambiguous token
_ECARD_TOKEN = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def canonical_card_id(region_code: str, card_number: str) -> str:
    """Build the canonical identifier of a social security card.

    ``canonical_card_id("440100", "d2143569x")`` → ``"ssc:440100:D2143569X"``. The check
    character is not verified (flagged cards exist and must still be found on the list).

    :param region_code: the six-digit region code the card was issued for
    :param card_number: the nine-character card number (卡号), any letter case
    :raises StoreError: if the region is not six ASCII digits or the card number is not nine
        characters of ``0-9``/``A-Z``; the message never repeats the card number
    """
    if not isinstance(region_code, str) or not _REGION.fullmatch(region_code):
        raise StoreError("region code must be 6 ASCII digits")
    if not isinstance(card_number, str):
        raise StoreError("card number must be a string")
    number = card_number.upper()
    if not _CARD_NUMBER.fullmatch(number):
        # the number is personal data: say what is wrong with it, never echo it
        raise StoreError(
            f"card number must be {CARD_NUMBER_LEN} characters of 0-9 and A-Z, "
            f"got {len(card_number)} characters"
        )
    return f"{SSC_PREFIX}{region_code}:{number}"


def canonical_ecard_id(token: str) -> str:
    """Build the canonical identifier of an electronic social security card credential.

    :param token: the credential's stable token (visible ASCII, no ``:``, at most 256 chars)
    :raises StoreError: if the token is empty, too long or holds other characters
    """
    if not isinstance(token, str) or not _ECARD_TOKEN.fullmatch(token):
        raise StoreError("e-card token must be visible ASCII characters without ':'")
    if len(token) > ECARD_TOKEN_MAX:
        raise StoreError(f"e-card token must be at most {ECARD_TOKEN_MAX} characters")
    return ECARD_PREFIX + token


def keyed_card_hash(pepper: bytes, canonical: str) -> str:
    """Hash a canonical identifier with the deny-list pepper: HMAC-SHA256, lowercase hex.

    :param pepper: the shared secret, at least 16 bytes
    :param canonical: an identifier from :func:`canonical_card_id` or :func:`canonical_ecard_id`
    :raises StoreError: if the pepper is too short or the identifier is not canonical
    """
    _check_pepper(pepper)
    if not isinstance(canonical, str) or not canonical.startswith((SSC_PREFIX, ECARD_PREFIX)):
        raise StoreError("card_hash takes a canonical identifier (ssc:… or ecard:…)")
    return hmac.new(pepper, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def pepper_check(pepper: bytes) -> str:
    """A short value that tells whether two parties hold the same pepper, revealing nothing of it.

    The first 16 hex characters of ``HMAC-SHA256(pepper, "sscard-deny/1 pepper check")``; a deny
    list may carry it in its header so a terminal with the wrong pepper refuses the list instead
    of silently missing every card on it.

    :param pepper: the shared secret, at least 16 bytes
    :raises StoreError: if the pepper is too short
    """
    _check_pepper(pepper)
    return hmac.new(pepper, PEPPER_CHECK_LABEL, hashlib.sha256).hexdigest()[:PEPPER_CHECK_HEX_LEN]


def is_card_hash(value: object) -> bool:
    """Tell whether a value looks like a card hash: 64 lowercase hex characters.

    :param value: anything
    :raises: nothing
    """
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _check_pepper(pepper: bytes) -> None:
    if not isinstance(pepper, bytes) or len(pepper) < MIN_PEPPER_LEN:
        raise StoreError(f"the deny-list pepper must be at least {MIN_PEPPER_LEN} bytes")
