"""Writing a recovery plan back: a new store file beside the damaged one, swapped in
atomically (docs/offline-store.md §5.8).

SQLite refuses to write where a damaged page is, so nothing is edited in place. The new file
(``<store>.recovering``) is made with the current schema; the damaged file is attached to it
read-only in effect (only ``SELECT`` touches it) and every table it can still read is copied,
a group of tables that belong together (the deny list's four, the catalogue and its meta keys)
all or nothing: a group that cannot be read is left empty, to be provisioned again by the next
sync, and the report names it. The journal gets the rows the store still vouches for (their
columns copied byte for byte), the re-fetched rows (their hashes unchanged; a payment sealed
again with the journal key) and, when seqs are lost, the declared gap that names them
(:func:`offline_store.chain.declared_gap`). The new file's chain is verified before anything
is swapped.

The swap: the new file is folded into one file (rollback-journal mode, no ``-wal``) and
synced; the damaged file's write-ahead log is folded into it and emptied (so no page of it can
ever be applied to the new file); the damaged file gets a second name, ``<store>.damaged-<UTC
time>`` (a hard link: it is never deleted, nor changed but for that log); then
``rename(2)`` puts the new file in its place and the folder is synced. A crash before the
rename leaves the old file in place, after it the new one: nothing is lost either way, and a
later recovery starts again from whichever is there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from offline_store.chain import GENESIS_HASH, JournalRow, declared_gap
from offline_store.db import LOCK_SUFFIX, StoreDb, open_database
from offline_store.errors import JournalError, StoreError
from offline_store.journal import LOST_IN
from offline_store.payment import seal_object
from offline_store.recovery import RecoveryPlan, seq_runs
from offline_store.store import Store

__all__ = ["RECOVERING_SUFFIX", "TABLE_GROUPS", "RebuildReport", "rebuild_store"]

log = logging.getLogger(__name__)

RECOVERING_SUFFIX = ".recovering"
DAMAGED_SUFFIX = ".damaged-"
#: the tables copied together, all or none, by what the operator calls them; the meta keys
#: that describe a group go when it does (a catalogue ETag without its catalogue would make
#: the next sync skip it)
TABLE_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("deny list", ("deny_version", "deny_entry", "deny_undo", "deny_import"),
     ("sync.deny_current_at",)),
    ("catalogue", ("catalogue",), ("catalogue.", "sync.catalogue_etag")),
    ("trust list", ("trust_list",), ()),
    ("sync state", ("meta",), ()),
    ("replay cache", ("replay",), ()),
    ("access audit", ("audit",), ()),
    ("day counters", ("day_count",), ()),
    ("open purchases", ("payment_open", "payment_day"), ()),
)  # fmt: skip
_SYNCED_GROUPS = frozenset({"deny list", "catalogue", "trust list", "sync state"})


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild wrote.

    :param path: the store file, now the new one
    :param damaged: the damaged file's new name (kept, never deleted)
    :param rows: journal rows in the new file (kept + re-fetched + the gap row)
    :param gap_seq: the declared gap's seq, ``None`` when nothing was lost
    :param unreadable: the table groups that could not be read and are left empty
    """

    path: Path
    damaged: Path
    rows: int
    gap_seq: int | None
    unreadable: tuple[str, ...]

    @property
    def resynced(self) -> tuple[str, ...]:
        """The unreadable groups the next sync provisions again (the rest stay empty)."""
        return tuple(g for g in self.unreadable if g in _SYNCED_GROUPS)


def rebuild_store(
    store: Store,
    plan: RecoveryPlan,
    *,
    terminal_id: str,
    journal_key: bytes | None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], int] = time.monotonic_ns,
) -> RebuildReport:
    """Write ``plan`` into a new store file and swap it in for the damaged one.

    :param store: the damaged store, open (its owner lock keeps every other process out)
    :param plan: :func:`offline_store.recovery.plan_recovery` for this store
    :param terminal_id: the terminal, for the gap row (the platform checks it is the signer)
    :param journal_key: the journal key: re-fetched payment objects are sealed with it
    :param clock: wall clock (the gap row's time, the damaged file's new name)
    :param monotonic: monotonic clock, nanoseconds (the gap row's)
    :raises JournalError: a re-fetched payment and no journal key, or the new file does not
        verify (nothing was swapped)
    :raises StoreError: the new file could not be written, or the damaged file's write-ahead
        log could not be folded in (nothing was swapped; the new file is removed)
    """
    path = store.path
    fresh_path = path.with_name(path.name + RECOVERING_SUFFIX)
    _remove_recovering(fresh_path)
    aead = AESGCM(journal_key) if journal_key is not None else None
    try:
        fresh = open_database(fresh_path)
        try:
            unreadable, rows, gap_seq = _fill(
                fresh,
                damaged=path,
                plan=plan,
                terminal_id=terminal_id,
                aead=aead,
                clock=clock,
                monotonic=monotonic,
            )
            _check(fresh, journal_key)
            with fresh.read() as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            fresh.close()
        _fsync(fresh_path)
        _fold_wal(store.database, path)
    except BaseException:
        _remove_recovering(fresh_path)
        raise
    fresh_path.with_name(fresh_path.name + LOCK_SUFFIX).unlink(missing_ok=True)
    stamp = dt.datetime.fromtimestamp(clock(), dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    damaged = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}")
    os.link(path, damaged)
    _fsync(path.parent)
    os.replace(fresh_path, path)  # the one step that swaps: before it the old file, after the new
    _fsync(path.parent)
    log.warning(
        "event=store_rebuilt path=%s damaged=%s rows=%d gap_seq=%s unreadable=%s",
        path, damaged, rows, gap_seq, ",".join(g.replace(" ", "_") for g in unreadable) or "-",
    )  # fmt: skip
    return RebuildReport(path, damaged, rows, gap_seq, tuple(unreadable))


def _fill(
    fresh: StoreDb,
    *,
    damaged: Path,
    plan: RecoveryPlan,
    terminal_id: str,
    aead: AESGCM | None,
    clock: Callable[[], float],
    monotonic: Callable[[], int],
) -> tuple[list[str], int, int | None]:
    """Copy what can be read, then write the journal; the unreadable groups, the journal's
    rows and the gap row's seq."""
    fresh.conn.execute("ATTACH DATABASE ? AS damaged", (str(damaged),))
    try:
        unreadable = _copy_tables(fresh)
        with fresh.write() as conn:
            _drop_meta_keys(conn, unreadable)
            state = conn.execute(
                "SELECT last_seq, anchor_seq, anchor_hash FROM damaged.journal_state"
            ).fetchone()
            if state is None:
                raise StoreError(f"{damaged}: the journal's state row is missing")
            last_seq, anchor_seq, anchor_hash = state
            if plan.lost and plan.lost[-1] != last_seq:
                raise JournalError(
                    f"the plan loses seqs up to {plan.lost[-1]}, the journal ends at {last_seq}"
                )
            head_seq, head_hash = _copy_journal(conn, plan, anchor_seq, anchor_hash, aead)
            gap_seq = None
            if plan.lost:
                gap = declared_gap(
                    seq=last_seq + 1,
                    first_lost=plan.lost[0],
                    prev_hash=head_hash,
                    terminal_id=terminal_id,
                    row_uuid=str(uuid.uuid4()),
                    wall_time_us=round(clock() * 1_000_000),
                    monotonic_ns=monotonic(),
                )
                _insert(conn, gap, uploaded=False, payment_ct=None)
                gap_seq, head_seq, head_hash = gap.seq, gap.seq, gap.hash
            # the seqs the gap rows now held declare lost (``journal`` is the new file's)
            (lost_held,) = conn.execute(LOST_IN, (anchor_seq, head_seq)).fetchone()
            conn.execute(
                "UPDATE main.journal_state SET last_seq = ?, last_hash = ?, anchor_seq = ?, "
                "anchor_hash = ?, acked_seq = ?, lost_held = ? WHERE id = 1",
                (
                    max(head_seq, last_seq),
                    head_hash,
                    anchor_seq,
                    anchor_hash,
                    _acked(conn, anchor_seq, plan.lost),
                    lost_held,
                ),
            )
            (rows,) = conn.execute("SELECT COUNT(*) FROM main.journal").fetchone()
    finally:
        fresh.conn.execute("DETACH DATABASE damaged")
    return unreadable, int(rows), gap_seq


def _copy_tables(fresh: StoreDb) -> list[str]:
    """Copy every group of tables that can be read, each in a transaction of its own (after
    SQLite meets a damaged page, nothing more is written in that transaction); the names of
    the groups that cannot be read."""
    unreadable = []
    for name, tables, _ in TABLE_GROUPS:
        try:
            with fresh.write() as conn:
                for table in tables:
                    columns = _shared_columns(conn, table)
                    conn.execute(
                        f"INSERT INTO main.{table} ({columns}) "
                        f"SELECT {columns} FROM damaged.{table}"
                    )
        except StoreError as exc:
            log.warning(
                "event=store_table_unreadable tables=%s error=%r", ",".join(tables), str(exc)
            )
            unreadable.append(name)
    return unreadable


def _drop_meta_keys(conn: sqlite3.Connection, unreadable: list[str]) -> None:
    """The meta keys that describe a group left empty go with it."""
    for name, _, keys in TABLE_GROUPS:
        for key in keys if name in unreadable else ():
            pattern = key + "*" if key.endswith(".") else key
            conn.execute("DELETE FROM main.meta WHERE key GLOB ?", (pattern,))


def _copy_journal(
    conn: sqlite3.Connection,
    plan: RecoveryPlan,
    anchor_seq: int,
    anchor_hash: str,
    aead: AESGCM | None,
) -> tuple[int, str]:
    """The kept and salvaged rows copied column for column, the re-fetched ones inserted;
    the last row's seq and hash."""
    columns = _shared_columns(conn, "journal")
    for first, last in [(anchor_seq + 1, plan.kept_to), *seq_runs(plan.salvaged)]:
        conn.execute(
            f"INSERT INTO main.journal ({columns}) SELECT {columns} FROM damaged.journal "
            "WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, last),
        )
    for row in plan.fetched:
        _insert_fetched(conn, row, aead)
    head_seq = max([plan.kept_to, *plan.salvaged, *(row.seq for row in plan.fetched)])
    return head_seq, _hash_of(conn, head_seq, anchor_seq, anchor_hash)


def _shared_columns(conn: sqlite3.Connection, table: str) -> str:
    """The columns of ``table`` in both files (an older damaged file may lack newer ones)."""
    new = [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")]
    old = {r[1] for r in conn.execute(f"PRAGMA damaged.table_info({table})")}
    return ", ".join(c for c in new if c in old)


def _hash_of(conn: sqlite3.Connection, seq: int, anchor_seq: int, anchor_hash: str) -> str:
    """The hash of kept row ``seq``, or the anchor's when nothing after the anchor is kept."""
    if seq <= anchor_seq:
        return anchor_hash or GENESIS_HASH
    found = conn.execute("SELECT hash FROM main.journal WHERE seq = ?", (seq,)).fetchone()
    if found is None:
        raise JournalError(f"kept row {seq} could not be copied from the damaged file")
    return str(found[0])


def _insert_fetched(conn: sqlite3.Connection, row: JournalRow, aead: AESGCM | None) -> None:
    """A re-fetched row as the journal stores it (uploaded: the platform had it)."""
    payment_ct = None
    if row.payment is not None:
        if aead is None:
            raise JournalError(
                f"re-fetched row {row.seq} holds a payment: it needs the journal key"
            )
        payment_ct = seal_object(aead, row.seq, row.uuid, row.payment)
    _insert(conn, row, uploaded=True, payment_ct=payment_ct)


def _insert(
    conn: sqlite3.Connection, row: JournalRow, *, uploaded: bool, payment_ct: bytes | None
) -> None:
    conn.execute(
        "INSERT INTO main.journal (seq, uuid, wall_time_us, monotonic_ns, scenario, "
        "catalogue_item, credential_token, outcome, reason_code, amount, terminal_id, "
        "personal_fields, personal_ct, prev_hash, hash, uploaded, flags, ref_seq, lost, "
        "payment_sha256, payment_ct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?)",
        (
            row.seq, row.uuid, row.wall_time_us, row.monotonic_ns, row.scenario,
            row.catalogue_item, row.credential_token, row.outcome, row.reason_code, row.amount,
            row.terminal_id, json.dumps(list(row.personal_fields)), row.personal_ciphertext,
            row.prev_hash, row.hash, int(uploaded), json.dumps(list(row.flags)), row.ref_seq,
            None if row.lost is None else json.dumps(list(row.lost)), row.payment_sha256,
            payment_ct,
        ),
    )  # fmt: skip


def _acked(conn: sqlite3.Connection, anchor_seq: int, lost: tuple[int, ...]) -> int:
    """The new acknowledgement cursor: the row before the first not marked uploaded (the
    re-fetched rows are: the platform holds them), never inside the lost seqs."""
    (waiting,) = conn.execute(
        "SELECT MIN(seq) FROM main.journal WHERE seq > ? AND uploaded = 0", (anchor_seq,)
    ).fetchone()
    if waiting is None:
        (waiting,) = conn.execute(
            "SELECT COALESCE(MAX(seq), ?) + 1 FROM main.journal", (anchor_seq,)
        ).fetchone()
    acked = int(waiting) - 1
    if lost and lost[0] <= acked:
        acked = lost[0] - 1
    return max(acked, anchor_seq)


def _check(fresh: StoreDb, journal_key: bytes | None) -> None:
    """The new file must be sound before it replaces anything."""
    store = Store(
        fresh, journal_key=journal_key, pepper=None, journal_cap_rows=1,
        clock=time.time, monotonic=time.monotonic_ns,
    )  # fmt: skip
    report = store.journal.check_sound()
    if not report.ok:
        raise JournalError(
            f"the rebuilt file does not verify at seq {report.first_bad_seq}: {report.problem}; "
            "nothing was swapped"
        )


def _fold_wal(store_db: StoreDb, path: Path) -> None:
    """Fold the damaged file's write-ahead log into it and leave the log empty: the new file
    (rollback-journal mode) never reads a ``-wal``, and when the daemon turns it to WAL mode
    SQLite starts the log and its ``-shm`` index afresh; pages of the old file's log could
    never be applied to it."""
    try:
        busy, _, _ = store_db.fetch_one("PRAGMA wal_checkpoint(TRUNCATE)")
    except StoreError as exc:
        raise StoreError(f"{path}: its write-ahead log cannot be folded in ({exc}): nothing was "
                         "swapped") from exc  # fmt: skip
    wal = path.with_name(path.name + "-wal")
    if busy or (wal.exists() and wal.stat().st_size):
        raise StoreError(f"{wal} still holds pages after a checkpoint: nothing was swapped")


def _remove_recovering(fresh_path: Path) -> None:
    """A leftover of a recovery that did not finish: never the store itself."""
    for suffix in ("", "-wal", "-shm", "-journal", LOCK_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            fresh_path.with_name(fresh_path.name + suffix).unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
