"""Issue credentials and make codes: the platform's side and the holder device's side of the
format (docs/qr-format.md), for the development platform, ``sscard qr issue`` and the tests.

A terminal never needs this module; it only verifies.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from ecard.errors import FormatError, KeyFormatError
from ecard.format import (
    Credential,
    Dynamic,
    DynamicPart,
    Envelope,
    Header,
    SignedCredential,
    encode_text,
    sig_structure,
)
from ecard.identity import ALG_A256GCM, ALG_SM4_GCM, seal_identity
from ecard.keys import Alg, PrivateKey, PublicKey
from ecard.trust import make_trust_list

__all__ = ["issue_credential", "make_code", "make_trust_list"]

log = logging.getLogger(__name__)


def issue_credential(
    platform_private_key: PrivateKey,
    *,
    token: str,
    region: str,
    category: str,
    not_before: int | dt.datetime,
    not_after: int | dt.datetime,
    device_public_key: PublicKey,
    identity: Mapping[str, str] | None = None,
    audience: tuple[str, bytes] | None = None,
    identity_alg: str | None = None,
) -> bytes:
    """Sign a credential for one holder device (platform side).

    :param platform_private_key: the platform signing key (its kid goes in the header)
    :param token: the card token, 64 lowercase hex characters (never the SSN)
    :param region: the issuing region, 6 digits
    :param category: the card category, ``"1"``–``"4"``
    :param not_before: validity start, seconds since 1970 or an aware datetime
    :param not_after: validity end
    :param device_public_key: the holder device's key, of the platform key's algorithm
    :param identity: ``name``, ``ssn``, ``sex``, ``birth_date`` to seal, or ``None``
    :param audience: ``(audience key id, 32-byte key)`` the identity is sealed to
    :param identity_alg: ``"A256GCM"`` or ``"SM4-GCM"``; by default A256GCM with an ES256
        platform key and SM4-GCM with an SM2 one
    :returns: the encoded credential (part 1), for :func:`make_code`
    :raises FormatError: a claim out of its format, or identity without audience (or the reverse)
    :raises KeyFormatError: the device key is not of the platform key's algorithm
    """
    if device_public_key.alg is not platform_private_key.alg:
        raise KeyFormatError(
            f"the device key is {device_public_key.alg}, the platform key "
            f"{platform_private_key.alg}: they must be of one family"
        )
    if (identity is None) != (audience is None):
        raise FormatError("an identity needs an audience key, and an audience an identity")
    sealed = None
    if identity is not None and audience is not None:
        default = ALG_SM4_GCM if platform_private_key.alg is Alg.SM2 else ALG_A256GCM
        kid, key = audience
        sealed = seal_identity(identity, kid=kid, key=key, token=token, alg=identity_alg or default)
    header = Header(platform_private_key.alg, platform_private_key.kid)
    draft = Credential(
        token=token,
        region=region,
        category=category,
        not_before=_aware(not_before),
        not_after=_aware(not_after),
        device_key_spki=device_public_key.spki,
        alg=platform_private_key.alg,
        kid=platform_private_key.kid,
        identity=sealed,
    )
    payload = draft.to_claims()
    Credential.from_claims(payload, header)  # the verifier's own checks, before signing
    signature = platform_private_key.sign(sig_structure(header.to_bytes(), b"", payload))
    signed = SignedCredential.build(header, payload, signature)
    log.debug(
        "event=credential_issued kid=%s alg=%s identity=%s",
        header.kid.hex() if header.kid else "-",
        header.alg,
        "sealed" if sealed else "none",
    )
    return signed.encoded


def make_code(
    credential: bytes, device_private_key: PrivateKey, *, timestamp: int, counter: int
) -> str:
    """Make a code: sign a dynamic part over the credential (device side).

    :param credential: the encoded credential from :func:`issue_credential`
    :param device_private_key: the device key the credential names
    :param timestamp: now, seconds since 1970
    :param counter: the device's code counter, ``0 ≤ counter ≤ 2³² − 1``
    :returns: the text to put in a QR code, ``SSC1:…``
    :raises FormatError: the credential does not parse, or timestamp/counter out of range
    :raises KeyFormatError: the device key is not the one the credential names
    """
    signed = SignedCredential.parse(credential)
    claims = Credential.from_claims(signed.payload, signed.header)
    if device_private_key.public_key.spki != claims.device_key_spki:
        raise KeyFormatError("the device key is not the one the credential was issued to")
    payload = Dynamic(timestamp, counter).to_bytes()
    dynamic = DynamicPart.build(signed.header.alg, payload, device_private_key.sign, signed)
    return encode_text(Envelope(signed, dynamic).to_bytes())


def _aware(value: int | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise FormatError("validity dates must be aware datetimes")
        return value
    if type(value) is not int:
        raise FormatError("validity must be seconds since 1970 or an aware datetime")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise FormatError(f"validity {value} is out of range") from exc
