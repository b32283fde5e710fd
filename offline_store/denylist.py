"""The deny list (黑名单) in the store: versions, lookups, imports and rollback.

An import checks the file's signature over the exact bytes it then parses
(:mod:`offline_store.denyfile`), applies the whole file in one transaction and only then
switches the active version; a file that fails anywhere changes nothing. Importing a file again
changes nothing and says so. The version before the active one is kept, so one
:meth:`DenyList.rollback` is always possible after an import.

Entries are stored in generations: a snapshot fills a new generation (the previous one stays
for rollback); a delta edits the active generation in place and records the state it replaced
in ``deny_undo``. docs/offline-store.md §4 describes the tables and the rules.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline_store.db import StoreDb
from offline_store.denydelta import Incoming, Progress, apply_delta, stage_entries
from offline_store.denyfile import (
    SIG_SUFFIX,
    DenyHeader,
    DenyListKind,
    DenyReason,
    Verifier,
    date_from_int,
    line_error,
    snapshot_entry,
)
from offline_store.errors import DenyListError, DenySignatureError, DenyVersionError, StoreError
from offline_store.identity import is_card_hash

__all__ = ["DenyEntry", "DenyList", "DenyStatus", "ImportResult", "Progress"]

log = logging.getLogger(__name__)

CHECKPOINT_AFTER_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class DenyEntry:
    """A hit on the active list.

    :param card_hash: the card's keyed hash, 64 hex characters
    :param reason: why it is listed
    :param effective: the first day the entry applies
    :param version: the active list version it was found in
    """

    card_hash: str
    reason: DenyReason
    effective: datetime.date
    version: int


@dataclass(frozen=True, slots=True)
class DenyStatus:
    """What the store holds of the deny list.

    :param version: the active version, ``None`` before the first import
    :param previous: the version a rollback returns to, ``None`` when there is none
    :param entries: entries listed in the active version
    :param created: when the platform created the active version (its header), for staleness
    :param imported_at: when this terminal imported it (UTC)
    """

    version: int | None
    previous: int | None
    entries: int
    created: datetime.datetime | None
    imported_at: datetime.datetime | None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did.

    :param version: the file's version
    :param kind: snapshot or delta
    :param base_version: a delta's base version, ``None`` for a snapshot
    :param file_entries: entry lines in the file
    :param listed: entries listed in the active version afterwards
    :param already_applied: the file was imported before; nothing changed
    """

    version: int
    kind: DenyListKind
    base_version: int | None
    file_entries: int
    listed: int
    already_applied: bool


class DenyList:
    """The deny list of one store (``store.deny``).

    :param store_db: the open store
    :param clock: wall clock, seconds since the epoch
    :param pepper_check: the pepper check value of the store's pepper, ``None`` without one
    """

    def __init__(
        self, store_db: StoreDb, clock: Callable[[], float], pepper_check: str | None
    ) -> None:
        self._db = store_db
        self._clock = clock
        self._pepper_check = pepper_check
        self._active: tuple[int, int] | None = None  # (version, gen), cached for lookups
        self._refresh_active()

    def _refresh_active(self) -> None:
        found = self._db.fetch_one("SELECT version, gen FROM deny_version WHERE state = 'active'")
        self._active = (found[0], found[1]) if found else None

    # --- reads ------------------------------------------------------------------------------

    def lookup(self, card_hash: str, today: datetime.date | None = None) -> DenyEntry | None:
        """Find a card in the active version.

        :param card_hash: the card's keyed hash (:meth:`Store.card_hash`)
        :param today: the day to decide for; an entry effective after it is not (yet) a hit;
            default: today by the store's clock, local time
        :returns: the entry, or ``None`` when the card is not listed (or not yet), or no list
            was ever imported — :meth:`status` tells the two apart
        :raises StoreError: the hash is not 64 lowercase hex characters, or the card's entry
            is damaged (its reason or date does not decode)
        """
        if not is_card_hash(card_hash):
            raise StoreError("card_hash must be 64 lowercase hex characters")
        with self._db.read() as conn:
            if self._active is None:
                return None
            version, gen = self._active
            found = conn.execute(
                "SELECT reason, effective FROM deny_entry WHERE gen = ? AND card_hash = ?",
                (gen, bytes.fromhex(card_hash)),
            ).fetchone()
        if found is None:
            return None
        try:  # a damaged entry (a bad sector) is an error, never a silent "not listed"
            effective = date_from_int(found[1])
            reason = DenyReason(found[0])
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"deny list version {version}: the entry of this card is damaged ({exc}); "
                "import the list again"
            ) from exc
        day = today if today is not None else datetime.date.fromtimestamp(self._clock())
        if effective > day:
            return None
        return DenyEntry(card_hash, reason, effective, version)

    def status(self) -> DenyStatus:
        """The active and previous versions and the active entry count.

        :raises StoreError: the database failed
        """
        rows = self._db.fetch_all(
            "SELECT state, version, listed, created, imported_at FROM deny_version"
        )
        by_state = {row[0]: row for row in rows}
        active = by_state.get("active")
        previous = by_state.get("previous")
        if active is None:
            return DenyStatus(None, previous[1] if previous else None, 0, None, None)
        return DenyStatus(
            version=active[1],
            previous=previous[1] if previous else None,
            entries=active[2],
            created=datetime.datetime.fromisoformat(active[3]),
            imported_at=datetime.datetime.fromisoformat(active[4]),
        )

    # --- import -----------------------------------------------------------------------------

    def import_file(
        self, path: str | Path, verify: Verifier, progress: Progress | None = None
    ) -> ImportResult:
        """Import a snapshot or delta file and its detached signature ``FILE.sig``.

        :param path: the JSON Lines file
        :param verify: called with the file's bytes and the signature (``None`` when there is
            no ``.sig``) before anything is parsed or applied; raises to refuse the file
        :param progress: called with (entries applied, entries in the file) every 10 000
            entries and at the end
        :raises DenySignatureError: (from ``verify``) the signature is missing or wrong
        :raises DenyListError: the file cannot be read or does not parse; names the line
        :raises DenyVersionError: a delta on another base, or a list older than the active one
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DenyListError(f"cannot read deny list {path}: {exc.strerror}") from exc
        sig_path = path.with_name(path.name + SIG_SUFFIX)
        try:
            signature: bytes | None = sig_path.read_bytes()
        except FileNotFoundError:
            signature = None
        except OSError as exc:
            raise DenySignatureError(f"cannot read signature {sig_path}: {exc.strerror}") from exc
        try:
            return self.import_bytes(data, signature, verify, progress)
        except DenyListError as exc:
            raise type(exc)(f"{path}: {exc}") from exc

    def import_bytes(
        self,
        data: bytes,
        signature: bytes | None,
        verify: Verifier,
        progress: Progress | None = None,
    ) -> ImportResult:
        """Import a deny list held in memory (what :meth:`import_file` does after reading).

        The whole file is held once as ``bytes`` (Ed25519 signs the whole message); entries
        are streamed from it into SQLite in batches, never collected into Python lists.

        :param data: the file's bytes
        :param signature: the detached signature, or ``None``
        :param verify: see :meth:`import_file`
        :param progress: see :meth:`import_file`
        :raises DenyListError: see :meth:`import_file`
        """
        verify(data, signature)
        started = time.monotonic()
        digest = hashlib.sha256(data).hexdigest()
        lines = io.BytesIO(data)
        header = DenyHeader.parse(lines.readline())
        if (
            header.pepper_check is not None
            and self._pepper_check is not None
            and header.pepper_check != self._pepper_check
        ):
            raise DenyListError(
                f"the list was hashed with another pepper (its check {header.pepper_check}, "
                f"this terminal's {self._pepper_check}): no card on it could be found"
            )
        # the thread lock spans the commit and the cache refresh: no lookup meets a switched
        # version through a stale generation
        with self._db.lock:
            with self._db.write() as conn:
                done = self._already_applied(conn, header, digest)
                if done is not None:
                    log.info("event=deny_import_skipped version=%d", header.version)
                    return done
                listed = self._apply(conn, Incoming(header, lines, progress), digest)
            self._refresh_active()
        if header.entries >= CHECKPOINT_AFTER_ROWS:
            self._db.checkpoint()
        log.info(
            "event=deny_import version=%d kind=%s base=%s entries=%d listed=%d seconds=%.2f",
            header.version,
            header.kind,
            header.base_version,
            header.entries,
            listed,
            time.monotonic() - started,
        )
        return ImportResult(
            header.version, header.kind, header.base_version, header.entries, listed, False
        )

    def _already_applied(
        self, conn: sqlite3.Connection, header: DenyHeader, digest: str
    ) -> ImportResult | None:
        active = conn.execute(
            "SELECT version, sha256, listed FROM deny_version WHERE state = 'active'"
        ).fetchone()
        if active is None:
            if header.kind is DenyListKind.DELTA:
                raise DenyVersionError(
                    f"delta {header.version} needs base version {header.base_version}, but no "
                    "list was imported yet: import a snapshot first"
                )
            return None
        version, active_digest, listed = active
        same = ImportResult(
            header.version, header.kind, header.base_version, header.entries, listed, True
        )
        if header.version == version:
            if digest == active_digest:
                return same
            raise DenyVersionError(
                f"version {version} is already active with different content; a re-issued list "
                "must carry a new version"
            )
        if header.version < version:
            seen = conn.execute(
                "SELECT 1 FROM deny_import WHERE version = ? AND sha256 = ? "
                "AND rolled_back_at IS NULL",
                (header.version, digest),
            ).fetchone()
            if seen:
                return same
            raise DenyVersionError(
                f"version {header.version} is older than the active version {version}: refused "
                "(a replayed or out-of-order list)"
            )
        if header.kind is DenyListKind.DELTA and header.base_version != version:
            raise DenyVersionError(
                f"delta {header.version} applies to version {header.base_version}, but the "
                f"active version is {version}: nothing changed"
            )
        return None

    def _apply(
        self,
        conn: sqlite3.Connection,
        incoming: Incoming,
        digest: str,
    ) -> int:
        header = incoming.header
        active = conn.execute(
            "SELECT version, gen, listed FROM deny_version WHERE state = 'active'"
        ).fetchone()
        if header.kind is DenyListKind.SNAPSHOT:
            gen = conn.execute("SELECT COALESCE(MAX(gen), 0) + 1 FROM deny_version").fetchone()[0]
            # a generation left behind by an interrupted cleanup must not leak into this one
            conn.execute("DELETE FROM deny_entry WHERE gen = ?", (gen,))
            count = self._insert_snapshot(conn, gen, incoming)
            listed = count
        else:
            gen = active[1]
            listed = active[2] + apply_delta(conn, gen, incoming)
        self._retire(conn, active, gen)
        now = _utc_iso(self._clock())
        if active is not None:
            conn.execute(
                "UPDATE deny_version SET state = 'previous' WHERE version = ?", (active[0],)
            )
        conn.execute(
            "INSERT INTO deny_version (version, kind, base_version, gen, state, created, "
            "imported_at, file_entries, listed, sha256) "
            "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
            (
                header.version,
                str(header.kind),
                header.base_version,
                gen,
                header.created.isoformat(),
                now,
                header.entries,
                listed,
                digest,
            ),
        )
        conn.execute(
            "INSERT INTO deny_import (version, kind, base_version, sha256, created, file_entries, "
            "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                header.version,
                str(header.kind),
                header.base_version,
                digest,
                header.created.isoformat(),
                header.entries,
                now,
            ),
        )
        return listed

    def _retire(self, conn: sqlite3.Connection, active: Any, new_gen: int) -> None:
        """Drop what a rollback after this import can no longer reach (one level is kept)."""
        previous = conn.execute(
            "SELECT version, gen FROM deny_version WHERE state = 'previous'"
        ).fetchone()
        if previous is None:
            return
        # the active version becomes "previous": undoing it back to the old previous is moot
        conn.execute("DELETE FROM deny_undo WHERE version = ?", (active[0],))
        if previous[1] not in (active[1], new_gen):
            conn.execute("DELETE FROM deny_entry WHERE gen = ?", (previous[1],))
        conn.execute("DELETE FROM deny_version WHERE version = ?", (previous[0],))

    def _insert_snapshot(self, conn: sqlite3.Connection, gen: int, incoming: Incoming) -> int:
        # Entries are staged in file order, then inserted sorted by hash: appending to the
        # B-tree instead of inserting at random places is several times faster at 10^6+ rows.
        conn.execute("DROP TABLE IF EXISTS temp.deny_staging")
        conn.execute(
            "CREATE TEMP TABLE deny_staging (line INTEGER PRIMARY KEY, card_hash BLOB NOT NULL, "
            "reason TEXT NOT NULL, effective INTEGER NOT NULL)"
        )
        stage = (
            "INSERT INTO temp.deny_staging (line, card_hash, reason, effective) VALUES (?, ?, ?, ?)"
        )
        count = stage_entries(
            conn,
            stage,
            ((line_no, *snapshot_entry(line, line_no)) for line_no, line in incoming.entries()),
            incoming,
        )
        try:
            conn.execute(
                "INSERT INTO deny_entry (gen, card_hash, reason, effective) "
                "SELECT ?, card_hash, reason, effective FROM temp.deny_staging ORDER BY card_hash",
                (gen,),
            )
        except sqlite3.IntegrityError:
            second = conn.execute(
                "SELECT line FROM (SELECT line, ROW_NUMBER() OVER "
                "(PARTITION BY card_hash ORDER BY line) AS n FROM temp.deny_staging) "
                "WHERE n = 2 ORDER BY line LIMIT 1"
            ).fetchone()
            raise line_error(second[0], "the same hash appears twice in this snapshot") from None
        conn.execute("DROP TABLE temp.deny_staging")
        incoming.report(count)
        return count

    # --- rollback ---------------------------------------------------------------------------

    def rollback(self) -> int:
        """Switch back to the previous version and drop the active one.

        Only one level is kept: a second rollback in a row is refused until another import.

        :returns: the version now active
        :raises DenyVersionError: there is no previous version
        """
        with self._db.lock:
            with self._db.write() as conn:
                rows = conn.execute("SELECT state, version, gen, kind FROM deny_version").fetchall()
                by_state = {row[0]: row for row in rows}
                active, previous = by_state.get("active"), by_state.get("previous")
                if active is None or previous is None:
                    raise DenyVersionError("there is no previous deny-list version to roll back to")
                _, version, gen, kind = active
                if kind == DenyListKind.DELTA:
                    conn.execute(
                        "DELETE FROM deny_entry WHERE gen = ? AND card_hash IN (SELECT card_hash "
                        "FROM deny_undo WHERE version = ? AND old_reason IS NULL)",
                        (gen, version),
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO deny_entry (gen, card_hash, reason, effective) "
                        "SELECT ?, card_hash, old_reason, old_effective FROM deny_undo "
                        "WHERE version = ? AND old_reason IS NOT NULL",
                        (gen, version),
                    )
                    conn.execute("DELETE FROM deny_undo WHERE version = ?", (version,))
                elif gen != previous[2]:
                    conn.execute("DELETE FROM deny_entry WHERE gen = ?", (gen,))
                conn.execute("DELETE FROM deny_version WHERE version = ?", (version,))
                conn.execute(
                    "UPDATE deny_version SET state = 'active' WHERE version = ?", (previous[1],)
                )
                conn.execute(
                    "UPDATE deny_import SET rolled_back_at = ? WHERE version = ? "
                    "AND rolled_back_at IS NULL",
                    (_utc_iso(self._clock()), version),
                )
            self._active = (int(previous[1]), int(previous[2]))
        log.warning("event=deny_rollback from_version=%d to_version=%d", version, previous[1])
        return int(previous[1])


def _utc_iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()
