"""The errors of the electronic-card QR format, all below :class:`apdu.errors.SscardError`::

    SscardError
    └── EcardError                 the e-card QR code or its keys cannot be used
        ├── FormatError            bytes or text that break docs/qr-format.md
        │   └── Base45Error        text that is not strict RFC 9285 Base45
        ├── KeyFormatError         a key file or key encoding that is not ES256 / SM2 as specified
        └── QrRefused              a code refused, with a stable :class:`QrReason`
            └── TrustListError     a trust list whose signature, hash or format is wrong

:func:`~ecard.verify.verify_code` turns every problem with a code into
:class:`QrRefused`; :class:`FormatError` leaves only the codecs (Base45, CBOR) and the issuing
side. A trust list that does not verify is a :class:`TrustListError`, which is also a
:class:`QrRefused` with reason ``stale_trust_list``: a terminal without a usable trust list
refuses every code for that reason.

No message holds a card token in full, an identity value or key material.
"""

from __future__ import annotations

from enum import StrEnum

from apdu.errors import SscardError

__all__ = [
    "Base45Error",
    "EcardError",
    "FormatError",
    "KeyFormatError",
    "QrReason",
    "QrRefused",
    "TrustListError",
]


class QrReason(StrEnum):
    """Why a code was refused (docs/qr-format.md §9); the values never change meaning."""

    BAD_ENCODING = "bad_encoding"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    OUTSIDE_WINDOW = "outside_window"
    STALE_TRUST_LIST = "stale_trust_list"


class EcardError(SscardError):
    """Root of the electronic-card QR errors."""


class FormatError(EcardError):
    """Bytes or text that do not follow docs/qr-format.md (the message says where)."""


class Base45Error(FormatError):
    """Text that is not strict RFC 9285 Base45."""


class KeyFormatError(EcardError):
    """A key (PEM, SubjectPublicKeyInfo, raw point or scalar) that is not a valid ES256 or SM2
    key, or a key of the wrong algorithm for its use."""


class QrRefused(EcardError):
    """A code was refused.

    :param reason: the stable reason code
    :param message: what was wrong, for the operator (never a token or an identity value)
    """

    def __init__(self, reason: QrReason, message: str) -> None:
        self.reason = QrReason(reason)
        self.message = message
        super().__init__(f"{self.reason}: {message}")


class TrustListError(QrRefused):
    """A trust list that does not verify: wrong signature or root, content hash mismatch,
    unknown format or malformed. Its reason is always ``stale_trust_list``.

    :param message: what was wrong
    """

    def __init__(self, message: str) -> None:
        super().__init__(QrReason.STALE_TRUST_LIST, message)
