"""The wire format of an e-card code (docs/qr-format.md §2–§6): text, compression, the
envelope, the two signed parts, their headers and claims, and the Sig_structures.

::

    "SSC1:" + Base45( zlib( CBOR( envelope ) ) )
    envelope   = [ credential: bstr, dynamic ]
    credential = [ protected: bstr {1: alg, 4: kid}, unprotected: {}, payload: bstr, sig: bstr ]
    dynamic    = [ protected: bstr {1: alg}, payload: bstr {"ts", "ctr"}, sig: bstr ]

The credential is a COSE_Sign1 (RFC 9052 §4.2, untagged) signed by the platform; the dynamic
part is signed by the holder's device key with the whole encoded credential as external data.
Everything here is pure; nothing decides whether a code is accepted (that is
:mod:`ecard.verify`).
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from apdu.identity import CATEGORY_NAMES
from ecard import cbor
from ecard.base45 import b45decode, b45encode
from ecard.errors import FormatError, KeyFormatError
from ecard.identity import EncryptedIdentity
from ecard.keys import KID_LEN, SIGNATURE_LEN, Alg, PublicKey

__all__ = [
    "INFLATE_CAP",
    "MAX_TEXT_LEN",
    "PREFIX",
    "Credential",
    "Dynamic",
    "DynamicPart",
    "Envelope",
    "Header",
    "SignedCredential",
    "SignedPart",
    "decode_text",
    "encode_text",
    "sig_structure",
]

PREFIX = "SSC1:"
MAX_TEXT_LEN = 4296  # the most a QR code holds in alphanumeric mode (version 40-L)
INFLATE_CAP = 4096  # bytes of CBOR after inflating: more is refused, never allocated
ZLIB_LEVEL = 9
SIGNATURE1 = "Signature1"  # RFC 9052 §4.4 context
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: the last second a datetime holds
MAX_COUNTER = 0xFFFFFFFF

# COSE header labels (RFC 9052 §3.1)
HEADER_ALG = 1
HEADER_KID = 4
# credential claims (docs/qr-format.md §4.2)
C_TOKEN, C_REGION, C_CATEGORY, C_NBF, C_EXP, C_DEV, C_IDN = (
    "token",
    "region",
    "category",
    "nbf",
    "exp",
    "dev",
    "idn",
)
CLAIMS_REQUIRED = frozenset({C_TOKEN, C_REGION, C_CATEGORY, C_NBF, C_EXP, C_DEV})
CLAIMS_ALLOWED = CLAIMS_REQUIRED | {C_IDN}
# dynamic claims (docs/qr-format.md §4.4)
D_TS, D_CTR = "ts", "ctr"

_TOKEN = re.compile(r"[0-9a-f]{64}")
_REGION = re.compile(r"[0-9]{6}")
_CREDENTIAL_ITEMS = 4
_DYNAMIC_ITEMS = 3


def encode_text(envelope: bytes) -> str:
    """Compress and Base45-encode an encoded envelope, with the prefix.

    :param envelope: ``CBOR(envelope)``
    :raises FormatError: the envelope is larger than the inflate cap
    """
    if len(envelope) > INFLATE_CAP:
        raise FormatError(f"envelope of {len(envelope)} bytes exceeds the {INFLATE_CAP} cap")
    return PREFIX + b45encode(zlib.compress(envelope, ZLIB_LEVEL))


def decode_text(text: str) -> bytes:
    """Undo :func:`encode_text`: prefix, Base45, then a capped inflate.

    :param text: the scanned text, exactly (no surrounding whitespace)
    :returns: the envelope's CBOR bytes
    :raises FormatError: wrong prefix, too long, not Base45, not one complete zlib stream,
        trailing bytes, or more than :data:`INFLATE_CAP` bytes once inflated
    """
    if not isinstance(text, str):
        raise FormatError("a code is text")
    if len(text) > MAX_TEXT_LEN:
        raise FormatError(f"code of {len(text)} characters (at most {MAX_TEXT_LEN})")
    if not text.startswith(PREFIX):
        raise FormatError(f"code does not start with {PREFIX!r}")
    return inflate(b45decode(text[len(PREFIX) :]))


def inflate(data: bytes) -> bytes:
    """Inflate one complete zlib stream (RFC 1950) of at most :data:`INFLATE_CAP` bytes.

    :param data: the compressed bytes
    :raises FormatError: not zlib, truncated, trailing bytes, or over the cap (a zip bomb is
        stopped after the cap, nothing more is allocated)
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, INFLATE_CAP + 1)
    except zlib.error as exc:
        raise FormatError(f"not a zlib stream ({exc})") from exc
    if len(out) > INFLATE_CAP or inflater.unconsumed_tail:
        raise FormatError(f"inflates to more than {INFLATE_CAP} bytes")
    if not inflater.eof:
        raise FormatError("truncated zlib stream")
    if inflater.unused_data:
        raise FormatError(f"{len(inflater.unused_data)} bytes after the zlib stream")
    return out


def sig_structure(protected: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """The bytes a signature covers: ``CBOR(["Signature1", protected, external_aad, payload])``
    (RFC 9052 §4.4).

    :param protected: the protected header, as carried (a bstr's content)
    :param external_aad: ``b""`` for the credential; the encoded credential for the dynamic
        part; ``b"sscard-trust/1"`` for a trust list
    :param payload: the payload, as carried
    :raises: nothing
    """
    return cbor.dumps([SIGNATURE1, protected, external_aad, payload])


@dataclass(frozen=True, slots=True)
class Header:
    """A protected header: ``{1: alg, 4: kid}`` (credential, trust list) or ``{1: alg}``
    (dynamic part).

    :param alg: the signature algorithm
    :param kid: the signer's 8-byte key id, or ``None`` for the dynamic part
    """

    alg: Alg
    kid: bytes | None = None

    @classmethod
    def parse(cls, data: bytes, *, with_kid: bool) -> Header:
        """Decode a protected header strictly.

        :param data: the bstr's content
        :param with_kid: whether ``kid`` is required (credential) or forbidden (dynamic)
        :raises FormatError: not a deterministic map of exactly the expected labels, an unknown
            ``alg`` or a ``kid`` that is not 8 bytes
        """
        value = cbor.loads(data, "the protected header")
        expected = {HEADER_ALG, HEADER_KID} if with_kid else {HEADER_ALG}
        if not isinstance(value, dict) or set(value) != expected:
            labels = "{1: alg, 4: kid}" if with_kid else "{1: alg}"
            raise FormatError(f"the protected header must be exactly {labels}")
        try:
            alg = Alg.from_cose(value[HEADER_ALG])
        except KeyFormatError as exc:
            raise FormatError(str(exc)) from None
        kid = value.get(HEADER_KID)
        if with_kid and (not isinstance(kid, bytes) or len(kid) != KID_LEN):
            raise FormatError(f"kid must be {KID_LEN} bytes")
        return cls(alg, kid)

    def to_bytes(self) -> bytes:
        """The deterministic encoding.

        :raises: nothing
        """
        value: dict[int, Any] = {HEADER_ALG: self.alg.cose}
        if self.kid is not None:
            value[HEADER_KID] = self.kid
        return cbor.dumps(value)


def _bstr(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise FormatError(f"{what} must be a byte string")
    return value


def _signature(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != SIGNATURE_LEN:
        raise FormatError(f"{what} must be {SIGNATURE_LEN} bytes (r ‖ s)")
    return value


def _no_unprotected(value: Any) -> None:
    if not isinstance(value, dict):
        raise FormatError("the unprotected header must be a map")
    if HEADER_ALG in value or HEADER_KID in value:
        raise FormatError("alg and kid are allowed in the protected header only")
    if value:
        raise FormatError("the unprotected header must be empty")


@dataclass(frozen=True, slots=True)
class SignedPart:
    """What both signed parts carry, COSE_Sign1-shaped: a protected header, a payload and a
    signature over their Sig_structure.

    :param protected: the protected header's bytes
    :param header: the decoded protected header
    :param payload: the claims' bytes (decoded only once the signature holds)
    :param signature: ``r ‖ s``
    """

    protected: bytes = field(repr=False)
    header: Header
    payload: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def _sig_structure(self, external_aad: bytes) -> bytes:
        return sig_structure(self.protected, external_aad, self.payload)


@dataclass(frozen=True, slots=True)
class SignedCredential(SignedPart):
    """Part 1, as carried: a COSE_Sign1 ``[protected, {}, payload, signature]`` (the fields
    of :class:`SignedPart`, signed by the platform).

    :param encoded: the whole CBOR array (the bytes of the envelope's first item)
    """

    encoded: bytes = field(repr=False)

    @classmethod
    def parse(cls, encoded: bytes) -> SignedCredential:
        """Decode the structure and the protected header, not the claims.

        :param encoded: the credential's CBOR
        :raises FormatError: anything but the structure above
        """
        value = cbor.loads(encoded, "the credential")
        if not isinstance(value, list) or len(value) != _CREDENTIAL_ITEMS:
            raise FormatError("the credential must be an array of 4 items")
        protected = _bstr(value[0], "the credential's protected header")
        _no_unprotected(value[1])
        payload = _bstr(value[2], "the credential's payload")
        signature = _signature(value[3], "the credential's signature")
        header = Header.parse(protected, with_kid=True)
        return cls(protected, header, payload, signature, encoded)

    @classmethod
    def build(cls, header: Header, payload: bytes, signature: bytes) -> SignedCredential:
        """Assemble a credential from its parts (issuing side).

        :param header: alg and kid
        :param payload: the encoded claims
        :param signature: ``r ‖ s`` over :meth:`to_be_signed`
        :raises: nothing
        """
        protected = header.to_bytes()
        encoded = cbor.dumps([protected, {}, payload, signature])
        return cls(protected, header, payload, signature, encoded)

    def to_be_signed(self) -> bytes:
        """The platform's Sig_structure: ``["Signature1", protected, b"", payload]``.

        :raises: nothing
        """
        return self._sig_structure(b"")


@dataclass(frozen=True, slots=True)
class DynamicPart(SignedPart):
    """Part 2, as carried: ``[protected {1: alg}, payload {"ts", "ctr"}, signature]`` (the
    fields of :class:`SignedPart`: the dynamic claims, signed by the device key).
    """

    @classmethod
    def parse(cls, value: Any) -> DynamicPart:
        """Check the decoded array and its protected header.

        :param value: the envelope's second item
        :raises FormatError: anything but the structure above
        """
        if not isinstance(value, list) or len(value) != _DYNAMIC_ITEMS:
            raise FormatError("the dynamic part must be an array of 3 items")
        protected = _bstr(value[0], "the dynamic part's protected header")
        payload = _bstr(value[1], "the dynamic part's payload")
        signature = _signature(value[2], "the dynamic part's signature")
        return cls(protected, Header.parse(protected, with_kid=False), payload, signature)

    @classmethod
    def build(
        cls, alg: Alg, payload: bytes, sign: Any, credential: SignedCredential
    ) -> DynamicPart:
        """Assemble and sign a dynamic part (device side).

        :param alg: the device key's algorithm
        :param payload: the encoded dynamic claims
        :param sign: ``bytes -> bytes``, the device key's raw signer
        :param credential: the credential it binds to
        :raises: nothing
        """
        protected = Header(alg).to_bytes()
        signature = sign(sig_structure(protected, credential.encoded, payload))
        return cls(protected, Header(alg), payload, signature)

    def to_be_signed(self, credential: SignedCredential) -> bytes:
        """The device's Sig_structure: ``["Signature1", protected, credential, payload]``.

        :param credential: the credential carried beside it
        :raises: nothing
        """
        return self._sig_structure(credential.encoded)

    def to_list(self) -> list[bytes]:
        """The array to encode.

        :raises: nothing
        """
        return [self.protected, self.payload, self.signature]


@dataclass(frozen=True, slots=True)
class Envelope:
    """The whole code: ``[credential (bstr), dynamic]``.

    :param credential: part 1
    :param dynamic: part 2
    """

    credential: SignedCredential
    dynamic: DynamicPart

    @classmethod
    def parse(cls, data: bytes) -> Envelope:
        """Decode the envelope and both protected headers (no claims, no signatures).

        :param data: the inflated CBOR
        :raises FormatError: anything but the structure of docs/qr-format.md §3, or a
            dynamic part whose ``alg`` differs from the credential's
        """
        value = cbor.loads(data, "the envelope")
        if not isinstance(value, list) or len(value) != 2:
            raise FormatError("the envelope must be an array of 2 items")
        credential = SignedCredential.parse(_bstr(value[0], "the envelope's credential"))
        dynamic = DynamicPart.parse(value[1])
        if dynamic.header.alg is not credential.header.alg:
            raise FormatError(
                f"the dynamic part is {dynamic.header.alg}, the credential "
                f"{credential.header.alg}: the device key must be of the platform's family"
            )
        return cls(credential, dynamic)

    def to_bytes(self) -> bytes:
        """The deterministic encoding.

        :raises: nothing
        """
        return cbor.dumps([self.credential.encoded, self.dynamic.to_list()])


def _time(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_TIME:
        raise FormatError(f"{what} must be an integer of seconds since 1970 up to year 9999")
    return value


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@dataclass(frozen=True, slots=True)
class Credential:
    """The platform-signed claims of a code, once their signature held.

    :param token: the card token, 64 lowercase hex (not the SSN)
    :param region: the issuing region, 6 digits (GB/T 2260)
    :param category: the card category, ``"1"``–``"4"`` (卡的类别)
    :param not_before: first valid instant (UTC)
    :param not_after: the instant it stops being valid (UTC)
    :param device_key_spki: the holder device's public key, SubjectPublicKeyInfo DER
    :param alg: the platform's (and the device's) algorithm
    :param kid: the platform key id
    :param identity: the encrypted identity blob, if any
    """

    token: str = field(repr=False)
    region: str
    category: str
    not_before: dt.datetime
    not_after: dt.datetime
    device_key_spki: bytes = field(repr=False)
    alg: Alg
    kid: bytes
    identity: EncryptedIdentity | None = None

    @classmethod
    def from_claims(cls, payload: bytes, header: Header) -> Credential:
        """Decode and check the claims strictly (docs/qr-format.md §4.2).

        :param payload: the signed payload
        :param header: the credential's protected header (alg, kid)
        :raises FormatError: a missing, unknown or malformed claim, ``nbf ≥ exp``, or a device
            key that is not of the header's algorithm
        """
        claims = cbor.loads(payload, "the claims")
        if not isinstance(claims, dict) or not all(isinstance(k, str) for k in claims):
            raise FormatError("the claims must be a map with text keys")
        missing = sorted(CLAIMS_REQUIRED - set(claims))
        unknown = sorted(set(claims) - CLAIMS_ALLOWED)
        if missing or unknown:
            raise FormatError(f"claims missing {missing} or unknown {unknown}")
        token, region, category = claims[C_TOKEN], claims[C_REGION], claims[C_CATEGORY]
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise FormatError("claim token must be 64 lowercase hex characters")
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            raise FormatError("claim region must be 6 ASCII digits")
        if not isinstance(category, str) or category not in CATEGORY_NAMES:
            raise FormatError("claim category must be one of 1, 2, 3, 4")
        nbf, exp = _time(claims[C_NBF], "claim nbf"), _time(claims[C_EXP], "claim exp")
        if nbf >= exp:
            raise FormatError("claim nbf must be before exp")
        if header.kid is None:
            raise FormatError("the credential's header has no kid")
        try:
            device = PublicKey.from_spki(_bstr(claims[C_DEV], "claim dev"), header.alg)
        except KeyFormatError as exc:
            raise FormatError(f"claim dev: {exc}") from None
        idn = claims.get(C_IDN)
        identity = None if idn is None else EncryptedIdentity.from_claim(idn)
        return cls(
            token,
            region,
            category,
            _utc(nbf),
            _utc(exp),
            device.spki,
            header.alg,
            header.kid,
            identity,
        )

    def to_claims(self) -> bytes:
        """The deterministic encoding of the claims (the credential's payload).

        :raises FormatError: a datetime that is naive or out of range
        """
        claims: dict[str, Any] = {
            C_TOKEN: self.token,
            C_REGION: self.region,
            C_CATEGORY: self.category,
            C_NBF: _seconds(self.not_before, "not_before"),
            C_EXP: _seconds(self.not_after, "not_after"),
            C_DEV: self.device_key_spki,
        }
        if self.identity is not None:
            claims[C_IDN] = self.identity.to_claim()
        return cbor.dumps(claims)

    @property
    def device_key(self) -> PublicKey:
        """The device's public key.

        :raises: nothing (checked when the claims were decoded)
        """
        return PublicKey(self.alg, self.device_key_spki)

    def __repr__(self) -> str:
        return (
            f"Credential(token={self.token[:8]}…, region={self.region}, "
            f"category={self.category}, not_before={self.not_before.isoformat()}, "
            f"not_after={self.not_after.isoformat()}, alg={self.alg}, kid={self.kid.hex()}, "
            f"identity={'sealed to ' + self.identity.kid if self.identity else None})"
        )


def _seconds(value: dt.datetime, what: str) -> int:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise FormatError(f"{what} must be an aware datetime")
    return _time(int(value.timestamp()), what)


@dataclass(frozen=True, slots=True)
class Dynamic:
    """The device-signed part of a code.

    :param timestamp: when the device made the code, seconds since 1970
    :param counter: the device's code counter, ``0 ≤ ctr ≤ 2³² − 1``
    """

    timestamp: int
    counter: int

    @classmethod
    def parse(cls, payload: bytes) -> Dynamic:
        """Decode and check ``{"ts": uint, "ctr": uint}``.

        :param payload: the dynamic part's signed payload
        :raises FormatError: other keys or malformed values
        """
        value = cbor.loads(payload, "the dynamic claims")
        if not isinstance(value, dict) or set(value) != {D_TS, D_CTR}:
            raise FormatError('the dynamic claims must be exactly {"ts", "ctr"}')
        counter = value[D_CTR]
        if type(counter) is not int or not 0 <= counter <= MAX_COUNTER:
            raise FormatError("dynamic ctr must be an integer 0..2^32-1")
        return cls(_time(value[D_TS], "dynamic ts"), counter)

    def to_bytes(self) -> bytes:
        """The deterministic encoding.

        :raises FormatError: a value out of range
        """
        _time(self.timestamp, "timestamp")
        if type(self.counter) is not int or not 0 <= self.counter <= MAX_COUNTER:
            raise FormatError("counter must be an integer 0..2^32-1")
        return cbor.dumps({D_TS: self.timestamp, D_CTR: self.counter})
