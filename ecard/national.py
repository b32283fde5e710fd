"""Which kind of code a scanned text is: the open ``SSC1:`` format, a national e-card code, or
neither (docs/qr-format.md §14).

The national e-card's QR payload is not public (DESIGN.md "Electronic card"): a terminal
cannot verify it, only pass it to the platform that decodes it, or — for low-risk services
while the platform is out of reach — defer it. The syntax below is therefore not a proof of
anything; it is the gate in front of the network and the deferral: a text that is not a
national code by its syntax (a URL, a payment code, "hello world", another version of the
open format) is ``bad_encoding`` on the spot, is never sent to the platform and is never
deferred. ::

    national-code = first 15*511 next     ; 16 to 512 characters in all
    first         = %x41-5A               ; an upper-case letter A-Z
    next          = %x41-5A / %x30-39     ; A-Z or 0-9
    ; and not "SSC" followed by a digit: that prefix belongs to the open format's versions

The reference platform's codes (``CNSSC`` + 32 Base32 characters, 37 in all,
:mod:`platform_server.ecard`) are one instance. The characters are those of the QR
alphanumeric mode without its punctuation: the densest text mode a QR code has.
"""

from __future__ import annotations

import re
from enum import StrEnum

from ecard.format import PREFIX

__all__ = [
    "NATIONAL_MAX_LEN",
    "NATIONAL_MIN_LEN",
    "RESERVED_PREFIX",
    "CodeKind",
    "code_kind",
    "is_national_code",
]

NATIONAL_MIN_LEN = 16  # 80 bits in Base32: no shorter text is worth a platform round trip
NATIONAL_MAX_LEN = 512
#: "SSC" and a digit: the open format's versions (``SSC1:``, a future ``SSC2:``), never national
RESERVED_PREFIX = re.compile(r"SSC[0-9]")
_NATIONAL = re.compile(rf"[A-Z][A-Z0-9]{{{NATIONAL_MIN_LEN - 1},{NATIONAL_MAX_LEN - 1}}}", re.ASCII)


class CodeKind(StrEnum):
    """What a scanned text is, by its syntax alone."""

    OPEN = "open"  # starts with "SSC1:" exactly: verified offline (§2–§8)
    NATIONAL = "national"  # the national syntax: decoded online, or deferred
    UNKNOWN = "unknown"  # anything else: bad_encoding, nothing more is done with it


def is_national_code(text: str) -> bool:
    """Tell whether a text has the syntax of a national e-card code (module docstring).

    :param text: the scanned text, exactly (no surrounding whitespace)
    :raises: nothing
    """
    return (
        isinstance(text, str)
        and _NATIONAL.fullmatch(text) is not None
        and RESERVED_PREFIX.match(text) is None
    )


def code_kind(text: str) -> CodeKind:
    """Sort a scanned text: the open format by its exact prefix ``SSC1:`` (upper case: a QR
    code in alphanumeric mode cannot hold lower case, and Base45 refuses it), a national code
    by :func:`is_national_code`, anything else unknown.

    :param text: the scanned text, exactly
    :raises: nothing
    """
    if isinstance(text, str) and text.startswith(PREFIX):
        return CodeKind.OPEN
    if is_national_code(text):
        return CodeKind.NATIONAL
    return CodeKind.UNKNOWN
