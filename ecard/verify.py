"""Verify an e-card code offline (docs/qr-format.md §8): every refusal is a
:class:`~ecard.errors.QrRefused` with its reason, in this order —

1. text, Base45, capped inflate, CBOR structure, both protected headers → ``bad_encoding``;
2. the trust list is current → ``stale_trust_list``;
3. a listed key with the header's ``kid`` and ``alg`` → ``unknown_kid``;
4. the platform signature over the credential, every candidate key tried → ``bad_signature``;
5. only now the claims are decoded (``bad_encoding``) and used: ``nbf``/``exp`` with the skew
   → ``not_yet_valid`` / ``expired``;
6. the device signature over the dynamic part and the credential → ``bad_signature``;
7. the dynamic timestamp within ± the window of ``now`` → ``outside_window``.

The identity blob is decrypted only when the caller holds the audience key it names. Replay
(the same credential and counter twice within the window) is the caller's check, with
:attr:`VerifiedCode.replay_key` and the replay cache of the offline store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ecard import cbor
from ecard.errors import FormatError, KeyFormatError, QrReason, QrRefused
from ecard.format import Credential, Dynamic, Envelope, decode_text
from ecard.identity import open_identity
from ecard.trust import TrustedKey, TrustList

__all__ = [
    "DEFAULT_SKEW_S",
    "DEFAULT_WINDOW_S",
    "REPLAY_LABEL",
    "VerifiedCode",
    "replay_key",
    "verify_code",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 30.0
DEFAULT_SKEW_S = 5.0
REPLAY_LABEL = "SSC1 replay"
_NO_KEYS: Mapping[str, bytes] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class VerifiedCode:
    """A code that passed every check of :func:`verify_code`.

    :param credential: the platform-signed claims
    :param dynamic: the device-signed timestamp and counter
    :param replay_key: what the replay cache must not see twice within ``2 × window_s``
        (:func:`replay_key`)
    :param identity: name, ssn, sex, birth_date — only when an audience key opened the blob
    :param signer: the trust-list key whose signature held
    """

    credential: Credential
    dynamic: Dynamic
    replay_key: str
    identity: dict[str, str] | None = field(default=None, repr=False)
    signer: TrustedKey | None = None


def replay_key(kid: bytes, token: str, counter: int) -> str:
    """The replay key of a code: lowercase hex SHA-256 of
    ``CBOR(["SSC1 replay", kid, token, ctr])`` (docs/qr-format.md §8.2).

    :param kid: the platform key id (8 bytes)
    :param token: the card token
    :param counter: the dynamic counter
    :raises: nothing
    """
    return hashlib.sha256(cbor.dumps([REPLAY_LABEL, kid, token, counter])).hexdigest()


def verify_code(
    text: str,
    trust: TrustList,
    now: float,
    *,
    window_s: float = DEFAULT_WINDOW_S,
    skew_s: float = DEFAULT_SKEW_S,
    audience_keys: Mapping[str, bytes] = _NO_KEYS,
) -> VerifiedCode:
    """Verify a scanned code against a trust list, offline.

    :param text: the scanned text, exactly (``SSC1:…``)
    :param trust: the verified trust list (:func:`~ecard.trust.parse_trust_list`)
    :param now: the wall clock, seconds since 1970
    :param window_s: a dynamic part is accepted while ``|now − ts| ≤ window_s``
    :param skew_s: clock skew allowed on the credential's ``nbf`` and ``exp``
    :param audience_keys: audience key id → 32-byte key; the identity blob is opened only with
        the key its ``kid`` names
    :raises QrRefused: with the reason of the first check that fails (see the module docstring)
    """
    try:
        envelope = Envelope.parse(decode_text(text))
    except FormatError as exc:
        raise QrRefused(QrReason.BAD_ENCODING, str(exc)) from None
    signed = envelope.credential
    header = signed.header
    trust.check_current(now)
    assert header.kid is not None  # Header.parse(with_kid=True) guarantees it
    candidates = trust.candidates(header.kid, header.alg)
    if not candidates:
        raise QrRefused(
            QrReason.UNKNOWN_KID,
            f"no {header.alg} key with kid {header.kid.hex()} on trust list "
            f"version {trust.version}",
        )
    to_be_signed = signed.to_be_signed()
    signer = next(
        (k for k in candidates if k.public_key.verify(to_be_signed, signed.signature)), None
    )
    if signer is None:
        raise QrRefused(
            QrReason.BAD_SIGNATURE,
            f"the platform signature does not verify with {len(candidates)} key(s) of kid "
            f"{header.kid.hex()}",
        )
    try:
        credential = Credential.from_claims(signed.payload, header)
    except FormatError as exc:
        raise QrRefused(QrReason.BAD_ENCODING, f"signed claims: {exc}") from None
    _check_validity(credential, now, skew_s)
    dynamic_part = envelope.dynamic
    if not credential.device_key.verify(dynamic_part.to_be_signed(signed), dynamic_part.signature):
        raise QrRefused(
            QrReason.BAD_SIGNATURE, "the device signature over the dynamic part does not verify"
        )
    try:
        dynamic = Dynamic.parse(dynamic_part.payload)
    except FormatError as exc:
        raise QrRefused(QrReason.BAD_ENCODING, f"signed dynamic part: {exc}") from None
    age = now - dynamic.timestamp
    if abs(age) > window_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise QrRefused(
            QrReason.OUTSIDE_WINDOW, f"the code was made {when} (window ±{window_s:g} s)"
        )
    identity = _identity(credential, audience_keys)
    log.debug(
        "event=qr_verified kid=%s alg=%s ctr=%d identity=%s",
        header.kid.hex(),
        header.alg,
        dynamic.counter,
        "opened" if identity else ("sealed" if credential.identity else "none"),
    )
    return VerifiedCode(
        credential,
        dynamic,
        replay_key(credential.kid, credential.token, dynamic.counter),
        identity,
        signer,
    )


def _check_validity(credential: Credential, now: float, skew_s: float) -> None:
    if now + skew_s < credential.not_before.timestamp():
        raise QrRefused(
            QrReason.NOT_YET_VALID,
            f"the credential is valid from {credential.not_before.isoformat()}",
        )
    if now - skew_s >= credential.not_after.timestamp():
        raise QrRefused(
            QrReason.EXPIRED, f"the credential expired at {credential.not_after.isoformat()}"
        )


def _identity(credential: Credential, audience_keys: Mapping[str, bytes]) -> dict[str, str] | None:
    sealed = credential.identity
    if sealed is None or sealed.kid not in audience_keys:
        return None
    try:
        return open_identity(sealed, audience_keys[sealed.kid], credential.token)
    except (KeyFormatError, FormatError) as exc:
        # a terminal misconfiguration or a platform bug, not the holder's fault: the code stays
        # valid and the scenario's policy decides what a missing identity means
        log.warning("event=qr_identity_unreadable audience_kid=%s error=%s", sealed.kid, exc)
        return None
