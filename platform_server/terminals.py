"""Terminals: their registration and HMAC keys, heartbeats, and the secrets each receives.

A terminal's key is 32 random bytes: the terminal keeps it in a 0600 file, the platform in its
database (it needs the key itself to check HMAC signatures; docs/sync.md §3). Secrets travel
encrypted to that key (docs/sync.md §7)::

    key = HKDF-SHA256(terminal key, salt = b"", info = b"sscard secrets/1" ‖ terminal id, 32)
    {"alg": "A256GCM", "iv": b64(12 random bytes), "ct": b64(AES-256-GCM(key, iv, plaintext))}
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, insert, select, update

from platform_server.db import journal_state, terminal, terminal_key
from platform_server.errors import AlreadyExists, InvalidInput, NotFound
from sync.auth import Credentials
from sync.wire import REGION, SCENARIO, TERMINAL_ID, quote

__all__ = [
    "SECRETS_INFO",
    "Credentials",
    "HeartbeatReport",
    "TerminalInfo",
    "add",
    "check_terminal_id",
    "decrypt_secrets",
    "encrypt_secrets",
    "heartbeat",
    "info",
    "key_for",
    "list_terminals",
    "parse_scenarios",
]

log = logging.getLogger(__name__)

SECRETS_INFO = b"sscard secrets/1"
KEY_LEN = 32
IV_LEN = 12
VERSION_MAX = 64
BACKLOG_MAX = 2**63 - 1
CLOCK_OFFSET_MAX_S = 1e9
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,64}")
HEARTBEAT_KEYS = frozenset(
    {"software_version", "deny_version", "trust_version", "backlog", "clock_offset_s"}
)


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    """A registered terminal as the operator sees it.

    :param terminal_id: its id
    :param region: its six-digit region code
    :param scenarios: the scenarios it serves
    :param last_heartbeat_at: the platform's clock at its last heartbeat
    :param clock_offset_s: the offset it reported then
    :param heartbeat: the last report
    :param ack_seq: the journal acknowledgement cursor
    :param rows: journal rows stored
    """

    terminal_id: str
    region: str
    scenarios: tuple[str, ...]
    last_heartbeat_at: float | None
    clock_offset_s: float | None
    heartbeat: dict[str, Any] | None
    ack_seq: int
    rows: int


@dataclass(frozen=True, slots=True)
class HeartbeatReport:
    """A terminal's heartbeat (``POST /v1/heartbeat``).

    :param software_version: the terminal's software version
    :param deny_version: its active deny-list version, ``None`` without a list
    :param trust_version: its active trust-list version, ``None`` without a list
    :param backlog: journal rows not yet acknowledged
    :param clock_offset_s: its estimate of (platform clock − its clock)
    """

    software_version: str
    deny_version: int | None
    trust_version: int | None
    backlog: int
    clock_offset_s: float

    @classmethod
    def parse(cls, data: object) -> HeartbeatReport:
        """Check a decoded heartbeat body.

        :param data: the JSON document
        :raises InvalidInput: missing or unknown keys, or a value of the wrong type or range
        """
        if not isinstance(data, dict) or data.keys() != HEARTBEAT_KEYS:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InvalidInput(f"a heartbeat has exactly {sorted(HEARTBEAT_KEYS)}, got {got}")
        version = data["software_version"]
        if not isinstance(version, str) or not _PRINTABLE.fullmatch(version):
            raise InvalidInput("software_version must be 1-64 printable ASCII characters")
        lists = [_whole(data["deny_version"]), _whole(data["trust_version"])]
        for name, value in zip(("deny_version", "trust_version"), lists, strict=True):
            if data[name] is not None and (value is None or not 1 <= value <= BACKLOG_MAX):
                raise InvalidInput(f"{name} must be a positive integer or null")
        backlog, offset = _whole(data["backlog"]), data["clock_offset_s"]
        if backlog is None or not 0 <= backlog <= BACKLOG_MAX:
            raise InvalidInput("backlog must be a non-negative integer")
        if (
            not isinstance(offset, int | float)
            or isinstance(offset, bool)
            or not -CLOCK_OFFSET_MAX_S <= offset <= CLOCK_OFFSET_MAX_S
        ):
            raise InvalidInput(f"clock_offset_s must be a number within ±{CLOCK_OFFSET_MAX_S:g}")
        return cls(version, lists[0], lists[1], backlog, float(offset))


def _whole(value: object) -> int | None:
    """A JSON integer (``15`` or ``15.0``, as JSON Schema counts them), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def check_terminal_id(terminal_id: str) -> str:
    """Check a terminal id: 1–32 letters, digits, ``-`` or ``_`` (as ``[terminal] id``).

    :param terminal_id: the id
    :raises InvalidInput: any other text
    """
    if not isinstance(terminal_id, str) or not TERMINAL_ID.fullmatch(terminal_id):
        raise InvalidInput("a terminal id is 1-32 letters, digits, '-' or '_'", "invalid_terminal")
    return terminal_id


def parse_scenarios(text: str | Iterable[str]) -> tuple[str, ...]:
    """Scenario names from ``transit,gate`` (or a list), checked and de-duplicated in order.

    :param text: comma-separated names, or names
    :raises InvalidInput: an empty list or a malformed name
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    cleaned = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not cleaned or not all(SCENARIO.fullmatch(n) for n in cleaned):
        raise InvalidInput(
            "scenarios are lower-case names separated by commas (transit,gate)", "invalid_scenario"
        )
    return cleaned


def add(
    conn: Connection, terminal_id: str, scenarios: tuple[str, ...], region: str, now: float
) -> Credentials:
    """Register a terminal with a fresh key.

    :param conn: a connection in a write transaction
    :param terminal_id: its id
    :param scenarios: the scenarios it serves (decides identity access and audience keys)
    :param region: its six-digit region code (its default catalogue region)
    :param now: the platform's clock
    :raises InvalidInput: a malformed id, scenario or region
    :raises AlreadyExists: the id is taken
    """
    check_terminal_id(terminal_id)
    parse_scenarios(scenarios)
    if not isinstance(region, str) or not REGION.fullmatch(region):
        raise InvalidInput("a region code is 6 digits", "invalid_region")
    found = conn.execute(select(terminal.c.id).where(terminal.c.id == terminal_id)).first()
    if found is not None:
        raise AlreadyExists(f"terminal {terminal_id!r} is already registered")
    conn.execute(
        insert(terminal).values(
            id=terminal_id, region=region, scenarios=json.dumps(list(scenarios)), created_at=now
        )
    )
    credentials = Credentials(terminal_id, f"k{secrets.token_hex(4)}", secrets.token_bytes(KEY_LEN))
    conn.execute(
        insert(terminal_key).values(
            terminal_id=terminal_id,
            key_id=credentials.key_id,
            secret=credentials.key,
            created_at=now,
        )
    )
    conn.execute(
        insert(journal_state).values(
            terminal_id=terminal_id, first_seq=None, ack_seq=0, max_seq=0, row_count=0
        )
    )
    log.info("event=terminal_added terminal=%s key_id=%s", terminal_id, credentials.key_id)
    return credentials


def key_for(conn: Connection, terminal_id: str, key_id: str) -> bytes | None:
    """A terminal's key that is not revoked, for checking a signature.

    :param conn: a connection
    :param terminal_id: the terminal id header
    :param key_id: the key id header
    :raises: nothing beyond the database's own errors
    """
    secret = conn.execute(
        select(terminal_key.c.secret).where(
            terminal_key.c.terminal_id == terminal_id,
            terminal_key.c.key_id == key_id,
            terminal_key.c.revoked_at.is_(None),
        )
    ).scalar()
    return None if secret is None else bytes(secret)


def info(conn: Connection, terminal_id: str) -> TerminalInfo:
    """One terminal.

    :param conn: a connection
    :param terminal_id: its id
    :raises NotFound: ``unknown_terminal``
    """
    found = list_terminals(conn, terminal_id)
    if not found:
        raise NotFound(f"terminal {terminal_id!r} is not registered", "unknown_terminal")
    return found[0]


def list_terminals(conn: Connection, terminal_id: str | None = None) -> list[TerminalInfo]:
    """Every terminal (or one), by id.

    :param conn: a connection
    :param terminal_id: one terminal, or ``None``
    :raises: nothing beyond the database's own errors
    """
    query = (
        select(terminal, journal_state.c.ack_seq, journal_state.c.row_count)
        .join(journal_state, journal_state.c.terminal_id == terminal.c.id)
        .order_by(terminal.c.id)
    )
    if terminal_id is not None:
        query = query.where(terminal.c.id == terminal_id)
    return [
        TerminalInfo(
            terminal_id=row.id,
            region=row.region,
            scenarios=tuple(json.loads(row.scenarios)),
            last_heartbeat_at=row.last_heartbeat_at,
            clock_offset_s=row.clock_offset_s,
            heartbeat=json.loads(row.heartbeat) if row.heartbeat else None,
            ack_seq=row.ack_seq,
            rows=row.row_count,
        )
        for row in conn.execute(query)
    ]


def heartbeat(conn: Connection, terminal_id: str, report: HeartbeatReport, now: float) -> None:
    """Store a terminal's heartbeat and the platform's time of it.

    :param conn: a connection in a write transaction
    :param terminal_id: the signer
    :param report: the report
    :param now: the platform's clock
    :raises: nothing beyond the database's own errors
    """
    document = {
        "software_version": report.software_version,
        "deny_version": report.deny_version,
        "trust_version": report.trust_version,
        "backlog": report.backlog,
        "clock_offset_s": report.clock_offset_s,
    }
    conn.execute(
        update(terminal)
        .where(terminal.c.id == terminal_id)
        .values(
            last_heartbeat_at=now,
            clock_offset_s=report.clock_offset_s,
            heartbeat=json.dumps(document),
        )
    )
    log.info(
        "event=heartbeat terminal=%s deny_version=%s trust_version=%s backlog=%d offset_s=%.3f",
        quote(terminal_id),
        report.deny_version,
        report.trust_version,
        report.backlog,
        report.clock_offset_s,
    )


def _secrets_key(terminal_key_bytes: bytes, terminal_id: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_LEN,
        salt=b"",
        info=SECRETS_INFO + terminal_id.encode("utf-8"),
    )
    return hkdf.derive(terminal_key_bytes)


def encrypt_secrets(
    plaintext: Mapping[str, Any], terminal_key_bytes: bytes, terminal_id: str
) -> dict[str, str]:
    """Encrypt secrets to a terminal's key.

    :param plaintext: :meth:`platform_server.keys.PlatformKeys.terminal_secrets`
    :param terminal_key_bytes: the key the request was signed with
    :param terminal_id: the terminal (bound into the key derivation)
    :raises: nothing
    """
    iv = secrets.token_bytes(IV_LEN)
    data = json.dumps(dict(plaintext), sort_keys=True).encode("utf-8")
    ct = AESGCM(_secrets_key(terminal_key_bytes, terminal_id)).encrypt(iv, data, None)
    return {
        "alg": "A256GCM",
        "iv": base64.b64encode(iv).decode("ascii"),
        "ct": base64.b64encode(ct).decode("ascii"),
    }


def decrypt_secrets(
    envelope: Mapping[str, Any], terminal_key_bytes: bytes, terminal_id: str
) -> dict[str, Any]:
    """Decrypt a secrets envelope (the terminal's side, and the tests').

    :param envelope: ``{"alg", "iv", "ct"}``
    :param terminal_key_bytes: the terminal's key
    :param terminal_id: the terminal id
    :raises InvalidInput: another algorithm, bad base64, or a ciphertext that does not decrypt
    """
    if envelope.get("alg") != "A256GCM":
        raise InvalidInput("secrets must be A256GCM")
    try:
        iv = base64.b64decode(str(envelope["iv"]), validate=True)
        ct = base64.b64decode(str(envelope["ct"]), validate=True)
        data = AESGCM(_secrets_key(terminal_key_bytes, terminal_id)).decrypt(iv, ct, None)
    except (KeyError, ValueError, InvalidTag):
        raise InvalidInput("the secrets do not decrypt with this terminal's key") from None
    result: dict[str, Any] = json.loads(data)
    return result
