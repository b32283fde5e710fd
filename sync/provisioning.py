"""The terminal's secrets from the platform (``GET /v1/secrets``, docs/sync.md): opened with a
key derived from the terminal key, checked, and written to their files atomically.

::

    key       = HKDF-SHA256(terminal key, salt = b"", info = b"sscard secrets/1" ‖ terminal id, 32)
    plaintext = AES-256-GCM-Decrypt(key, iv, ct)          -- no associated data
              = {"pepper": hex, "deny_public_key": PEM, "trust_root_key": PEM,
                 "audience_keys": {kid: 64 hex}}

A file is written only when its content changes: a temporary file in the same folder (mode
0600), written, fsynced, renamed over the old one, and the folder fsynced, so a power cut
leaves the old file or the new one, never half of one. Values never reach a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sync.errors import SyncProtocolError
from sync.wire import MalformedBody, load_json

__all__ = [
    "SECRETS_ALG",
    "SECRETS_INFO",
    "TerminalSecrets",
    "open_secrets",
    "secrets_key",
    "write_private_file",
]

SECRETS_ALG = "A256GCM"
SECRETS_INFO = b"sscard secrets/1"
IV_LEN = 12
MIN_PEPPER_LEN = 16
MAX_SECRETS_BYTES = 64 * 1024  # four keys and a pepper: a few kilobytes
AUDIENCE_KEY_LEN = 32
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class TerminalSecrets:
    """The opened secrets document.

    :param pepper: the deny-list pepper (≥ 16 bytes)
    :param deny_public_key: the deny-list signing key, PEM (Ed25519)
    :param trust_root_key: the trust-list root key, PEM
    :param audience_keys: QR audience key id → 32-byte key (only the terminal's scenarios')
    """

    pepper: bytes = field(repr=False)
    deny_public_key: bytes
    trust_root_key: bytes
    audience_keys: Mapping[str, bytes] = field(repr=False, default_factory=dict)


def secrets_key(terminal_key: bytes, terminal_id: str) -> bytes:
    """The AES-256 key of the secrets document.

    :param terminal_key: the terminal's 32-byte key
    :param terminal_id: the terminal id
    :raises: nothing
    """
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"",
        info=SECRETS_INFO + terminal_id.encode("utf-8"),
    ).derive(terminal_key)


def open_secrets(document: Any, terminal_key: bytes, terminal_id: str) -> TerminalSecrets:
    """Decrypt and check the platform's secrets document.

    :param document: the parsed JSON answer ``{"alg", "iv", "ct"}``
    :param terminal_key: the terminal's key
    :param terminal_id: the terminal id
    :raises SyncProtocolError: a malformed document, one that does not decrypt with this
        terminal's key, or a plaintext off the contract
    """
    if not isinstance(document, dict) or set(document) != {"alg", "iv", "ct"}:
        raise SyncProtocolError('the secrets answer must be {"alg", "iv", "ct"}')
    if document["alg"] != SECRETS_ALG:
        raise SyncProtocolError(f"secrets alg must be {SECRETS_ALG}, got {document['alg']!r}")
    iv, ct = _b64(document["iv"], "iv"), _b64(document["ct"], "ct")
    if len(iv) != IV_LEN:
        raise SyncProtocolError(f"secrets iv must be {IV_LEN} bytes")
    try:
        plaintext = AESGCM(secrets_key(terminal_key, terminal_id)).decrypt(iv, ct, None)
    except InvalidTag:
        raise SyncProtocolError(
            "the secrets do not decrypt with this terminal's key (wrong key or terminal id)"
        ) from None
    try:
        data = load_json(plaintext, max_bytes=MAX_SECRETS_BYTES)
    except MalformedBody as exc:
        raise SyncProtocolError(f"the decrypted secrets are not usable JSON: {exc}") from None
    expected = {"pepper", "deny_public_key", "trust_root_key", "audience_keys"}
    if not isinstance(data, dict) or set(data) != expected:
        raise SyncProtocolError(f"the secrets must hold exactly {sorted(expected)}")
    pepper = _hex(data["pepper"], "pepper")
    if len(pepper) < MIN_PEPPER_LEN:
        raise SyncProtocolError(f"the pepper must be at least {MIN_PEPPER_LEN} bytes")
    deny_pem = _pem(data["deny_public_key"], "deny_public_key")
    try:
        deny_key = load_pem_public_key(deny_pem)
    except ValueError:
        raise SyncProtocolError("deny_public_key is not a readable PEM public key") from None
    if not isinstance(deny_key, Ed25519PublicKey):
        raise SyncProtocolError("deny_public_key must be an Ed25519 public key")
    # the root may be an SM2 key, which cryptography does not load: the trust list is
    # verified against it (ecard) before anything it signs is used
    root_pem = _pem(data["trust_root_key"], "trust_root_key")
    keys = _audience_keys(data["audience_keys"])
    return TerminalSecrets(pepper, deny_pem, root_pem, keys)


def audience_keys_toml(keys: Mapping[str, bytes]) -> bytes:
    """The audience-key file (``kid = "64 hex"`` lines, TOML) that
    :func:`terminal.ecard_flow.load_audience_keys` reads.

    :param keys: key id → 32-byte key
    :raises: nothing
    """
    lines = [f"{json.dumps(kid)} = {json.dumps(key.hex())}\n" for kid, key in sorted(keys.items())]
    return "".join(lines).encode("ascii")


def write_private_file(path: Path, data: bytes) -> bool:
    """Replace a file atomically with mode 0600, when its content changes.

    :param path: the file; its folder must exist
    :param data: the new content
    :returns: ``True`` when the file was written, ``False`` when it already held ``data``
    :raises OSError: the folder is missing or not writable, or the disk failed
    """
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o077) == 0:
            return False
    except FileNotFoundError:
        pass
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return True


def _audience_keys(value: object) -> dict[str, bytes]:
    if not isinstance(value, dict):
        raise SyncProtocolError("audience_keys must be an object of key id → hex")
    keys: dict[str, bytes] = {}
    for kid, hex_key in value.items():
        if not kid or not kid.isascii() or not kid.isprintable():
            raise SyncProtocolError("an audience key id must be printable ASCII")
        key = _hex(hex_key, "an audience key")
        if len(key) != AUDIENCE_KEY_LEN:
            raise SyncProtocolError(f"an audience key must be {AUDIENCE_KEY_LEN} bytes")
        keys[kid] = key
    return keys


def _b64(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise SyncProtocolError(f"secrets {name} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SyncProtocolError(f"secrets {name} is not base64") from None


def _hex(value: object, name: str) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not set(value) <= _HEX:
        raise SyncProtocolError(f"{name} must be hex text")
    return bytes.fromhex(value)


def _pem(value: object, name: str) -> bytes:
    if not isinstance(value, str) or "-----BEGIN PUBLIC KEY-----" not in value:
        raise SyncProtocolError(f"{name} must be a PEM public key")
    if not value.isascii():
        raise SyncProtocolError(f"{name} must be ASCII PEM text")
    return value.encode("ascii")
