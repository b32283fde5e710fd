"""The platform's keys folder: what signs its lists and what it shares with its terminals.

::

    KEYS/                              folder 0700, every private file 0600
      deny-signing.pem                 Ed25519 (PKCS #8): signs deny-list snapshots and deltas
      deny-signing.pub.pem             its public half, for terminals ([store] deny_public_key)
      trust-root.pem                   ES256 or SM2 (PKCS #8): signs the e-card trust list
      trust-root.pub.pem               its public half, for terminals ([ecard] trust_root_key)
      qr-<alg>-<kid hex>.pem           the platform's QR signing keys (ES256, SM2), one per key
      pepper.key                       the deployment's deny-list pepper, 64 hex digits
      token.key                        derives e-card tokens from card identifiers, 64 hex
      audience.toml                    identity audience keys and the scenarios they serve
      payment-roots.toml               the issuers' TAC roots, optional (payment_keys.py)
      operator.token                   the operator's bearer token of GET /v1/clearing, 64 hex

``audience.toml``::

    [hotel-test]
    key = "…64 hex…"
    scenarios = ["hotel", "hospital"]

:meth:`PlatformKeys.create` makes fresh keys (or copies the public TEST KEYS of
``drivers/virtual/test_keys/`` for development); :meth:`PlatformKeys.load` refuses a private
file that others can read.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ecard.errors import KeyFormatError
from ecard.keys import Alg, PrivateKey, load_private_key
from platform_server.errors import PlatformConfigError
from platform_server.payment_keys import (
    PAYMENT_ROOTS,
    PaymentRoots,
    load_payment_roots,
    payment_roots_of_test_keys,
)
from sync.wire import HEX64, SCENARIO

__all__ = [
    "DEFAULT_IDENTITY_SCENARIOS",
    "AudienceKey",
    "PlatformKeys",
]

DENY_KEY = "deny-signing.pem"
DENY_PUBLIC = "deny-signing.pub.pem"
ROOT_KEY = "trust-root.pem"
ROOT_PUBLIC = "trust-root.pub.pem"
PEPPER = "pepper.key"
TOKEN_KEY = "token.key"
AUDIENCE = "audience.toml"
OPERATOR_TOKEN = "operator.token"
QR_PREFIX = "qr-"
STAGED_SUFFIX = ".new"
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIR_MODE = 0o700
SECRET_LEN = 32
DEFAULT_IDENTITY_SCENARIOS = ("hotel", "hospital")
# the public TEST KEYS of the repository (drivers/virtual/test_keys/) that `init --test-keys` copies
TEST_ROOT = "qr-root-test.pem"
TEST_QR = ("qr-platform-es256-test.pem", "qr-platform-sm2-test.pem")
TEST_AUDIENCE = ("hotel-test", "qr-audience-hotel-test.key")
TEST_CARD_ROOTS = "test-roots.toml"

_QR_FILE = re.compile(r"qr-(es256|sm2)-([0-9a-f]{16})\.pem")
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class AudienceKey:
    """A key identity blobs are sealed to, and the scenarios whose terminals receive it.

    :param kid: the audience key id (names the key in sealed identities)
    :param key: the 32-byte AES key
    :param scenarios: scenarios allowed to read identity with it
    """

    kid: str
    key: bytes = field(repr=False)
    scenarios: tuple[str, ...]


@dataclass(frozen=True)
class PlatformKeys:
    """The platform's keys, loaded from (or created in) a keys folder.

    :param directory: the folder
    :param deny_key: signs deny lists (Ed25519)
    :param root: signs trust lists (the terminals' pinned root)
    :param qr: the QR signing keys by kid (hex)
    :param pepper: the deny-list pepper shared with every terminal
    :param token_key: derives e-card tokens
    :param audience: identity audience keys
    :param payments: the TAC roots of ``payment-roots.toml``, ``None`` without the file
    """

    directory: Path
    deny_key: Ed25519PrivateKey = field(repr=False)
    root: PrivateKey
    qr: dict[str, PrivateKey]
    pepper: bytes = field(repr=False)
    token_key: bytes = field(repr=False)
    audience: tuple[AudienceKey, ...]
    payments: PaymentRoots | None = None

    @classmethod
    def load(cls, directory: str | Path) -> PlatformKeys:
        """Read a keys folder.

        :param directory: the folder ``platform init`` made
        :raises PlatformConfigError: a missing, unreadable, too open or malformed file
        """
        folder = Path(directory)
        if not folder.is_dir():
            raise PlatformConfigError(
                f"no keys folder {folder}: run `sscard platform init --keys {folder}`"
            )
        deny = serialization.load_pem_private_key(_private(folder / DENY_KEY), password=None)
        if not isinstance(deny, Ed25519PrivateKey):
            raise PlatformConfigError(f"{folder / DENY_KEY} is not an Ed25519 private key")
        qr: dict[str, PrivateKey] = {}
        for path in sorted(folder.glob(f"{QR_PREFIX}*.pem")):
            found = _QR_FILE.fullmatch(path.name)
            if found is None:
                raise PlatformConfigError(f"{path}: QR key files are named qr-<alg>-<kid>.pem")
            key = _ecard_key(path)
            if key.kid.hex() != found.group(2) or str(key.alg).lower() != found.group(1):
                raise PlatformConfigError(f"{path}: the file name does not match the key inside")
            qr[key.kid.hex()] = key
        return cls(
            directory=folder,
            deny_key=deny,
            root=_ecard_key(folder / ROOT_KEY),
            qr=qr,
            pepper=_hex_secret(folder / PEPPER),
            token_key=_hex_secret(folder / TOKEN_KEY),
            audience=_audience(folder / AUDIENCE),
            payments=load_payment_roots(folder),
        )

    @classmethod
    def create(
        cls,
        directory: str | Path,
        *,
        test_keys: str | Path | None = None,
        identity_scenarios: Iterable[str] = DEFAULT_IDENTITY_SCENARIOS,
    ) -> PlatformKeys:
        """Make a keys folder: fresh keys, or the repository's public TEST KEYS.

        With ``test_keys`` the trust root, both QR keys and the hotel audience key are copied
        from that folder (development and tests only: those keys are public); the deny-list
        key, the pepper and the token key are always fresh.

        :param directory: the folder; created 0700, and it must not hold keys yet
        :param test_keys: the folder of the TEST KEYS (``drivers/virtual/test_keys``), or ``None``
        :param identity_scenarios: the scenarios the audience key serves
        :raises PlatformConfigError: the folder already holds keys, or a file cannot be written
        """
        folder = Path(directory)
        if folder.exists() and any(folder.iterdir()):
            raise PlatformConfigError(f"{folder} is not empty: keys are never overwritten")
        scenarios = tuple(identity_scenarios)
        try:
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            deny = Ed25519PrivateKey.generate()
            _write(folder / DENY_KEY, _pkcs8(deny), PRIVATE_MODE)
            if test_keys is not None:
                source = Path(test_keys)
                root = _ecard_key(source / TEST_ROOT, check_mode=False)
                qr_keys = [_ecard_key(source / name, check_mode=False) for name in TEST_QR]
                kid, key_file = TEST_AUDIENCE
                audience = [(kid, _hex_secret(source / key_file, check_mode=False))]
                roots = payment_roots_of_test_keys(source / TEST_CARD_ROOTS)
                _write(folder / PAYMENT_ROOTS, roots, PRIVATE_MODE)
            else:
                root = PrivateKey.generate(Alg.ES256)
                qr_keys = [PrivateKey.generate(Alg.ES256), PrivateKey.generate(Alg.SM2)]
                audience = [("identity-1", secrets.token_bytes(SECRET_LEN))]
            _write(folder / ROOT_KEY, root.to_pem(), PRIVATE_MODE)
            for key in qr_keys:
                _write(folder / qr_file_name(key), key.to_pem(), PRIVATE_MODE)
            _write(folder / PEPPER, secrets.token_hex(SECRET_LEN).encode() + b"\n", PRIVATE_MODE)
            _write(folder / TOKEN_KEY, secrets.token_hex(SECRET_LEN).encode() + b"\n", PRIVATE_MODE)
            operator = secrets.token_hex(SECRET_LEN).encode() + b"\n"
            _write(folder / OPERATOR_TOKEN, operator, PRIVATE_MODE)
            lines = ["# identity audience keys and the scenarios whose terminals receive them\n"]
            for kid, secret in audience:
                quoted = ", ".join(f'"{s}"' for s in scenarios)
                lines.append(f'\n[{kid}]\nkey = "{secret.hex()}"\nscenarios = [{quoted}]\n')
            _write(folder / AUDIENCE, "".join(lines).encode(), PRIVATE_MODE)
            _write(folder / DENY_PUBLIC, _spki_pem(deny), PUBLIC_MODE)
            _write(folder / ROOT_PUBLIC, root.public_key.to_pem(), PUBLIC_MODE)
        except OSError as exc:
            raise PlatformConfigError(f"cannot write the keys to {folder}: {exc}") from exc
        return cls.load(folder)

    def operator_token(self) -> bytes | None:
        """The operator's bearer token (``operator.token``), ``None`` when the folder has none
        (a folder made before it existed: operator routes are then closed).

        :raises PlatformConfigError: a file others can read, or not 64 hex digits
        """
        path = self.directory / OPERATOR_TOKEN
        if not path.exists():
            return None
        return _hex_secret(path)

    @property
    def identity_scenarios(self) -> frozenset[str]:
        """Every scenario some audience key serves (those may read identity).

        :raises: nothing
        """
        return frozenset(s for key in self.audience for s in key.scenarios)

    def terminal_secrets(self, scenarios: Iterable[str]) -> dict[str, Any]:
        """The secrets a terminal with these scenarios receives, before
        :func:`platform_server.terminals.encrypt_secrets` (``GET /v1/secrets``).

        :param scenarios: the terminal's scenarios
        :raises: nothing
        """
        wanted = set(scenarios)
        audience = {key.kid: key.key for key in self.audience if wanted & set(key.scenarios)}
        return {
            "pepper": self.pepper.hex(),
            "deny_public_key": _spki_pem(self.deny_key).decode("ascii"),
            "trust_root_key": self.root.public_key.to_pem().decode("ascii"),
            "audience_keys": {kid: key.hex() for kid, key in audience.items()},
        }

    def sign_deny(self, data: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature over a deny-list file.

        :param data: the file's exact bytes
        :raises: nothing
        """
        return self.deny_key.sign(data)

    def stage_qr_key(self, alg: Alg) -> tuple[PrivateKey, Path]:
        """Make a new QR signing key and write it under a staging name (``….pem.new``, which
        :meth:`load` ignores) until :meth:`commit_qr_key`.

        :param alg: ES256 or SM2
        :raises PlatformConfigError: the file cannot be written
        """
        key = PrivateKey.generate(alg)
        staged = self.directory / (qr_file_name(key) + STAGED_SUFFIX)
        try:
            _write(staged, key.to_pem(), PRIVATE_MODE)
        except OSError as exc:
            raise PlatformConfigError(f"cannot write {staged}: {exc.strerror}") from exc
        return key, staged

    def commit_qr_key(self, staged: Path, key: PrivateKey) -> None:
        """Give a staged key its final name, once the database lists it.

        :param staged: what :meth:`stage_qr_key` returned
        :param key: the key
        :raises PlatformConfigError: the rename failed
        """
        try:
            staged.rename(self.directory / qr_file_name(key))
        except OSError as exc:
            raise PlatformConfigError(f"cannot rename {staged}: {exc.strerror}") from exc
        self.qr[key.kid.hex()] = key


def qr_file_name(key: PrivateKey) -> str:
    """The file name of a QR signing key: ``qr-<alg>-<kid hex>.pem``.

    :param key: the key
    :raises: nothing
    """
    return f"{QR_PREFIX}{str(key.alg).lower()}-{key.kid.hex()}.pem"


def _private(path: Path, *, check_mode: bool = True) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise PlatformConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if check_mode and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PlatformConfigError(
            f"{path} has mode {stat.S_IMODE(mode):04o}; a private key must be 0600 "
            f"(chmod 600 {path})"
        )
    return data


def _ecard_key(path: Path, *, check_mode: bool = True) -> PrivateKey:
    try:
        return load_private_key(_private(path, check_mode=check_mode))
    except KeyFormatError as exc:
        raise PlatformConfigError(f"{path}: {exc}") from None


def _hex_secret(path: Path, *, check_mode: bool = True) -> bytes:
    text = _private(path, check_mode=check_mode).decode("ascii", errors="replace").strip()
    if not HEX64.fullmatch(text):
        raise PlatformConfigError(f"{path} must hold 64 lowercase hex digits (32 bytes)")
    return bytes.fromhex(text)


def _audience(path: Path) -> tuple[AudienceKey, ...]:
    try:
        data = tomllib.loads(_private(path).decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlatformConfigError(f"{path}: not valid TOML: {exc}") from None
    keys = []
    for kid, table in data.items():
        if not _KID.fullmatch(kid) or not isinstance(table, dict):
            raise PlatformConfigError(f"{path}: [{kid}] must be a table named by a key id")
        if set(table) != {"key", "scenarios"}:
            raise PlatformConfigError(f"{path}: [{kid}] has exactly key and scenarios")
        key, scenarios = table["key"], table["scenarios"]
        if not isinstance(key, str) or not HEX64.fullmatch(key):
            raise PlatformConfigError(f"{path}: [{kid}] key must be 64 lowercase hex digits")
        if not isinstance(scenarios, list) or not all(
            isinstance(s, str) and SCENARIO.fullmatch(s) for s in scenarios
        ):
            raise PlatformConfigError(f"{path}: [{kid}] scenarios must be a list of names")
        keys.append(AudienceKey(kid, bytes.fromhex(key), tuple(scenarios)))
    return tuple(keys)


def _pkcs8(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a file with its mode from the start, durably, never over an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)  # O_CREAT's mode is filtered by the umask
