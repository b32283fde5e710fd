"""Signing keys of the e-card format: ES256 (ECDSA P-256 with SHA-256) and SM2 (with SM3).

A public key is carried as its X.509 SubjectPublicKeyInfo (SPKI) in DER with an uncompressed
point — ``id-ecPublicKey`` with the curve ``prime256v1`` or ``sm2p256v1`` (1.2.156.10197.1.301,
GM/T 0006-2012) — and named by its ``kid``: the first 8 bytes of SHA-256 over that DER. Private
keys are read and written as PKCS #8 PEM (``-----BEGIN PRIVATE KEY-----``); text before the
PEM armour (a ``# TEST KEY`` comment) is ignored. ``cryptography`` handles P-256; SM2, which it
does not support, is encoded here byte for byte and signed through :mod:`ecard.sm2`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ecard import sm2
from ecard.errors import KeyFormatError

__all__ = [
    "KID_LEN",
    "SIGNATURE_LEN",
    "Alg",
    "PrivateKey",
    "PublicKey",
    "kid_of",
    "load_private_key",
    "load_public_key",
]

KID_LEN = 8
SIGNATURE_LEN = 64
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_COORD = 32

# DER prefixes of the two fixed-size structures for SM2 (RFC 5480 / RFC 5915 / RFC 5208)
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
OID_SM2_CURVE = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301
SM2_ALGORITHM_ID = b"\x30\x13" + OID_EC_PUBLIC_KEY + OID_SM2_CURVE
SM2_SPKI_PREFIX = b"\x30\x59" + SM2_ALGORITHM_ID + b"\x03\x42\x00"
SM2_SPKI_LEN = len(SM2_SPKI_PREFIX) + sm2.PUBLIC_KEY_LEN

_PEM = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----\s*\Z", re.DOTALL
)
_PRIVATE_LABEL = b"PRIVATE KEY"
_PUBLIC_LABEL = b"PUBLIC KEY"


class Alg(StrEnum):
    """A signature algorithm of the format and its COSE ``alg`` value (docs/qr-format.md §5)."""

    ES256 = "ES256"
    SM2 = "SM2"  # SM2 signature with SM3, user id 1234567812345678

    @property
    def cose(self) -> int:
        """The value of header parameter 1 (``alg``).

        :raises: nothing
        """
        return COSE_ALGS[self]

    @classmethod
    def from_cose(cls, value: object) -> Alg:
        """The algorithm named by a COSE ``alg`` value.

        :param value: header parameter 1 as decoded
        :raises KeyFormatError: not one of the format's algorithms
        """
        for alg, number in COSE_ALGS.items():
            if value == number and type(value) is int:
                return alg
        raise KeyFormatError(f"alg {value!r} is not ES256 (-7) or SM2 ({COSE_ALG_SM2})")


COSE_ALG_ES256 = -7  # IANA COSE Algorithms
COSE_ALG_SM2 = -65537  # IANA COSE Algorithms: below -65536 is private use; no SM2 value exists
COSE_ALGS = {Alg.ES256: COSE_ALG_ES256, Alg.SM2: COSE_ALG_SM2}


def kid_of(spki: bytes) -> bytes:
    """The key id: the first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER.

    :param spki: the DER
    :raises: nothing
    """
    return hashlib.sha256(spki).digest()[:KID_LEN]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A checked ES256 or SM2 public key (:meth:`from_spki`, :func:`load_public_key`).

    :param alg: the algorithm the key signs with
    :param spki: its SubjectPublicKeyInfo, DER, uncompressed point
    """

    alg: Alg
    spki: bytes

    @classmethod
    def from_spki(cls, spki: bytes, alg: Alg | None = None) -> PublicKey:
        """Check a SubjectPublicKeyInfo and tell its algorithm.

        :param spki: the DER
        :param alg: the algorithm it must be, or ``None`` for either
        :raises KeyFormatError: not a P-256 or SM2 key in canonical DER with an uncompressed
            point, not on its curve, or not of ``alg``
        """
        if not isinstance(spki, bytes):
            raise KeyFormatError("a SubjectPublicKeyInfo must be bytes")
        found = _spki_alg(spki)
        if alg is not None and found is not alg:
            raise KeyFormatError(f"expected an {alg} key, got an {found} key")
        return cls(found, spki)

    @property
    def kid(self) -> bytes:
        """The 8-byte key id (:func:`kid_of`).

        :raises: nothing
        """
        return kid_of(self.spki)

    @property
    def point(self) -> bytes:
        """The uncompressed point ``04 ‖ x ‖ y`` (the last 65 bytes of the SPKI).

        :raises: nothing
        """
        return self.spki[-sm2.PUBLIC_KEY_LEN :]

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` (raw ``r ‖ s``, 64 bytes) signs ``message``.

        :param message: the signed bytes (the Sig_structure)
        :param signature: 64 bytes; any other length is simply invalid
        :raises: nothing
        """
        if self.alg is Alg.SM2:
            return sm2.verify(self.point, message, signature)
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
            return False
        r = int.from_bytes(signature[:_COORD], "big")
        s = int.from_bytes(signature[_COORD:], "big")
        if not (1 <= r < _P256_N and 1 <= s < _P256_N):
            return False
        try:
            _p256(self.spki).verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def to_pem(self) -> bytes:
        """The key as a ``PUBLIC KEY`` PEM.

        :raises: nothing
        """
        return _pem(_PUBLIC_LABEL, self.spki)

    def __repr__(self) -> str:
        return f"PublicKey(alg={self.alg}, kid={self.kid.hex()})"


class PrivateKey:
    """An ES256 or SM2 signing key. Its ``repr`` never shows the secret.

    :param alg: the algorithm
    :param secret: a ``cryptography`` P-256 key (ES256) or the 32-byte scalar (SM2)
    :raises KeyFormatError: the secret does not fit ``alg``
    """

    __slots__ = ("_secret", "alg", "public_key")

    def __init__(self, alg: Alg, secret: ec.EllipticCurvePrivateKey | bytes) -> None:
        self.alg = Alg(alg)
        if self.alg is Alg.ES256:
            if not isinstance(secret, ec.EllipticCurvePrivateKey) or not isinstance(
                secret.curve, ec.SECP256R1
            ):
                raise KeyFormatError("an ES256 key must be a P-256 key")
            spki = secret.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            if not isinstance(secret, bytes):
                raise KeyFormatError("an SM2 private key is its 32-byte scalar")
            spki = SM2_SPKI_PREFIX + sm2.public_key(secret)
        self._secret = secret
        self.public_key = PublicKey(self.alg, spki)

    @classmethod
    def generate(cls, alg: Alg) -> PrivateKey:
        """Make a fresh key from the system's CSPRNG.

        :param alg: ES256 or SM2
        :raises KeyFormatError: an unknown algorithm
        """
        if alg is Alg.ES256:
            return cls(alg, ec.generate_private_key(ec.SECP256R1()))
        if alg is Alg.SM2:
            return cls(alg, sm2.generate_key()[0])
        raise KeyFormatError(f"unknown algorithm {alg!r}")

    @property
    def kid(self) -> bytes:
        """The key id of the public half.

        :raises: nothing
        """
        return self.public_key.kid

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``: raw ``r ‖ s``, 64 bytes (ES256 deterministic per RFC 6979).

        :param message: the bytes to sign (a Sig_structure)
        :raises: nothing
        """
        if isinstance(self._secret, bytes):
            return sm2.sign(self._secret, message)
        der = self._secret.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")

    def to_pem(self) -> bytes:
        """The key as an unencrypted PKCS #8 ``PRIVATE KEY`` PEM.

        :raises: nothing
        """
        if isinstance(self._secret, bytes):
            return _pem(_PRIVATE_LABEL, _sm2_pkcs8(self._secret, self.public_key.point))
        return self._secret.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"PrivateKey(alg={self.alg}, kid={self.kid.hex()})"


def load_public_key(pem: bytes) -> PublicKey:
    """Read a ``PUBLIC KEY`` PEM (SubjectPublicKeyInfo) of an ES256 or SM2 key.

    :param pem: the file's bytes; text before the armour is ignored
    :raises KeyFormatError: not exactly one public-key PEM, or not a valid ES256/SM2 key
    """
    return PublicKey.from_spki(_unpem(pem, _PUBLIC_LABEL))


def load_private_key(pem: bytes) -> PrivateKey:
    """Read an unencrypted PKCS #8 ``PRIVATE KEY`` PEM of an ES256 or SM2 key.

    :param pem: the file's bytes; text before the armour is ignored
    :raises KeyFormatError: not exactly one private-key PEM, encrypted, another curve, or
        malformed
    """
    der = _unpem(pem, _PRIVATE_LABEL)
    if SM2_ALGORITHM_ID in der[:32]:
        return PrivateKey(Alg.SM2, _sm2_from_pkcs8(der))
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a PKCS #8 P-256 or SM2 private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFormatError("the private key is neither P-256 (ES256) nor SM2")
    return PrivateKey(Alg.ES256, key)


# --- encodings -------------------------------------------------------------------------------


def _spki_alg(spki: bytes) -> Alg:
    if spki.startswith(SM2_SPKI_PREFIX):
        if len(spki) != SM2_SPKI_LEN:
            raise KeyFormatError("an SM2 SubjectPublicKeyInfo is 91 bytes")
        sm2.check_public_key(spki[len(SM2_SPKI_PREFIX) :])
        return Alg.SM2
    _p256(spki)
    return Alg.ES256


@functools.lru_cache(maxsize=256)
def _p256(spki: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a P-256 or SM2 SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFormatError("the public key is neither P-256 (ES256) nor SM2")
    canonical = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if canonical != spki:
        raise KeyFormatError("the P-256 SubjectPublicKeyInfo is not canonical DER (uncompressed)")
    return key


def _sm2_pkcs8(private: bytes, point: bytes) -> bytes:
    # RFC 5915 ECPrivateKey inside RFC 5208 PrivateKeyInfo, the layout OpenSSL/Tongsuo write
    ec_private = b"\x30\x6b\x02\x01\x01\x04\x20" + private + b"\xa1\x44\x03\x42\x00" + point
    body = b"\x02\x01\x00" + SM2_ALGORITHM_ID + b"\x04\x6d" + ec_private
    return b"\x30\x81" + bytes([len(body)]) + body


def _sm2_from_pkcs8(der: bytes) -> bytes:
    try:
        info, rest = _der(der, 0x30)
        if rest:
            raise KeyFormatError("bytes after the PKCS #8 structure")
        version, info = _der(info, 0x02)
        algorithm, info = _der(info, 0x30)
        octets, info = _der(info, 0x04)
        if version != b"\x00" or b"\x30\x13" + algorithm != SM2_ALGORITHM_ID:
            raise KeyFormatError("not a version-1 PKCS #8 SM2 key")
        if info:
            raise KeyFormatError("PKCS #8 attributes are not supported")
        ec_private, rest = _der(octets, 0x30)
        if rest:
            raise KeyFormatError("bytes after the ECPrivateKey")
        ec_version, ec_private = _der(ec_private, 0x02)
        scalar, ec_private = _der(ec_private, 0x04)
        if ec_version != b"\x01" or len(scalar) != sm2.PRIVATE_KEY_LEN:
            raise KeyFormatError("not a version-1 ECPrivateKey with a 32-byte scalar")
        if ec_private[:1] == b"\xa0":
            params, ec_private = _der(ec_private, 0xA0)
            if params != OID_SM2_CURVE:
                raise KeyFormatError("the ECPrivateKey names another curve")
        point = None
        if ec_private[:1] == b"\xa1":
            wrapped, ec_private = _der(ec_private, 0xA1)
            bits, extra = _der(wrapped, 0x03)
            if extra or bits[:1] != b"\x00":
                raise KeyFormatError("malformed public key in the ECPrivateKey")
            point = bits[1:]
        if ec_private:
            raise KeyFormatError("unexpected fields in the ECPrivateKey")
    except IndexError as exc:
        raise KeyFormatError("truncated PKCS #8 SM2 key") from exc
    if point is not None and sm2.public_key(scalar) != point:
        raise KeyFormatError("the SM2 key's public point does not match its scalar")
    sm2.check_private_key(scalar)
    return scalar


def _der(data: bytes, tag: int) -> tuple[bytes, bytes]:
    """Split one DER element of ``tag`` off the front: ``(value, rest)``."""
    if not data or data[0] != tag:
        raise KeyFormatError(f"expected DER tag {tag:02x}")
    first = data[1]
    if first < 0x80:
        length, start = first, 2
    elif first in (0x81, 0x82):
        width = first - 0x80
        length = int.from_bytes(data[2 : 2 + width], "big")
        start = 2 + width
        if length < (0x80 if width == 1 else 0x100):
            raise KeyFormatError("non-minimal DER length")
    else:
        raise KeyFormatError("unsupported DER length")
    if start + length > len(data):
        raise KeyFormatError("DER element runs past the end")
    return data[start : start + length], data[start + length :]


def _pem(label: bytes, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, b"\n".join(lines), label)


def _unpem(pem: bytes, label: bytes) -> bytes:
    if not isinstance(pem, bytes):
        raise KeyFormatError("a PEM key must be bytes")
    start = pem.find(b"-----BEGIN ")
    found = _PEM.match(pem, start) if start >= 0 else None
    if found is None:
        raise KeyFormatError(f"not a {label.decode()} PEM (one armoured block, nothing after)")
    if found.group(1) != label:
        raise KeyFormatError(f"expected a {label.decode()} PEM, got {found.group(1).decode()}")
    try:
        return base64.b64decode(b"".join(found.group(2).split()), validate=True)
    except binascii.Error as exc:
        raise KeyFormatError(f"the {label.decode()} PEM body is not base64") from exc
