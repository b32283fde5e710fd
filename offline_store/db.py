"""The database file: the owner lock, the connection's settings, the schema and its migrations,
and transactions.

One process owns a store: :func:`open_database` takes an exclusive ``flock`` on ``<path>.lock``
before it touches the file, and holds it until :meth:`StoreDb.close`. The connection runs in
WAL mode with ``synchronous=FULL`` (a committed transaction survives a power cut) and
``foreign_keys=ON``. It is used by one thread at a time: every operation takes
:attr:`StoreDb.lock`, so the store may be shared by the threads of its process.

The schema version is ``PRAGMA user_version``: the number of entries of :data:`MIGRATIONS`
applied. Each migration runs in its own transaction together with the version bump, so a crash
leaves the file at the previous version, never half-way. A file whose version is newer than this
code knows is refused (:class:`SchemaTooNew`), never downgraded. docs/offline-store.md §1 shows
the schema. A migration is given the transaction's :class:`sqlite3.Connection`: the store used
to hand it a sqlite-utils ``Database``, whose import (with numpy, pulled in whenever it is
installed) was about 25 MB of the daemon's resident memory for one ``execute`` method (issue 16:
≤ 60 MB idle).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from offline_store.errors import SchemaTooNew, StoreError, StoreLocked

__all__ = [
    "GENESIS_HASH",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "StoreDb",
    "migrate",
    "open_database",
]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
BUSY_TIMEOUT_MS = 5000
GENESIS_HASH = "0" * 64  # the prev_hash of journal row 1 (docs/offline-store.md §5)

Migration = Callable[[sqlite3.Connection], None]


def _execute_all(db: sqlite3.Connection, statements: Sequence[str]) -> None:
    # one statement at a time: sqlite3's executescript() would COMMIT the migration's transaction
    for statement in statements:
        db.execute(statement)


def _v1_initial(db: sqlite3.Connection) -> None:
    """Schema 1: key/value metadata, deny list, journal, replay cache, audit, catalogue."""
    _execute_all(
        db,
        [
            """CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE deny_version (
                version INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('snapshot', 'delta')),
                base_version INTEGER,
                gen INTEGER NOT NULL,
                state TEXT NOT NULL UNIQUE CHECK (state IN ('active', 'previous')),
                created TEXT NOT NULL,
                imported_at TEXT NOT NULL,
                file_entries INTEGER NOT NULL,
                listed INTEGER NOT NULL,
                sha256 TEXT NOT NULL
            )""",
            """CREATE TABLE deny_entry (
                gen INTEGER NOT NULL,
                card_hash BLOB NOT NULL CHECK (length(card_hash) = 32),
                reason TEXT NOT NULL CHECK (reason IN ('lost', 'cancelled', 'replaced', 'fraud')),
                effective INTEGER NOT NULL,
                PRIMARY KEY (gen, card_hash)
            ) WITHOUT ROWID""",
            """CREATE TABLE deny_undo (
                version INTEGER NOT NULL,
                card_hash BLOB NOT NULL,
                op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
                old_reason TEXT,
                old_effective INTEGER,
                PRIMARY KEY (version, card_hash)
            ) WITHOUT ROWID""",
            """CREATE TABLE deny_import (
                id INTEGER PRIMARY KEY,
                version INTEGER NOT NULL,
                kind TEXT NOT NULL,
                base_version INTEGER,
                sha256 TEXT NOT NULL,
                created TEXT NOT NULL,
                file_entries INTEGER NOT NULL,
                imported_at TEXT NOT NULL,
                rolled_back_at TEXT
            )""",
            "CREATE INDEX deny_import_version ON deny_import (version)",
            """CREATE TABLE journal (
                seq INTEGER PRIMARY KEY,
                uuid TEXT NOT NULL UNIQUE,
                wall_time_us INTEGER NOT NULL,
                monotonic_ns INTEGER NOT NULL,
                scenario TEXT NOT NULL,
                catalogue_item TEXT,
                credential_token TEXT NOT NULL,
                outcome TEXT NOT NULL CHECK (outcome IN ('accept', 'refuse', 'deferred')),
                reason_code TEXT NOT NULL,
                amount INTEGER,
                terminal_id TEXT NOT NULL,
                personal_fields TEXT NOT NULL,
                personal_ct BLOB,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                uploaded INTEGER NOT NULL DEFAULT 0 CHECK (uploaded IN (0, 1))
            )""",
            "CREATE INDEX journal_scenario_time ON journal (scenario, wall_time_us)",
            """CREATE TABLE journal_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                last_seq INTEGER NOT NULL,
                last_hash TEXT NOT NULL,
                anchor_seq INTEGER NOT NULL,
                anchor_hash TEXT NOT NULL,
                acked_seq INTEGER NOT NULL
            )""",
            f"INSERT INTO journal_state VALUES (1, 0, '{GENESIS_HASH}', 0, '{GENESIS_HASH}', 0)",
            """CREATE TABLE replay (
                key_hash TEXT PRIMARY KEY,
                expires_at REAL NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX replay_expires ON replay (expires_at)",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY,
                ts REAL NOT NULL,
                who TEXT NOT NULL,
                terminal_id TEXT NOT NULL,
                scenario TEXT NOT NULL,
                fields TEXT NOT NULL,
                purpose TEXT NOT NULL
            )""",
            """CREATE TABLE catalogue (
                code TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                scenario TEXT NOT NULL,
                regions TEXT NOT NULL,
                valid_from TEXT,
                valid_to TEXT
            ) WITHOUT ROWID""",
            "CREATE INDEX catalogue_scenario ON catalogue (scenario)",
        ],
    )


def _v2_trust_list(db: sqlite3.Connection) -> None:
    """Schema 2: the e-card trust list, raw signed bytes, the active one and the previous one."""
    _execute_all(
        db,
        [
            """CREATE TABLE trust_list (
                state TEXT PRIMARY KEY CHECK (state IN ('active', 'previous')),
                version INTEGER NOT NULL CHECK (version >= 1),
                not_after INTEGER NOT NULL,
                sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
                saved_at TEXT NOT NULL,
                raw BLOB NOT NULL
            ) WITHOUT ROWID""",
        ],
    )


def _v3_journal_flags(db: sqlite3.Connection) -> None:
    """Schema 3: journal rows carry flags (a JSON array, ``[]`` for the rows written before)."""
    db.execute("ALTER TABLE journal ADD COLUMN flags TEXT NOT NULL DEFAULT '[]'")


def _v4_day_counts(db: sqlite3.Connection) -> None:
    """Schema 4: day counters (``offline_store.daycount``), seeded with the accepted rows the
    journal holds per scenario and local day (what a gate's daily capacity counted before)."""
    _execute_all(
        db,
        [
            """CREATE TABLE day_count (
                day TEXT NOT NULL,
                key TEXT NOT NULL,
                count INTEGER NOT NULL CHECK (count >= 0),
                PRIMARY KEY (day, key)
            ) WITHOUT ROWID""",
            """INSERT INTO day_count (day, key, count)
                SELECT date(wall_time_us / 1000000, 'unixepoch', 'localtime'),
                       'entries:' || scenario, COUNT(*)
                FROM journal WHERE outcome = 'accept' GROUP BY 1, 2""",
        ],
    )


def _v5_journal_ref_seq(db: sqlite3.Connection) -> None:
    """Schema 5: a row may follow up an earlier one (``ref_seq``: the confirmation of a deferred
    e-card code names the deferred row); ``NULL`` for every other row."""
    _execute_all(
        db,
        [
            "ALTER TABLE journal ADD COLUMN ref_seq INTEGER",
            "CREATE INDEX journal_ref_seq ON journal (ref_seq) WHERE ref_seq IS NOT NULL",
        ],
    )


def _v6_payments(db: sqlite3.Connection) -> None:
    """Schema 6 (issue 15): a purchase's journal rows carry its payment object, encrypted
    (``payment_ct``), and the digest the chain hash covers (``payment_sha256``); the purchases
    still pending or torn on this terminal are in ``payment_open``, keyed by a keyed hash of
    the card (:mod:`offline_store.payment`); what each card paid today here, for the transit
    profile's daily cap and transfer discount, in ``payment_day``."""
    _execute_all(
        db,
        [
            "ALTER TABLE journal ADD COLUMN payment_sha256 TEXT",
            "ALTER TABLE journal ADD COLUMN payment_ct BLOB",
            """CREATE TABLE payment_open (
                card_key TEXT PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('transit', 'medical')),
                state TEXT NOT NULL CHECK (state IN ('pending', 'torn')),
                seq INTEGER NOT NULL,
                opened_us INTEGER NOT NULL,
                record_ct BLOB NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE payment_day (
                day TEXT NOT NULL,
                card_key TEXT NOT NULL,
                spent_fen INTEGER NOT NULL CHECK (spent_fen >= 0),
                rides INTEGER NOT NULL CHECK (rides >= 0),
                last_us INTEGER NOT NULL,
                PRIMARY KEY (day, card_key)
            ) WITHOUT ROWID""",
        ],
    )


def _v7_journal_lost(db: sqlite3.Connection) -> None:
    """Schema 7: a declared gap (docs/offline-store.md §5.8) names the seqs a recovery lost,
    ``lost`` = JSON ``[first, last]``, ``NULL`` on every other row; ``journal_state.lost_held``
    counts the seqs the gap rows held declare lost (the row count leaves them out). Neither
    change reads the journal's rows: a damaged file still migrates, and can be recovered."""
    _execute_all(
        db,
        [
            "ALTER TABLE journal ADD COLUMN lost TEXT",
            "ALTER TABLE journal_state ADD COLUMN lost_held INTEGER NOT NULL DEFAULT 0",
        ],
    )


MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial,
    _v2_trust_list,
    _v3_journal_flags,
    _v4_day_counts,
    _v5_journal_ref_seq,
    _v6_payments,
    _v7_journal_lost,
)
"""Forward migrations, in order: entry ``n`` takes the file from version ``n`` to ``n + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)


class StoreDb:
    """An open store file: its connection, the owner lock and the thread lock.

    :param path: the database file
    :param conn: the configured connection (autocommit mode: transactions are explicit)
    :param lock_fd: the descriptor holding the owner ``flock``
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int) -> None:
        self.path = path
        self.conn = conn
        self.lock = threading.RLock()
        self._lock_fd: int | None = lock_fd

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one transaction (``BEGIN IMMEDIATE``; a savepoint when nested).

        The block's changes are committed when it ends, rolled back if it raises. SQLite errors
        leave as :class:`StoreError`.

        :raises StoreError: the database failed (disk full, I/O error, corrupt file)
        """
        with self.lock, self._translated():
            if self.conn.in_transaction:
                name = f"sp_{secrets.token_hex(8)}"
                self.conn.execute(f"SAVEPOINT {name}")
                try:
                    yield self.conn
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute(f"ROLLBACK TO {name}")
                        self.conn.execute(f"RELEASE {name}")
                    raise
                self.conn.execute(f"RELEASE {name}")
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def read(self) -> _Reading:
        """A context for a block of reads: the thread lock is held, SQLite errors leave as
        :class:`StoreError` (a plain class rather than a generator: lookups are hot).

        :raises StoreError: the store is closed, or the database failed
        """
        return _Reading(self)

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one query run under :meth:`read`, ``None`` when there is none.

        :param sql: the statement
        :param params: its ``?`` parameters
        :raises StoreError: the store is closed, or the database failed
        """
        with self.read() as conn:
            return conn.execute(sql, params).fetchone()

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one query run under :meth:`read`.

        :param sql: the statement
        :param params: its ``?`` parameters
        :raises StoreError: the store is closed, or the database failed
        """
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        if self._lock_fd is None:
            raise StoreError(f"offline store {self.path} is closed")
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"offline store {self.path}: {exc}") from exc

    def checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (after a large import).

        :raises StoreError: the database failed
        """
        with self.read() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` ran."""
        return self._lock_fd is None

    def close(self) -> None:
        """Close the connection and release the owner lock; a second call does nothing.

        :raises: nothing
        """
        with self.lock:
            if self._lock_fd is None:
                return
            try:
                self.conn.close()
            finally:
                _release(self._lock_fd)
                self._lock_fd = None
        log.debug("event=store_closed path=%s", self.path)


class _Reading:
    """``with store_db.read() as conn``: see :meth:`StoreDb.read`."""

    __slots__ = ("_store_db",)

    def __init__(self, store_db: StoreDb) -> None:
        self._store_db = store_db

    def __enter__(self) -> sqlite3.Connection:
        store_db = self._store_db
        store_db.lock.acquire()
        if store_db.closed:
            store_db.lock.release()
            raise StoreError(f"offline store {store_db.path} is closed")
        return store_db.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store_db.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"offline store {self._store_db.path}: {exc}") from exc


def open_database(path: str | Path, migrations: Sequence[Migration] = MIGRATIONS) -> StoreDb:
    """Lock, open, configure and migrate a store file (created, with its folder, if missing).

    :param path: the SQLite file
    :param migrations: the forward migrations (tests pass a longer list)
    :raises StoreLocked: another store owns the file
    :raises SchemaTooNew: the file was written by a newer sscard
    :raises StoreError: the file is not an sscard store, or cannot be created or opened
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of {path}: {exc.strerror}") from exc
    lock_fd = _acquire(path)
    try:
        conn = _connect(path)
    except BaseException:
        _release(lock_fd)
        raise
    store_db = StoreDb(path, conn, lock_fd)
    try:
        migrate(store_db, migrations)
    except BaseException:
        store_db.close()
        raise
    return store_db


def migrate(store_db: StoreDb, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the pending forward migrations, each in its own transaction with the version bump.

    :param store_db: the open store
    :param migrations: every migration this code knows, oldest first
    :returns: the schema version reached
    :raises SchemaTooNew: the file's version is beyond ``len(migrations)``
    :raises StoreError: a migration failed (the file stays at the version before it)
    """
    path = str(store_db.path)
    found = store_db.fetch_one("PRAGMA user_version")[0]
    if found > len(migrations):
        raise SchemaTooNew(path, found, len(migrations))
    for number in range(found, len(migrations)):
        step = migrations[number]
        try:
            with store_db.write() as conn:
                step(conn)
                conn.execute(f"PRAGMA user_version = {number + 1}")
        except (StoreError, sqlite3.Error) as exc:
            raise StoreError(
                f"offline store {path}: migration to schema version {number + 1} failed, the "
                f"file stays at version {number}: {exc}"
            ) from exc
        log.info("event=store_migrated path=%s version=%d", path, number + 1)
    return len(migrations)


def _acquire(path: Path) -> int:
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise StoreLocked(str(path), holder) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock {lock_path}: {exc.strerror}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError as exc:  # a full disk: refused with the file's name, the lock let go
        _release(fd)
        raise StoreError(f"cannot write the lock file {lock_path}: {exc.strerror}") from exc
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if 0 < len(text) <= 10 and text.isascii() and text.isdigit() else None


def _release(fd: int) -> None:
    # the pid stays in the file: it is only read when the lock is busy, and removing the file
    # would let two processes lock two different inodes
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        # the file holds encrypted personal fields and the deny list: owner only from the start
        # (SQLite gives the -wal and -shm files the database file's mode)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        # look before changing anything: another program's database is left as it was
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables:
            raise StoreError(f"{path} is an SQLite file but not an sscard offline store")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: SQLite refused WAL mode (journal_mode stays {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path} is not an sscard offline store ({exc})") from exc
    except BaseException:
        conn.close()
        raise
    return conn


class StorePart:
    """One part of a store (``store.audit``, ``store.catalogue``, ``store.replay``,
    ``store.trust``): the open store it reads and writes, and the store's clock.

    :param store_db: the open store
    :param clock: wall clock, seconds since the epoch
    """

    def __init__(self, store_db: StoreDb, clock: Callable[[], float]) -> None:
        self._db = store_db
        self._clock = clock
