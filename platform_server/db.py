"""The platform's database: the schema (SQLAlchemy Core) and the engine for a URL.

SQLite by default (``sqlite:///platform.db``, a file created 0600, WAL, ``synchronous = FULL``,
every transaction ``BEGIN IMMEDIATE``); PostgreSQL for many terminals
(``postgresql+psycopg://user@host/db``). Writers that must not interleave lock a row first
(``SELECT … FOR UPDATE``; SQLite's immediate transactions are serial anyway). The schema
version is ``meta['schema_version']``; a database written by a newer platform is refused.
docs/sync.md §10 describes the tables.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.schema import SchemaItem

from platform_server.errors import AlreadyExists, Busy, PlatformConfigError, PlatformError

__all__ = [
    "SCHEMA_VERSION",
    "catalogue_item",
    "deny_change",
    "deny_entry",
    "deny_version",
    "ecard_code",
    "fast_commit",
    "fast_commit_engine",
    "iso_utc",
    "journal",
    "journal_lost",
    "journal_payment",
    "journal_state",
    "meta",
    "metadata",
    "open_engine",
    "payment",
    "qr_key",
    "read_meta",
    "request_nonce",
    "terminal",
    "terminal_key",
    "transaction",
    "trust_version",
    "write_meta",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 2: request_nonce; 3: payment; 4: journal_lost
BUSY_TIMEOUT_S = 5  # then 503 + Retry-After, well inside a client's request timeout
SQLITE_FILE_MODE = 0o600
READONLY = "sscard_readonly"  # execution option: open the transaction with a deferred BEGIN
TERMINAL_ID_LEN = 32
HASH_LEN = 64
NONCE_LEN = 32

metadata = MetaData()


def _without_rowid(name: str, *columns: SchemaItem) -> Table:
    """A table SQLite stores WITHOUT ROWID: its rows are kept in the primary key's own b-tree,
    not behind a hidden rowid (PostgreSQL ignores the option).

    :param name: the table's name
    :param columns: its columns and constraints
    :raises: nothing
    """
    return Table(name, metadata, *columns, sqlite_with_rowid=False)


meta = _without_rowid(
    "meta",
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

terminal = Table(
    "terminal",
    metadata,
    Column("id", String(TERMINAL_ID_LEN), primary_key=True),
    Column("region", String(6), nullable=False),
    Column("scenarios", Text, nullable=False),  # JSON array of scenario names
    Column("created_at", Float, nullable=False),
    Column("last_heartbeat_at", Float),  # the platform's clock when the last one arrived
    Column("clock_offset_s", Float),  # the terminal's own estimate, as reported
    Column("heartbeat", Text),  # the last report, JSON
)

terminal_key = Table(
    "terminal_key",
    metadata,
    Column("terminal_id", ForeignKey("terminal.id"), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    # the HMAC key itself: the platform needs it to check signatures (docs/sync.md §3)
    Column("secret", LargeBinary(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

journal_state = Table(
    "journal_state",
    metadata,
    Column("terminal_id", ForeignKey("terminal.id"), primary_key=True),
    Column("first_seq", BigInteger),  # the first seq ever stored; NULL before any row
    Column("ack_seq", BigInteger, nullable=False),  # every row first_seq..ack_seq is stored
    Column("max_seq", BigInteger, nullable=False),
    Column("row_count", BigInteger, nullable=False),
)

journal = _without_rowid(
    "journal",
    Column("terminal_id", String(TERMINAL_ID_LEN), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("uuid", String(36), nullable=False),
    Column("wall_time_us", BigInteger, nullable=False),
    Column("scenario", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason_code", Text, nullable=False),
    Column("amount", BigInteger),
    Column("record", Text, nullable=False),  # canonical_bytes(record): what the hash covers
    Column("prev_hash", String(HASH_LEN), nullable=False),
    Column("hash", String(HASH_LEN), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("chain_break", Boolean, nullable=False),
    Column("gap", Boolean, nullable=False),
)

deny_entry = _without_rowid(
    "deny_entry",
    Column("card_hash", String(HASH_LEN), primary_key=True),
    Column("reason", String(16), nullable=False),
    Column("effective", String(10), nullable=False),  # YYYY-MM-DD
    Column("version", BigInteger, nullable=False),  # the version that last set it
)

deny_change = _without_rowid(
    "deny_change",
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("card_hash", String(HASH_LEN), primary_key=True),
    Column("op", String(8), nullable=False),  # add | remove
    Column("reason", String(16)),
    Column("effective", String(10)),
)
Index("deny_change_hash", deny_change.c.card_hash, deny_change.c.version)

deny_version = Table(
    "deny_version",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("created", String(40), nullable=False),  # ISO 8601 with offset (the file header)
    Column("listed", BigInteger, nullable=False),
    Column("changes", BigInteger, nullable=False),
)

qr_key = Table(
    "qr_key",
    metadata,
    Column("kid", String(16), primary_key=True),  # hex of the 8-byte kid
    Column("alg", String(8), nullable=False),
    Column("spki", LargeBinary, nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retire_at", Float),  # dropped from the trust list from then on
)

trust_version = Table(
    "trust_version",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("not_before", BigInteger, nullable=False),
    Column("not_after", BigInteger, nullable=False),
    Column("kids", Text, nullable=False),  # JSON array, sorted
    Column("raw", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

catalogue_item = Table(
    "catalogue_item",
    metadata,
    Column("code", String(128), primary_key=True),
    Column("name", Text, nullable=False),
    Column("scenario", Text, nullable=False),
    Column("regions", Text, nullable=False),  # JSON array
    Column("valid_from", String(10)),
    Column("valid_to", String(10)),
)

ecard_code = Table(
    "ecard_code",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("token", String(64), nullable=False),
    Column("region", String(6), nullable=False),
    Column("category", String(1), nullable=False),
    Column("not_after", String(10), nullable=False),
    Column("identity", Text),  # JSON object, or NULL
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# the request nonces whose timestamps are still accepted (docs/sync.md §2): a restart, or
# another process serving the same database, still refuses their replays
request_nonce = _without_rowid(
    "request_nonce",
    Column("terminal_id", String(TERMINAL_ID_LEN), primary_key=True),
    Column("nonce", String(NONCE_LEN), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),  # the last second it is accepted
)
Index("request_nonce_expiry", request_nonce.c.expires_at)

# declared gaps (docs/sync.md §5.9): the seqs a terminal's recovery lost, by the gap row
journal_lost = _without_rowid(
    "journal_lost",
    Column("terminal_id", String(TERMINAL_ID_LEN), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # the gap row's seq
    Column("first_seq", BigInteger, nullable=False),  # the lost seqs: first_seq..seq - 1
)

# the payment object of each stored journal row that carries one (docs/sync.md §5.7), as
# received: the journal's record holds its digest, which is what the chain hash covers
journal_payment = _without_rowid(
    "journal_payment",
    Column("terminal_id", String(TERMINAL_ID_LEN), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("payment", Text, nullable=False),  # canonical_bytes(payment object)
)

# one row per purchase a card made, keyed as the card keys it: its kind, its serial and the
# offline sequence it debited under; the latest journal row that states it wins
# (platform_server.payments, docs/clearing.md)
payment = _without_rowid(
    "payment",
    Column("kind", String(8), primary_key=True),  # transit | medical
    Column("card_serial", String(32), primary_key=True),  # 20 or 32 upper-case hex
    Column("card_sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("state", String(8), nullable=False),  # pending | done | torn | void
    Column("amount_fen", BigInteger, nullable=False),
    Column("self_pay_fen", BigInteger),  # medical only
    Column("pooled_fen", BigInteger),  # medical only
    Column("balance_before", BigInteger),
    Column("balance_after", BigInteger),
    Column("terminal_sequence", BigInteger),
    Column("tac", String(8)),
    Column("time", String(14), nullable=False),  # YYYYMMDDhhmmss, the card's
    Column("day", String(10), nullable=False),  # YYYY-MM-DD of time: the clearing day
    Column("terminal_number", String(12), nullable=False),  # the PSAM's
    Column("issuer", String(16), nullable=False),  # transit issuer id; medical: city code
    Column("tac_status", String(12), nullable=False),  # ok | mismatch | no_key | incomplete | none
    Column("terminal_id", String(TERMINAL_ID_LEN), nullable=False),  # the row that states it
    Column("seq", BigInteger, nullable=False),
    Column("wall_time_us", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),  # journal rows that named this purchase
)
Index("payment_day", payment.c.day)

# the tables each schema version added, created when an older database is opened
MIGRATIONS: dict[int, tuple[Table, ...]] = {
    2: (request_nonce,),
    3: (journal_payment, payment),
    4: (journal_lost,),
}

# meta keys
META_SCHEMA = "schema_version"
META_DENY_VERSION = "deny.version"  # also the row writers of the deny list lock
META_TRUST = "trust.lock"  # the row writers of the trust list lock
META_CATALOGUE_LOADED = "catalogue.loaded_at"


def open_engine(url: str, now: float | None = None) -> Engine:
    """An engine for a database URL, with the schema created or checked.

    A plain path (no ``://``) is taken as an SQLite file.

    :param url: ``sqlite:///path``, ``postgresql+psycopg://…`` or a file path
    :param now: the platform's clock, for the creation time of a new database's first
        (empty) deny list (default: the system clock)
    :raises PlatformConfigError: an unsupported or malformed URL, an in-memory SQLite
        database, a database written by a newer platform, or one that cannot be reached
    """
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PlatformConfigError(f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(_sqlite_file(parsed.database))
    elif backend == "postgresql":
        try:
            engine = create_engine(parsed, pool_pre_ping=True)
        except (ImportError, ArgumentError) as exc:
            raise PlatformConfigError(
                f"cannot use {parsed.render_as_string(hide_password=True)}: {exc}"
            ) from None
    else:
        raise PlatformConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")
    try:
        _prepare(engine, time.time() if now is None else now)
    except OperationalError as exc:
        engine.dispose()
        raise PlatformConfigError(
            f"cannot open {parsed.render_as_string(hide_password=True)}: {exc.orig}"
        ) from None
    except PlatformConfigError:
        engine.dispose()
        raise
    return engine


def _sqlite_file(database: str | None) -> Path:
    """The database file, created 0600 before SQLite opens it (-wal/-shm inherit the mode).

    Only before any connection: closing a descriptor of the file drops every POSIX lock this
    process holds on it, which the connections of an engine already open would rely on.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        raise PlatformConfigError("the SQLite database must be a file (sqlite:///path/platform.db)")
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, SQLITE_FILE_MODE))
    except OSError as exc:
        raise PlatformConfigError(f"cannot create {path}: {exc.strerror}") from exc
    return path


def _sqlite_engine(path: Path, synchronous: str = "FULL") -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # autocommit at the driver: SQLAlchemy's begin event below opens every transaction
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed batch survives a power cut (NORMAL: a crash of the process only)
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # writers queue for the lock at BEGIN; readers read a snapshot beside the writer (WAL)
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def fast_commit_engine(engine: Engine) -> Engine:
    """An engine on the same database whose commits do not wait for the disk, for rows that
    matter for minutes only (request nonces): they survive a restart or a crash of the
    platform's process, not necessarily a power cut of its machine.

    SQLite: a second engine with ``synchronous = NORMAL`` (in WAL mode the commit is written,
    and synced with the next ``FULL`` commit or checkpoint); PostgreSQL: the same engine, the
    transaction setting ``synchronous_commit`` off (see :func:`fast_commit`).

    :param engine: the platform's engine (:func:`open_engine`)
    :raises: nothing
    """
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return engine
    # the file exists (open_engine made it): never opened and closed here, see _sqlite_file
    return _sqlite_engine(Path(engine.url.database), "NORMAL")


def fast_commit(conn: Connection) -> None:
    """Let this transaction commit without waiting for the disk (PostgreSQL; on SQLite the
    engine of :func:`fast_commit_engine` does it).

    :param conn: a connection in a transaction
    :raises: nothing beyond the database's own errors
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _prepare(engine: Engine, now: float) -> None:
    """Create the schema in a fresh database; refuse one of a newer schema."""
    with engine.begin() as conn:
        if engine.dialect.has_table(conn, "meta"):
            found = conn.execute(select(meta.c.value).where(meta.c.key == META_SCHEMA)).scalar()
            version = int(found) if found is not None and found.isascii() and found.isdigit() else 0
            if version > SCHEMA_VERSION:
                raise PlatformConfigError(
                    f"the database has schema version {version}: written by a newer sscard "
                    f"(this one knows {SCHEMA_VERSION})"
                )
            if version < 1:
                raise PlatformConfigError("the database has a meta table but no schema version")
            if version < SCHEMA_VERSION:
                _migrate(conn, version)
            return
        tables = engine.dialect.get_table_names(conn)
        if tables:
            raise PlatformConfigError(
                f"the database already holds tables {sorted(tables)[:5]}: not an sscard platform"
            )
        metadata.create_all(conn)
        conn.execute(
            insert(meta),
            [
                {"key": META_SCHEMA, "value": str(SCHEMA_VERSION)},
                {"key": META_DENY_VERSION, "value": "1"},
                {"key": META_TRUST, "value": "0"},
            ],
        )
        # version 1 is the empty list, so a terminal always has a signed list to start from
        conn.execute(
            insert(deny_version).values(version=1, created=iso_utc(now), listed=0, changes=0)
        )
    log.info("event=platform_schema_created version=%d", SCHEMA_VERSION)


def _migrate(conn: Connection, version: int) -> None:
    """Bring a database of an older schema version up to :data:`SCHEMA_VERSION`."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        metadata.create_all(conn, tables=list(MIGRATIONS.get(target, ())))
        conn.execute(update(meta).where(meta.c.key == META_SCHEMA).values(value=str(target)))
        log.info("event=platform_schema_migrated version=%d", target)


def iso_utc(now: float) -> str:
    """A time as ISO 8601 with its offset, to the second (a deny list's ``created``).

    :param now: seconds since 1970
    :raises: nothing
    """
    return datetime.datetime.fromtimestamp(now, datetime.UTC).replace(microsecond=0).isoformat()


@contextlib.contextmanager
def transaction(engine: Engine, *, readonly: bool = False) -> Iterator[Connection]:
    """One transaction, committed on success and rolled back on any error.

    :param engine: the platform's engine
    :param readonly: the transaction only reads (SQLite: a deferred ``BEGIN``, so it does not
        wait for the writer)
    :raises Busy: the database stayed locked for the whole busy timeout
    :raises AlreadyExists: a unique key taken by a concurrent writer
    :raises PlatformError: any other database failure (named by its type only)
    """
    try:
        with engine.connect() as conn:
            if readonly:
                conn.execution_options(**{READONLY: True})
            with conn.begin():
                yield conn
    except OperationalError as exc:
        if _is_busy(exc):
            log.warning("event=platform_db_busy")
            raise Busy("the database is busy; try again") from None
        log.error("event=platform_db_error error=%s", type(exc.orig).__name__)
        raise PlatformError(f"the database failed: {type(exc.orig).__name__}") from None
    except IntegrityError as exc:
        # never the driver's message: it quotes the statement's parameters (keys, identities)
        log.warning("event=platform_db_conflict error=%s", type(exc.orig).__name__)
        raise AlreadyExists("another writer stored the same row first; try again") from None


#: SQLite's primary result codes of a writer that waited too long for another
_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
#: PostgreSQL's SQLSTATEs of a transaction that lost to another and may simply be tried again:
#: serialization_failure, deadlock_detected, lock_not_available
_POSTGRES_RETRY_STATES = frozenset({"40001", "40P01", "55P03"})


def _is_busy(exc: DBAPIError) -> bool:
    """Whether the driver said "another writer holds it" (by its error code, not its text)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_BUSY_CODES
    return getattr(exc.orig, "sqlstate", None) in _POSTGRES_RETRY_STATES


def read_meta(
    conn: Connection, key: str, *, lock: bool = False, shared: bool = False
) -> str | None:
    """A value of the ``meta`` table.

    :param conn: a connection in a transaction
    :param key: the key
    :param lock: lock the row until the transaction ends (``FOR UPDATE``; SQLite's
        transactions are serial or snapshots already)
    :param shared: with ``lock``, a reader's lock (``FOR SHARE``): readers go together,
        writers wait
    :raises: nothing beyond the database's own errors
    """
    query = select(meta.c.value).where(meta.c.key == key)
    if lock:
        query = query.with_for_update(read=shared)
    value = conn.execute(query).scalar()
    return None if value is None else str(value)


def write_meta(conn: Connection, key: str, value: str) -> None:
    """Set a value of the ``meta`` table.

    :param conn: a connection in a transaction
    :param key: the key
    :param value: the value
    :raises: nothing beyond the database's own errors
    """
    if read_meta(conn, key) is None:
        conn.execute(insert(meta).values(key=key, value=value))
    else:
        conn.execute(update(meta).where(meta.c.key == key).values(value=value))
