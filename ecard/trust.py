"""The trust list: the platform signing keys a terminal accepts, signed by a pinned root key
(docs/qr-format.md §7).

::

    trust list = CBOR [ signed: bstr, content: bstr ]
    signed     = COSE_Sign1 [ protected {1: alg, 4: root kid}, {}, payload, sig ]
                 over ["Signature1", protected, "sscard-trust/1", payload]
    payload    = {"format": "sscard-trust/1", "version": uint, "nbf": uint, "exp": uint,
                  "sha256": bstr .size 32}            -- SHA-256 of content
    content    = [ * {"alg": "ES256" / "SM2", "name": tstr, "spki": bstr} ]

A terminal verifies the list each time it loads it (:func:`parse_trust_list`) and then verifies
codes against the list alone: a key the platform drops from the next list stops verifying as
soon as that list is loaded. The ``kid`` of each key is computed here from its SPKI, never
read from the list.

The format carries no "test" mark. A production terminal (``production = true``) recognises
the repository's TEST KEYS by their fingerprints (:mod:`ecard.testkeys`) and refuses a list
signed by a test root or listing a test key, at import and every time it loads one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecard import cbor
from ecard.errors import (
    FormatError,
    KeyFormatError,
    QrReason,
    QrRefused,
    TrustListError,
)
from ecard.format import MAX_TIME, Header, sig_structure
from ecard.keys import SIGNATURE_LEN, Alg, PrivateKey, PublicKey, load_public_key
from ecard.testkeys import RefusedTestKey, refuse_test_key


class TrustTable(Protocol):
    """Where a terminal keeps its trust list (``offline_store``'s trust table): the codec
    verifies, the store keeps bytes, and neither imports the other."""

    def save(self, raw: bytes, version: int, not_after: int) -> None:
        """Make ``raw`` the active list (the active one becomes the previous one)."""

    def load(self) -> bytes | None:
        """The active list's bytes, ``None`` when none was saved."""


class Store(Protocol):
    """An offline store, as far as the trust list needs one (``offline_store.Store``)."""

    @property
    def trust(self) -> TrustTable:
        """The store's trust table."""


__all__ = [
    "DEFAULT_TRUST_SKEW_S",
    "TRUST_FORMAT",
    "TrustList",
    "TrustedKey",
    "load_stored_trust_list",
    "make_trust_list",
    "parse_trust_list",
    "save_trust_list",
]

log = logging.getLogger(__name__)

TRUST_FORMAT = "sscard-trust/1"
TRUST_AAD = TRUST_FORMAT.encode("ascii")  # the external data of the list's Sig_structure
DEFAULT_TRUST_SKEW_S = 300.0  # clock skew allowed on the list's nbf/exp (as hcert-kotlin)
MAX_TRUST_LIST_BYTES = 1 << 20
MAX_KEYS = 1024
NAME_MAX = 64
# payload and key-entry keys
T_FORMAT, T_VERSION, T_NBF, T_EXP, T_SHA256 = "format", "version", "nbf", "exp", "sha256"
K_ALG, K_NAME, K_SPKI = "alg", "name", "spki"
_SIGNED_ITEMS = 4


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A platform signing key on the list.

    :param kid: the first 8 bytes of SHA-256 over ``spki`` (computed, not read)
    :param alg: ES256 or SM2
    :param spki: the SubjectPublicKeyInfo DER
    :param name: the platform's label for the key (for operators)
    """

    kid: bytes
    alg: Alg
    spki: bytes = field(repr=False)
    name: str

    @property
    def public_key(self) -> PublicKey:
        """The key, for verifying.

        :raises: nothing (checked when the list was parsed)
        """
        return PublicKey(self.alg, self.spki)


@dataclass(frozen=True, slots=True)
class TrustList:
    """A verified trust list.

    :param version: the list's version (the platform increases it with every list)
    :param not_before: the list is not used before this instant (UTC)
    :param not_after: nor after this one: then it is stale
    :param content_hash: SHA-256 of the content, lowercase hex (the list's fingerprint)
    :param keys: the platform signing keys, in list order
    """

    version: int
    not_before: dt.datetime
    not_after: dt.datetime
    content_hash: str
    keys: tuple[TrustedKey, ...]

    @property
    def log_fields(self) -> str:
        """The list as a log line names it: version, key count, fingerprint (no key)."""
        return f"version={self.version} keys={len(self.keys)} sha256={self.content_hash[:16]}"

    def candidates(self, kid: bytes, alg: Alg) -> tuple[TrustedKey, ...]:
        """Every key with this ``kid`` and algorithm (a truncated hash may collide: all are
        tried, docs/qr-format.md §5.3).

        :param kid: the code's kid
        :param alg: the code's alg
        :raises: nothing
        """
        return tuple(k for k in self.keys if k.kid == kid and k.alg is alg)

    def check_current(self, now: float, skew_s: float = DEFAULT_TRUST_SKEW_S) -> None:
        """Refuse a list used outside its validity.

        :param now: the wall clock, seconds since 1970
        :param skew_s: clock skew allowed at both ends
        :raises QrRefused: ``stale_trust_list``, with the list's dates
        """
        if now + skew_s < self.not_before.timestamp():
            raise QrRefused(
                QrReason.STALE_TRUST_LIST,
                f"trust list version {self.version} is valid only from "
                f"{self.not_before.isoformat()} (check the terminal's clock)",
            )
        if now - skew_s >= self.not_after.timestamp():
            raise QrRefused(
                QrReason.STALE_TRUST_LIST,
                f"trust list version {self.version} expired at {self.not_after.isoformat()}",
            )


def parse_trust_list(
    data: bytes,
    root_public_key_pem: bytes,
    now: float,
    *,
    skew_s: float = DEFAULT_TRUST_SKEW_S,
    production: bool = False,
) -> TrustList:
    """Verify a trust list against the pinned root key and check it is current.

    :param data: the list's bytes, as the platform published them
    :param root_public_key_pem: the pinned root key, ``PUBLIC KEY`` PEM
    :param now: the wall clock, seconds since 1970
    :param skew_s: clock skew allowed on the list's ``nbf``/``exp``
    :param production: a production terminal: a TEST KEY as the root or on the list is refused
    :raises TrustListError: malformed, unknown format, signed by another key, bad signature,
        content hash mismatch, or a malformed key (also raised for a bad root PEM); in
        production, a test root or a test key on the list
    :raises QrRefused: ``stale_trust_list``: the list is valid but not at ``now``
    """
    try:
        root = load_public_key(root_public_key_pem)
    except KeyFormatError as exc:
        raise TrustListError(f"the pinned trust root is not usable: {exc}") from None
    try:
        refuse_test_key(
            root.spki, "the pinned trust root", production=production, text=root_public_key_pem
        )
    except RefusedTestKey as exc:
        raise TrustListError(str(exc)) from None
    try:
        trust = _verified(data, root)
    except (FormatError, KeyFormatError) as exc:
        raise TrustListError(f"trust list refused: {exc}") from None
    for key in trust.keys:
        what = f"key {key.kid.hex()} ({key.name}) of trust list version {trust.version}"
        try:
            refuse_test_key(key.spki, what, production=production)
        except RefusedTestKey as exc:
            raise TrustListError(str(exc)) from None
    trust.check_current(now, skew_s)
    log.debug("event=trust_list_verified %s", trust.log_fields)
    return trust


def _verified(data: bytes, root: PublicKey) -> TrustList:
    if not isinstance(data, bytes) or len(data) > MAX_TRUST_LIST_BYTES:
        raise FormatError(f"a trust list is at most {MAX_TRUST_LIST_BYTES} bytes")
    outer = cbor.loads(data, "the trust list")
    if (
        not isinstance(outer, list)
        or len(outer) != 2
        or not all(isinstance(x, bytes) for x in outer)
    ):
        raise FormatError("the trust list must be [signed: bstr, content: bstr]")
    signed_bytes, content = outer
    version, nbf, exp, digest = _meta(_signed_payload(signed_bytes, root))
    if hashlib.sha256(content).digest() != digest:
        raise FormatError("the content does not match its signed SHA-256")
    return TrustList(
        version,
        dt.datetime.fromtimestamp(nbf, dt.UTC),
        dt.datetime.fromtimestamp(exp, dt.UTC),
        digest.hex(),
        _keys(cbor.loads(content, "the trust list's content")),
    )


def _signed_payload(signed_bytes: bytes, root: PublicKey) -> bytes:
    """Check the COSE_Sign1 of the list against the root; the payload, once the signature held."""
    signed = cbor.loads(signed_bytes, "the trust list's signed part")
    if not isinstance(signed, list) or len(signed) != _SIGNED_ITEMS:
        raise FormatError("the signed part must be [protected, {}, payload, signature]")
    protected, unprotected, payload, signature = signed
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise FormatError("the signed part's protected header and payload are byte strings")
    if unprotected != {}:
        raise FormatError("the signed part's unprotected header must be empty")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
        raise FormatError(f"the trust list's signature must be {SIGNATURE_LEN} bytes")
    header = Header.parse(protected, with_kid=True)
    if header.kid != root.kid or header.alg is not root.alg:
        raise FormatError(
            f"signed by {header.alg} key {header.kid.hex() if header.kid else '-'}, "
            f"not by the pinned root ({root.alg} {root.kid.hex()})"
        )
    # the signature before anything in the payload is believed
    if not root.verify(sig_structure(protected, TRUST_AAD, payload), signature):
        raise FormatError("the root signature does not verify (tampered or wrong root)")
    return payload


def _meta(payload: bytes) -> tuple[int, int, int, bytes]:
    """The signed payload's version, nbf, exp and content hash, checked."""
    meta = cbor.loads(payload, "the trust list's payload")
    if not isinstance(meta, dict) or set(meta) != {T_FORMAT, T_VERSION, T_NBF, T_EXP, T_SHA256}:
        raise FormatError("the payload must be exactly format, version, nbf, exp, sha256")
    if meta[T_FORMAT] != TRUST_FORMAT:
        raise FormatError(f"unknown trust list format {str(meta[T_FORMAT])[:32]!r}")
    version, nbf, exp, digest = meta[T_VERSION], meta[T_NBF], meta[T_EXP], meta[T_SHA256]
    if type(version) is not int or not 1 <= version <= MAX_TIME:
        raise FormatError("version must be a positive integer")
    for what, value in (("nbf", nbf), ("exp", exp)):
        if type(value) is not int or not 0 <= value <= MAX_TIME:
            raise FormatError(f"{what} must be seconds since 1970 up to year 9999")
    if nbf >= exp:
        raise FormatError("nbf must be before exp")
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise FormatError("sha256 must be 32 bytes")
    return version, nbf, exp, digest


def _keys(value: Any) -> tuple[TrustedKey, ...]:
    if not isinstance(value, list) or len(value) > MAX_KEYS:
        raise FormatError(f"the content must be an array of at most {MAX_KEYS} keys")
    keys: list[TrustedKey] = []
    seen: set[bytes] = set()
    for n, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {K_ALG, K_NAME, K_SPKI}:
            raise FormatError(f"key {n} must be exactly alg, name, spki")
        name, spki = entry[K_NAME], entry[K_SPKI]
        if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX or not name.isprintable():
            raise FormatError(f"key {n}: name must be 1-{NAME_MAX} printable characters")
        try:
            alg = Alg(entry[K_ALG])
        except ValueError:
            raise FormatError(f"key {n}: alg must be ES256 or SM2") from None
        if not isinstance(spki, bytes):
            raise FormatError(f"key {n}: spki must be a byte string")
        key = PublicKey.from_spki(spki, alg)  # KeyFormatError names the problem
        if spki in seen:
            raise FormatError(f"key {n} ({name}) is listed twice")
        seen.add(spki)
        keys.append(TrustedKey(key.kid, alg, spki, name))
    return tuple(keys)


def make_trust_list(
    keys: Sequence[PublicKey | tuple[PublicKey, str]],
    root_private_key: PrivateKey,
    version: int,
    not_before: int | dt.datetime,
    not_after: int | dt.datetime,
) -> bytes:
    """Build and sign a trust list (the development platform and the tests).

    :param keys: the platform keys, each alone (named ``"<alg> <kid hex>"``) or with a name
    :param root_private_key: the root key (ES256 for the pinned test root)
    :param version: the list's version, ≥ 1
    :param not_before: validity start, seconds since 1970 or an aware datetime
    :param not_after: validity end
    :raises FormatError: a value out of range or a malformed entry (the list is checked by
        parsing it back)
    """
    entries = []
    for item in keys:
        key, name = item if isinstance(item, tuple) else (item, f"{item.alg} {item.kid.hex()}")
        entries.append({K_ALG: str(key.alg), K_NAME: name, K_SPKI: key.spki})
    content = cbor.dumps(entries)
    payload = cbor.dumps(
        {
            T_FORMAT: TRUST_FORMAT,
            T_VERSION: version,
            T_NBF: _epoch(not_before),
            T_EXP: _epoch(not_after),
            T_SHA256: hashlib.sha256(content).digest(),
        }
    )
    protected = Header(root_private_key.alg, root_private_key.kid).to_bytes()
    signature = root_private_key.sign(sig_structure(protected, TRUST_AAD, payload))
    data = cbor.dumps([cbor.dumps([protected, {}, payload, signature]), content])
    try:
        _verified(data, root_private_key.public_key)
    except KeyFormatError as exc:
        raise FormatError(str(exc)) from None
    return data


def _epoch(value: int | dt.datetime) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise FormatError("trust list dates must be aware datetimes")
        return int(value.timestamp())
    return value


def save_trust_list(
    store: Store, data: bytes, root_public_key_pem: bytes, now: float, *, production: bool = False
) -> TrustList:
    """Verify a trust list and keep it in the offline store (the previous one is kept too).

    :param store: the open store
    :param data: the list's bytes
    :param root_public_key_pem: the pinned root key
    :param now: the wall clock
    :param production: a production terminal: TEST KEYS are refused (:func:`parse_trust_list`)
    :raises TrustListError: the list does not verify, or holds a TEST KEY in production
    :raises QrRefused: ``stale_trust_list``: the list is not current
    :raises StoreError: an older version than the stored one, or the database failed
    """
    trust = parse_trust_list(data, root_public_key_pem, now, production=production)
    store.trust.save(data, trust.version, int(trust.not_after.timestamp()))
    log.info("event=trust_list_saved %s", trust.log_fields)
    return trust


def load_stored_trust_list(
    store: Store, root_public_key_pem: bytes, now: float, *, production: bool = False
) -> TrustList | None:
    """Load the store's trust list and verify it again (a file edited behind the terminal's
    back is refused like any other tampered list).

    :param store: the open store
    :param root_public_key_pem: the pinned root key
    :param now: the wall clock
    :param production: a production terminal: TEST KEYS are refused (:func:`parse_trust_list`)
    :returns: the list, or ``None`` when none was ever saved
    :raises TrustListError: the stored list no longer verifies, or holds a TEST KEY in
        production
    :raises QrRefused: ``stale_trust_list``: the stored list is not current
    :raises StoreError: the database failed
    """
    data = store.trust.load()
    if data is None:
        return None
    return parse_trust_list(data, root_public_key_pem, now, production=production)
