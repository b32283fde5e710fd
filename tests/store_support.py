"""Helpers for the offline-store tests: a hand-set clock, test secrets, deny-list files
(``sscard-deny/1``) written line by line and signed with an Ed25519 key generated at test time
(no key file is committed), and a raw connection for tampering."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline_store import Verifier, ed25519_verifier

KEY = bytes(range(32))  # journal key of the tests
PEPPER = bytes(range(100, 132))  # deny-list pepper of the tests
NOON = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC).timestamp()
CREATED = "2026-11-29T08:00:00+08:00"
# card_hash("ssc:440100:D2143569X") under the pepper 00…0f (docs/offline-store.md §2.4)
TOKEN = "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"


class Clock:
    """A wall clock the test sets by hand (``clock.now += 60``)."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def raw(path: Path) -> sqlite3.Connection:
    """A second connection to a store file, as someone editing it behind the store's back."""
    return sqlite3.connect(path, isolation_level=None)


def h(n: int) -> str:
    """A deterministic stand-in for a card hash: 64 lowercase hex characters."""
    return hashlib.sha256(b"test card %d" % n).hexdigest()


def header(
    kind: str, version: int, entries: int, base: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A header line; ``extra`` overrides or adds keys."""
    head: dict[str, Any] = {
        "format": "sscard-deny/1",
        "kind": kind,
        "version": version,
        "created": CREATED,
        "entries": entries,
    }
    if base is not None:
        head["base_version"] = base
    head.update(extra)
    return head


def entry(n: int, reason: str = "lost", effective: str = "2026-11-20") -> dict[str, Any]:
    """A snapshot entry for test card ``n``."""
    return {"hash": h(n), "reason": reason, "effective": effective}


def add(n: int, reason: str = "fraud", effective: str = "2026-11-29") -> dict[str, Any]:
    """A delta ``add`` for test card ``n``."""
    return {"op": "add", "hash": h(n), "reason": reason, "effective": effective}


def remove(n: int) -> dict[str, Any]:
    """A delta ``remove`` for test card ``n``."""
    return {"op": "remove", "hash": h(n)}


def write_list(
    path: Path,
    head: Mapping[str, Any] | str,
    lines: Iterable[Mapping[str, Any] | str],
    key: Ed25519PrivateKey | None = None,
) -> Path:
    """Write a list (dicts as JSON, strings verbatim) and, with ``key``, its ``.sig``."""
    parts = [head if isinstance(head, str) else json.dumps(head)]
    parts += [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_bytes(("\n".join(parts) + "\n").encode("utf-8"))
    if key is not None:
        sign(path, key)
    return path


def sign(path: Path, key: Ed25519PrivateKey) -> Path:
    """Write ``path.sig``: the raw Ed25519 signature over the file's bytes."""
    sig = path.with_name(path.name + ".sig")
    sig.write_bytes(key.sign(path.read_bytes()))
    return sig


def public_pem(key: Ed25519PrivateKey) -> bytes:
    """The public half of a test key, PEM (SubjectPublicKeyInfo)."""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Platform:
    """A test platform: its signing key, the terminal's verifier for it, and list writers."""

    key: Ed25519PrivateKey
    verify: Verifier

    @classmethod
    def generate(cls) -> Platform:
        key = Ed25519PrivateKey.generate()
        return cls(key, ed25519_verifier(public_pem(key)))

    def snapshot(
        self,
        folder: Path,
        version: int,
        numbers: Iterable[Any],
        *,
        signed: bool = True,
        **extra: Any,
    ) -> Path:
        """A signed snapshot of test cards (numbers, or entry dicts)."""
        entries = [n if isinstance(n, dict) else entry(n) for n in numbers]
        return write_list(
            folder / f"deny-{version}.jsonl",
            header("snapshot", version, len(entries), **extra),
            entries,
            self.key if signed else None,
        )

    def delta(self, folder: Path, version: int, base: int, ops: list[dict[str, Any]]) -> Path:
        """A signed delta."""
        return write_list(
            folder / f"deny-{version}-delta.jsonl",
            header("delta", version, len(ops), base=base),
            ops,
            self.key,
        )


def write_old_journal_rows(path: Path, amounts: Iterable[int | None], *, version: int) -> None:
    """Make a store file of an earlier schema (``version`` migrations) holding journal rows as
    that release wrote them: no ``flags`` column, the record without a ``flags`` member.

    :param path: the new store file
    :param amounts: one transit row per amount, chained from the genesis hash
    :param version: the schema version the file is left at (1 or 2)
    """
    from offline_store.chain import GENESIS_HASH, JournalRow, chain_hash
    from offline_store.db import MIGRATIONS, open_database

    open_database(path, MIGRATIONS[:version]).close()
    prev = GENESIS_HASH
    with raw(path) as conn:
        for seq, amount in enumerate(amounts, 1):
            row = JournalRow(
                seq=seq,
                uuid=f"00000000-0000-4000-8000-{seq:012d}",
                monotonic_ns=seq,
                scenario="transit",
                catalogue_item="0301",
                credential_token=TOKEN,
                outcome="accept",
                reason_code="ok",
                amount=amount,
                personal_fields=(),
                prev_hash=prev,
                hash="",
                uploaded=False,
                terminal_id="T",
                wall_time_us=int((NOON + seq) * 1_000_000),
            )
            digest = chain_hash(prev, row.canonical())
            conn.execute(
                "INSERT INTO journal (seq, uuid, wall_time_us, monotonic_ns, scenario, "
                "catalogue_item, credential_token, outcome, reason_code, amount, terminal_id, "
                "personal_fields, personal_ct, prev_hash, hash, uploaded) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', NULL, ?, ?, 0)",
                (
                    seq,
                    row.uuid,
                    row.wall_time_us,
                    seq,
                    "transit",
                    "0301",
                    TOKEN,
                    "accept",
                    "ok",
                    amount,
                    "T",
                    prev,
                    digest,
                ),
            )
            conn.execute(
                "UPDATE journal_state SET last_seq = ?, last_hash = ? WHERE id = 1", (seq, digest)
            )
            prev = digest
