"""Root-key files: the national root keys a software SAM, the reference HSM service, the virtual
PSAM and the virtual cards derive from.

Format (TOML)::

    test_keys = true                      # must be true for anything under tests/
    terminal_number = "440100000001"      # 12 digits, the software SAM's 终端机编号

    [des]                                 # one table per algorithm: des, sm4
    irk = "<16-byte hex>"                 # internal-authentication root (IRK)
    rkssse = "<16-byte hex>"              # RKSSSE root (3.0 EF06 read key); optional
    dpk = "<16-byte hex>"                 # purchase root (MAC1/MAC2), [des] only; optional
    dtk = "<16-byte hex>"                 # medical TAC root, [des] only; optional

    [transit]                             # the transit key system's roots; optional
    dpk = "<16-byte hex>"                 # purchase root: card key = root ↓ issuer id ↓ serial
    dtk = "<16-byte hex>"                 # TAC root, diversified the same way
    key_version = 1                       # the version the cards hold these keys under

A key file must be readable by its owner only (mode 0600): anything looser is refused, since a
readable root key lets anyone forge cards.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu import crypto
from apdu.errors import SscardError
from apdu.records import CardAlgorithm
from config.tomlfile import read_toml

KEY_LENGTH = 16
TRANSIT_KEYS = {"dpk", "dtk", "key_version"}
ALGORITHM_TABLES = {"des": CardAlgorithm.DES, "sm4": CardAlgorithm.SM4}


class KeyFileError(SscardError):
    """A key file that is unreadable, too open, or malformed."""


@dataclass(frozen=True, slots=True)
class TransitRoots:
    """The transit key system's roots (spec doc §7.2): a card's keys hang two levels below,
    diversified by its issuer id, then by its card serial (:mod:`apdu.transit`).

    :param dpk: the purchase root (MAC1, MAC2)
    :param dtk: the TAC root
    :param key_version: the key version cards hold them under
    """

    dpk: bytes
    dtk: bytes
    key_version: int = 1

    def card_keys(self, factors: tuple[bytes, ...]) -> tuple[bytes, bytes]:
        """A card's DPK and DTK from its factors, card level first (serial, issuer id).

        :param factors: the card's purchase factors
        """
        order = factors[::-1]
        return (
            crypto.diversify_levels(crypto.Algorithm.DES, self.dpk, order),
            crypto.diversify_levels(crypto.Algorithm.DES, self.dtk, order),
        )


@dataclass(frozen=True, slots=True)
class RootKeys:
    """Root keys per algorithm.

    :param irk: algorithm → IRK root
    :param rkssse: algorithm → RKSSSE root (absent when the holder has none)
    :param dpk: the purchase (DPK) root, DES only, or ``None``
    :param terminal_number: the 12-digit terminal number to report
    :param test_keys: the file says these are test keys
    :param source: where the keys came from, for messages
    :param dtk: the medical TAC root, DES only, or ``None``
    :param transit: the transit roots, or ``None``
    """

    irk: dict[CardAlgorithm, bytes]
    rkssse: dict[CardAlgorithm, bytes] = field(default_factory=dict)
    dpk: bytes | None = None
    terminal_number: str = "000000000000"
    test_keys: bool = False
    source: str = ""
    dtk: bytes | None = None
    transit: TransitRoots | None = None

    def card_key(
        self,
        kind: str,
        algorithm: CardAlgorithm,
        city_code: str,
        historical: bytes,
        levels: int = 3,
    ) -> bytes | None:
        """Derive a card's key from a root over ``levels`` levels (spec §3.5).

        :param kind: ``irk`` or ``rkssse``
        :param algorithm: the card algorithm
        :param city_code: the card's six-digit city code
        :param historical: the card's ATR historical bytes
        :param levels: diversification levels (3 from a national root)
        :returns: the card key, or ``None`` when there is no such root
        :raises UnsupportedAlgorithm: for SSF33
        """
        roots = self.irk if kind == "irk" else self.rkssse
        root = roots.get(algorithm)
        if root is None:
            if algorithm == CardAlgorithm.SSF33:
                raise crypto.UnsupportedAlgorithm(crypto.Algorithm.SSF33)
            return None
        return crypto.card_key(crypto_algorithm(algorithm), root, city_code, historical, levels)


def crypto_algorithm(algorithm: CardAlgorithm) -> crypto.Algorithm:
    """The :mod:`apdu.crypto` enum member of a card algorithm.

    :param algorithm: the card algorithm
    """
    return crypto.Algorithm(algorithm.algorithm_id)


def _key(table: dict[str, Any], name: str, where: str) -> bytes:
    try:
        value = bytes.fromhex(str(table[name]))
    except ValueError:
        raise KeyFileError(f"{where}.{name} is not hexadecimal") from None
    if len(value) != KEY_LENGTH:
        raise KeyFileError(f"{where}.{name} must be {KEY_LENGTH} bytes, got {len(value)}")
    return value


def parse_root_keys(data: dict[str, Any], source: str = "") -> RootKeys:
    """Build root keys from a parsed key file.

    :param data: the TOML document
    :param source: where it came from, for messages
    :raises KeyFileError: for unknown tables or keys, or malformed values
    """
    allowed = {"test_keys", "terminal_number", "transit", *ALGORITHM_TABLES}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise KeyFileError(f"{source}: unknown keys {unknown}")
    irk: dict[CardAlgorithm, bytes] = {}
    rkssse: dict[CardAlgorithm, bytes] = {}
    dpk = dtk = None
    for name, algorithm in ALGORITHM_TABLES.items():
        table = data.get(name)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise KeyFileError(f"{source}: {name} must be a table [{name}]")
        optional = {"rkssse", "dpk", "dtk"} if algorithm == CardAlgorithm.DES else {"rkssse"}
        extra = sorted(set(table) - {"irk"} - optional)
        if extra or "irk" not in table:
            raise KeyFileError(
                f"{source}: [{name}] holds irk and optionally {' and '.join(sorted(optional))}"
                f"{f'; not {extra}' if extra else ''}"
            )
        irk[algorithm] = _key(table, "irk", f"{source} [{name}]")
        if "rkssse" in table:
            rkssse[algorithm] = _key(table, "rkssse", f"{source} [{name}]")
        if "dpk" in table:
            dpk = _key(table, "dpk", f"{source} [{name}]")
        if "dtk" in table:
            dtk = _key(table, "dtk", f"{source} [{name}]")
    if not irk:
        raise KeyFileError(f"{source}: no [des] or [sm4] keys")
    number = str(data.get("terminal_number", "000000000000"))
    if len(number) != 12 or not (number.isascii() and number.isdigit()):  # not "４４０１…"
        raise KeyFileError(f"{source}: terminal_number must be 12 digits")
    test_keys = data.get("test_keys", False)
    if not isinstance(test_keys, bool):  # "false" is a string, and a string is truthy
        raise KeyFileError(f"{source}: test_keys must be true or false")
    transit = _transit(data.get("transit"), source)
    return RootKeys(irk, rkssse, dpk, number, test_keys, source, dtk, transit)


def _transit(table: Any, source: str) -> TransitRoots | None:
    """The optional ``[transit]`` table: ``dpk``, ``dtk`` and ``key_version`` (1-255)."""
    if table is None:
        return None
    where = f"{source} [transit]"
    if not isinstance(table, dict) or set(table) - TRANSIT_KEYS or not {"dpk", "dtk"} <= set(table):
        raise KeyFileError(f"{where} holds dpk, dtk and optionally key_version")
    version = table.get("key_version", 1)
    if type(version) is not int or not 1 <= version <= 0xFF:
        raise KeyFileError(f"{where}: key_version must be 1-255")
    return TransitRoots(_key(table, "dpk", where), _key(table, "dtk", where), version)


def load_root_keys(path: str | Path, *, require_private: bool = True) -> RootKeys:
    """Read a key file, refusing one that others can read.

    :param path: the file
    :param require_private: refuse group/other permissions (always, outside tests)
    :raises KeyFileError: unreadable, too open, or malformed
    """
    path = Path(path)
    if require_private:
        _check_private(path, "key file")
    return parse_root_keys(read_toml(path, KeyFileError, what="key file"), str(path))


def read_secret(path: str | Path, what: str = "secret") -> str:
    """Read a one-line secret (a bearer token), refusing a file that others can read.

    :param path: the file
    :param what: what the file holds, for messages
    :raises KeyFileError: unreadable, too open, or empty
    """
    path = Path(path)
    _check_private(path, f"{what} file")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise KeyFileError(f"{what} file {path} is not UTF-8 text") from None
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise KeyFileError(f"{what} file {path} must hold one token on one line")
    return text


def _check_private(path: Path, what: str) -> None:
    """Refuse a file others may read or write, before anything is read from it."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except ValueError:  # the C library cannot be given a name with a NUL in it
        raise KeyFileError(f"cannot read {what} {str(path)!r}: a file name holds no NUL") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{what} {path} has mode {stat.S_IMODE(mode):04o}; it must be 0600 (chmod 600 {path})"
        )


def private_copy(source: Path, target: Path) -> Path:
    """Copy a key file with mode 0600 (git does not keep permissions).

    :param source: the committed file
    :param target: where to put the private copy
    """
    target.write_bytes(source.read_bytes())
    os.chmod(target, 0o600)
    return target
