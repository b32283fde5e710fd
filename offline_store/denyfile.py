"""The deny-list file format ``sscard-deny/1`` and its detached Ed25519 signature.

A JSON Lines file: a header line, then one entry per line — a whole *snapshot*, or a *delta*
of ``add``/``remove`` operations on a named base version. Parsing is strict: every problem is a
:class:`DenyListError` naming its line (line 1 is the header). The signature is the raw 64-byte
Ed25519 signature over the file's exact bytes, in ``FILE.sig``. docs/offline-store.md §3 is the
normative description; :mod:`offline_store.denylist` applies parsed files to the store.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from offline_store.errors import DenyListError, DenySignatureError

__all__ = [
    "DENY_FORMAT",
    "SIG_SUFFIX",
    "DenyHeader",
    "DenyListKind",
    "DenyReason",
    "Verifier",
    "accept_unsigned",
    "date_from_int",
    "delta_entry",
    "ed25519_verifier",
    "entry_lines",
    "line_error",
    "load_verifier",
    "snapshot_entry",
]

log = logging.getLogger(__name__)

DENY_FORMAT = "sscard-deny/1"
SIG_SUFFIX = ".sig"
ED25519_SIGNATURE_LEN = 64

Verifier = Callable[[bytes, bytes | None], None]
"""``verify(file_bytes, signature_or_None)``: returns if the file may be imported, else raises."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PEPPER_CHECK = re.compile(r"[0-9a-f]{16}")
_HEADER_REQUIRED = {"format", "kind", "version", "created", "entries"}
_HEADER_OPTIONAL = {"base_version", "pepper_check"}
_SNAPSHOT_KEYS = {"hash", "reason", "effective"}
# The layout docs/offline-store.md §3.3 recommends, parsed without json.loads (twice as fast);
# any other valid JSON line takes the general path and gives the same result.
_SNAPSHOT_LINE = re.compile(
    rb'\{"hash": ?"([0-9a-f]{64})", ?"reason": ?"([a-z]+)", '
    rb'?"effective": ?"([0-9]{4}-[0-9]{2}-[0-9]{2})"\}[ \t\r\n]*'
)
# the delta lines the platform writes, in its key order (anything else takes the JSON path)
_ADD_LINE = re.compile(
    rb'\{"op": ?"add", ?"hash": ?"([0-9a-f]{64})", ?"reason": ?"([a-z]+)", '
    rb'?"effective": ?"([0-9]{4}-[0-9]{2}-[0-9]{2})"\}[ \t\r\n]*'
)
_REMOVE_LINE = re.compile(rb'\{"op": ?"remove", ?"hash": ?"([0-9a-f]{64})"\}[ \t\r\n]*')
_ADD_KEYS = {"op", "hash", "reason", "effective"}
_REMOVE_KEYS = {"op", "hash"}


class DenyReason(StrEnum):
    """Why a card is on the list."""

    LOST = "lost"  # 挂失: reported lost
    CANCELLED = "cancelled"  # 注销: the card was cancelled
    REPLACED = "replaced"  # 补换: a new card replaced it
    FRAUD = "fraud"  # used fraudulently


class DenyListKind(StrEnum):
    """What a deny-list file holds."""

    SNAPSHOT = "snapshot"
    DELTA = "delta"


@dataclass(frozen=True, slots=True)
class DenyHeader:
    """The first line of a deny-list file.

    :param kind: snapshot or delta
    :param version: the version the file creates
    :param base_version: the version a delta applies to
    :param created: when the platform created the file (timezone-aware)
    :param entries: the number of entry lines that follow
    :param pepper_check: :func:`offline_store.identity.pepper_check` of the platform's pepper
    """

    kind: DenyListKind
    version: int
    base_version: int | None
    created: datetime.datetime
    entries: int
    pepper_check: str | None = None

    @classmethod
    def parse(cls, line: bytes) -> DenyHeader:
        """Parse and check the header line.

        :param line: line 1 of the file
        :raises DenyListError: naming line 1 and what is wrong
        """
        obj = _json_object(line, 1)
        missing = sorted(_HEADER_REQUIRED - obj.keys())
        unknown = sorted(obj.keys() - _HEADER_REQUIRED - _HEADER_OPTIONAL)
        if missing or unknown:
            raise line_error(1, f"header keys: missing {missing}, unknown {unknown}")
        if obj["format"] != DENY_FORMAT:
            raise line_error(1, f"format must be {DENY_FORMAT!r}, got {obj['format']!r}")
        try:
            kind = DenyListKind(obj["kind"])
        except ValueError:
            raise line_error(
                1, f"kind must be 'snapshot' or 'delta', got {obj['kind']!r}"
            ) from None
        version = _positive_int(obj["version"], 1, "version")
        entries = obj["entries"]
        if not _is_int(entries) or entries < 0:
            raise line_error(1, "entries must be a non-negative integer")
        base = obj.get("base_version")
        if kind is DenyListKind.DELTA:
            base = _positive_int(base, 1, "base_version")
            if base >= version:
                raise line_error(1, f"a delta's base_version ({base}) must be below its version")
        elif base is not None:
            raise line_error(1, "a snapshot has no base_version")
        check = obj.get("pepper_check")
        if check is not None and (not isinstance(check, str) or not _PEPPER_CHECK.fullmatch(check)):
            raise line_error(1, "pepper_check must be 16 lowercase hex characters")
        return cls(kind, version, base, _created(obj["created"]), entries, check)


def ed25519_verifier(public_key_pem: bytes) -> Verifier:
    """A verifier that accepts a file only with a valid detached Ed25519 signature.

    :param public_key_pem: the platform's deny-list public key (PEM, SubjectPublicKeyInfo)
    :raises DenySignatureError: the PEM does not hold an Ed25519 public key
    """
    try:
        key = load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise DenySignatureError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise DenySignatureError("the deny-list signing key must be an Ed25519 public key")

    def verify(data: bytes, signature: bytes | None) -> None:
        if signature is None:
            raise DenySignatureError(f"the deny list has no detached signature (FILE{SIG_SUFFIX})")
        if len(signature) != ED25519_SIGNATURE_LEN:
            raise DenySignatureError(
                f"the signature file must hold the {ED25519_SIGNATURE_LEN}-byte Ed25519 "
                f"signature, it holds {len(signature)} bytes"
            )
        try:
            key.verify(signature, data)
        except InvalidSignature:
            raise DenySignatureError(
                "the deny list's signature does not verify with the platform key"
            ) from None

    return verify


def load_verifier(public_key_file: str | Path) -> Verifier:
    """:func:`ed25519_verifier` for a PEM file.

    :param public_key_file: the platform's deny-list public key (PEM)
    :raises DenySignatureError: unreadable, or not an Ed25519 public key
    """
    try:
        pem = Path(public_key_file).read_bytes()
    except OSError as exc:
        raise DenySignatureError(
            f"cannot read the public key {public_key_file}: {exc.strerror}"
        ) from exc
    return ed25519_verifier(pem)


def accept_unsigned(data: bytes, signature: bytes | None) -> None:
    """A verifier for development that accepts any file, signed or not, and logs a warning.

    :param data: the file's bytes (unused)
    :param signature: the detached signature, if any (unused)
    :raises: nothing
    """
    log.warning(
        "event=deny_import_unsigned bytes=%d signature_present=%s", len(data), signature is not None
    )


def entry_lines(lines: io.BytesIO, expected: int) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, line) for the entry lines, checking them against the header count.

    :param lines: the file, positioned after the header
    :param expected: the header's ``entries``
    :raises DenyListError: more or fewer entry lines than ``expected``
    """
    count = 0
    for line_no, line in enumerate(lines, start=2):
        if count == expected:
            if not line.strip():
                raise line_error(line_no, "empty line after the last entry")
            raise line_error(line_no, f"more entry lines than the header's count ({expected})")
        count += 1
        yield line_no, line
    if count != expected:
        raise DenyListError(f"the file has {count} entry lines, the header says {expected}")


def snapshot_entry(line: bytes, line_no: int) -> tuple[bytes, str, int]:
    """Parse a snapshot entry line into (hash bytes, reason, effective as YYYYMMDD).

    :param line: the line
    :param line_no: its number in the file, for messages
    :raises DenyListError: naming the line
    """
    fast = _SNAPSHOT_LINE.fullmatch(line)
    if fast is not None:
        digest, reason, effective = fast.groups()
        return (
            binascii.a2b_hex(digest),
            _reason(reason.decode("ascii"), line_no),
            _effective(effective.decode("ascii"), line_no),
        )
    obj = _json_object(line, line_no)
    if obj.keys() != _SNAPSHOT_KEYS:
        raise _keys_error(line_no, obj, _SNAPSHOT_KEYS)
    return (
        _hash(obj["hash"], line_no),
        _reason(obj["reason"], line_no),
        _effective(obj["effective"], line_no),
    )


def delta_entry(line: bytes, line_no: int) -> tuple[str, bytes, str, int]:
    """Parse a delta entry line into (op, hash bytes, reason, effective as YYYYMMDD); a
    ``remove`` has an empty reason and effective 0.

    :param line: the line
    :param line_no: its number in the file, for messages
    :raises DenyListError: naming the line
    """
    fast = _REMOVE_LINE.fullmatch(line)
    if fast is not None:
        return "remove", binascii.a2b_hex(fast.group(1)), "", 0
    fast = _ADD_LINE.fullmatch(line)
    if fast is not None:
        digest, reason, effective = fast.groups()
        return (
            "add",
            binascii.a2b_hex(digest),
            _reason(reason.decode("ascii"), line_no),
            _effective(effective.decode("ascii"), line_no),
        )
    obj = _json_object(line, line_no)
    op = obj.get("op")
    if op == "add":
        if obj.keys() != _ADD_KEYS:
            raise _keys_error(line_no, obj, _ADD_KEYS)
        return (
            op,
            _hash(obj["hash"], line_no),
            _reason(obj["reason"], line_no),
            _effective(obj["effective"], line_no),
        )
    if op == "remove":
        if obj.keys() != _REMOVE_KEYS:
            raise _keys_error(line_no, obj, _REMOVE_KEYS)
        return op, _hash(obj["hash"], line_no), "", 0
    raise line_error(line_no, f"op must be 'add' or 'remove', got {op!r}")


def line_error(line_no: int, problem: str) -> DenyListError:
    """The error for a bad line: ``line N: problem``.

    :param line_no: the line number (1 is the header)
    :param problem: what is wrong, without personal data
    :raises: nothing
    """
    return DenyListError(f"line {line_no}: {problem}")


def _json_object(line: bytes, line_no: int) -> dict[str, Any]:
    if not line.strip():
        raise line_error(line_no, "empty line")
    try:
        # decoded first: json.loads(bytes) would quietly drop a byte-order mark
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise line_error(line_no, "not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise line_error(line_no, f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:  # json.loads recurses once per level: "[[[[…" thousands deep
        raise line_error(line_no, "not JSON (nested too deep)") from None
    if not isinstance(obj, dict):
        raise line_error(line_no, "not a JSON object")
    return obj


def _keys_error(line_no: int, obj: dict[str, Any], expected: set[str]) -> DenyListError:
    missing = sorted(expected - obj.keys())
    unknown = sorted(obj.keys() - expected)
    return line_error(line_no, f"keys: missing {missing}, unknown {unknown}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: object, line_no: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise line_error(line_no, f"{name} must be a positive integer")
    return value


def _created(value: object) -> datetime.datetime:
    if not isinstance(value, str):
        raise line_error(1, "created must be an ISO 8601 date-time string")
    try:
        created = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise line_error(1, f"created is not an ISO 8601 date-time: {value!r}") from None
    if created.tzinfo is None:
        raise line_error(1, "created must carry a UTC offset (e.g. +08:00)")
    return created


def _hash(value: object, line_no: int) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise line_error(line_no, "hash must be 64 lowercase hex characters")
    return bytes.fromhex(value)


def _reason(value: object, line_no: int) -> str:
    if value not in _REASONS:
        raise line_error(line_no, f"reason must be one of {sorted(_REASONS)}, got {value!r}")
    return str(value)


_REASONS = frozenset(str(r) for r in DenyReason)


def _effective(value: object, line_no: int) -> int:
    if not isinstance(value, str):
        raise line_error(line_no, "effective must be a date string YYYY-MM-DD")
    try:
        return _date_to_int(value)
    except ValueError:
        raise line_error(line_no, f"effective is not a date YYYY-MM-DD: {value!r}") from None


@functools.lru_cache(maxsize=8192)
def _date_to_int(value: str) -> int:
    # a list holds few distinct dates: parse each once. fromisoformat alone would also take
    # "20261120" and week dates, so the shape is checked first.
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(value)
    day = datetime.date.fromisoformat(value)
    return day.year * 10000 + day.month * 100 + day.day


def date_from_int(value: int) -> datetime.date:
    """Turn a stored ``YYYYMMDD`` integer back into a date.

    :param value: e.g. ``20261120``
    :raises ValueError: not a calendar date
    """
    return datetime.date(value // 10000, value // 100 % 100, value % 100)
