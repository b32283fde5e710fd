"""The identity blob of a credential (claim ``idn``, docs/qr-format.md §4.3): name, SSN, sex
and birth date encrypted to an audience key, so only terminals whose scenario needs them
(hotel, hospital) can read them.

Audience keys are 32 random bytes named by a short text id. ``A256GCM`` uses the key as is
(AES-256-GCM); ``SM4-GCM`` uses ``HKDF-SM3(key, salt = none, info = "SSC1 idn SM4-GCM")``
truncated to the 16 bytes SM4 takes. Both use a 12-byte IV, a 16-byte tag appended to the
ciphertext, and the associated data ``CBOR(["SSC1 idn", alg, kid, token])``, which ties the blob
to its credential.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from apdu.identity import SEX_NAMES
from ecard import cbor
from ecard.errors import FormatError, KeyFormatError

__all__ = [
    "AUDIENCE_KEY_LEN",
    "IDENTITY_ALGS",
    "IDENTITY_FIELDS",
    "EncryptedIdentity",
    "open_identity",
    "seal_identity",
]

AUDIENCE_KEY_LEN = 32
ALG_A256GCM = "A256GCM"
ALG_SM4_GCM = "SM4-GCM"
IDENTITY_ALGS = (ALG_A256GCM, ALG_SM4_GCM)
IDENTITY_FIELDS = ("name", "ssn", "sex", "birth_date")
#: optional items: 民族 (GB 3304, two digits), which lodging registration records
IDENTITY_OPTIONAL = ("ethnicity",)
IV_LEN = 12
TAG_LEN = 16
CT_MAX = 1024
SM4_KEY_LEN = 16
SM4_INFO = b"SSC1 idn SM4-GCM"
AAD_LABEL = "SSC1 idn"
NAME_MAX = 64
# keys of the idn map (docs/qr-format.md §4.3)
K_KID, K_ALG, K_IV, K_CT = "kid", "alg", "iv", "ct"

_AUDIENCE_KID = re.compile(r"[\x21-\x7e]{1,64}")
_SSN = re.compile(r"[0-9A-Za-z]{1,32}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ETHNICITY = re.compile(r"[0-9]{2}")


@dataclass(frozen=True, slots=True)
class EncryptedIdentity:
    """Claim ``idn``: the identity, encrypted to one audience key.

    :param kid: the audience key's id (1–64 visible ASCII characters)
    :param alg: ``"A256GCM"`` or ``"SM4-GCM"``
    :param iv: the 12-byte IV
    :param ct: ciphertext followed by the 16-byte tag
    """

    kid: str
    alg: str
    iv: bytes = field(repr=False)
    ct: bytes = field(repr=False)

    @classmethod
    def from_claim(cls, value: Any) -> EncryptedIdentity:
        """Check a decoded ``idn`` map.

        :param value: the decoded CBOR value
        :raises FormatError: not a map of exactly ``kid``, ``alg``, ``iv``, ``ct`` with the types
            and sizes of docs/qr-format.md §4.3
        """
        if not isinstance(value, dict) or set(value) != {K_KID, K_ALG, K_IV, K_CT}:
            raise FormatError("claim idn must be a map of exactly kid, alg, iv, ct")
        kid, alg, iv, ct = value[K_KID], value[K_ALG], value[K_IV], value[K_CT]
        if not isinstance(kid, str) or not _AUDIENCE_KID.fullmatch(kid):
            raise FormatError("idn.kid must be 1-64 visible ASCII characters")
        if alg not in IDENTITY_ALGS:
            raise FormatError(f"idn.alg must be one of {', '.join(IDENTITY_ALGS)}")
        if not isinstance(iv, bytes) or len(iv) != IV_LEN:
            raise FormatError(f"idn.iv must be {IV_LEN} bytes")
        if not isinstance(ct, bytes) or not TAG_LEN < len(ct) <= CT_MAX:
            raise FormatError(f"idn.ct must be {TAG_LEN + 1}-{CT_MAX} bytes")
        return cls(kid, alg, iv, ct)

    def to_claim(self) -> dict[str, Any]:
        """The ``idn`` map to encode.

        :raises: nothing
        """
        return {K_KID: self.kid, K_ALG: self.alg, K_IV: self.iv, K_CT: self.ct}


def seal_identity(
    identity: Mapping[str, str], *, kid: str, key: bytes, token: str, alg: str = ALG_A256GCM
) -> EncryptedIdentity:
    """Encrypt an identity to an audience key (issuing side).

    :param identity: ``name``, ``ssn``, ``sex`` (GB/T 2261.1 code), ``birth_date``
        (``YYYY-MM-DD``) and optionally ``ethnicity`` (GB 3304, two digits), all text
    :param kid: the audience key's id
    :param key: the 32-byte audience key
    :param token: the credential's card token (bound in the associated data)
    :param alg: ``"A256GCM"`` or ``"SM4-GCM"``
    :raises FormatError: a missing, extra or malformed field, a bad kid or algorithm
    :raises KeyFormatError: the key is not 32 bytes
    """
    plaintext = cbor.dumps(_check_identity(dict(identity)))
    iv = os.urandom(IV_LEN)
    sealed = EncryptedIdentity.from_claim(
        {K_KID: kid, K_ALG: alg, K_IV: iv, K_CT: b"\x00" * (TAG_LEN + 1)}
    )  # checks kid and alg before any key is used
    ct = _encrypt(alg, key, iv, plaintext, _aad(alg, kid, token))
    return EncryptedIdentity(sealed.kid, sealed.alg, iv, ct)


def open_identity(sealed: EncryptedIdentity, key: bytes, token: str) -> dict[str, str]:
    """Decrypt and check an identity blob.

    :param sealed: the ``idn`` claim
    :param key: the audience key named by ``sealed.kid``
    :param token: the credential's card token
    :raises KeyFormatError: the key is not 32 bytes, or it does not open the blob (a wrong key
        under that kid)
    :raises FormatError: the plaintext is not the identity map of docs/qr-format.md §4.3
    """
    aad = _aad(sealed.alg, sealed.kid, token)
    try:
        plaintext = _decrypt(sealed.alg, key, sealed.iv, sealed.ct, aad)
    except InvalidTag:
        raise KeyFormatError(
            f"audience key {sealed.kid!r} does not open the identity blob (wrong key?)"
        ) from None
    return _check_identity(cbor.loads(plaintext, "the identity"))


def _check_identity(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not (
        set(IDENTITY_FIELDS) <= set(value) <= {*IDENTITY_FIELDS, *IDENTITY_OPTIONAL}
    ):
        raise FormatError(
            f"the identity must be a map of {', '.join(IDENTITY_FIELDS)} and optionally "
            f"{', '.join(IDENTITY_OPTIONAL)}"
        )
    if not all(isinstance(v, str) for v in value.values()):
        raise FormatError("identity values must be text")
    if not 1 <= len(value["name"]) <= NAME_MAX or not value["name"].isprintable():
        raise FormatError(f"identity name must be 1-{NAME_MAX} printable characters")
    if not _SSN.fullmatch(value["ssn"]):
        raise FormatError("identity ssn must be 1-32 characters of 0-9, A-Z, a-z")
    if value["sex"] not in SEX_NAMES:
        raise FormatError("identity sex must be a GB/T 2261.1 code (0, 1, 2, 9)")
    birth = value["birth_date"]
    try:
        if not _DATE.fullmatch(birth):
            raise ValueError(birth)
        dt.date.fromisoformat(birth)
    except ValueError:
        raise FormatError("identity birth_date must be a date YYYY-MM-DD") from None
    ethnicity = value.get("ethnicity")
    if ethnicity is not None and not _ETHNICITY.fullmatch(ethnicity):
        raise FormatError("identity ethnicity must be a two-digit GB 3304 code")
    return {k: value[k] for k in (*IDENTITY_FIELDS, *IDENTITY_OPTIONAL) if k in value}


def _aad(alg: str, kid: str, token: str) -> bytes:
    return cbor.dumps([AAD_LABEL, alg, kid, token])


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != AUDIENCE_KEY_LEN:
        raise KeyFormatError(f"an audience key is {AUDIENCE_KEY_LEN} bytes")


def _sm4_key(key: bytes) -> bytes:
    return HKDF(hashes.SM3(), SM4_KEY_LEN, None, SM4_INFO).derive(key)


def _encrypt(alg: str, key: bytes, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
    _check_key(key)
    if alg == ALG_A256GCM:
        return AESGCM(key).encrypt(iv, plaintext, aad)
    encryptor = Cipher(algorithms.SM4(_sm4_key(key)), modes.GCM(iv)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def _decrypt(alg: str, key: bytes, iv: bytes, ct: bytes, aad: bytes) -> bytes:
    _check_key(key)
    if alg == ALG_A256GCM:
        return AESGCM(key).decrypt(iv, ct, aad)
    body, tag = ct[:-TAG_LEN], ct[-TAG_LEN:]
    decryptor = Cipher(algorithms.SM4(_sm4_key(key)), modes.GCM(iv, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(body) + decryptor.finalize()
