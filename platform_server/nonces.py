"""The request nonces the platform remembers (docs/sync.md §2): in memory, bounded per
terminal, and in the database, so that neither a restart nor a second process serving the
same database accepts a replay while its timestamp is still within the window.

A nonce is remembered until ``timestamp + 300 s``, the last second a request carrying it
could be accepted. Each accepted nonce is committed (``request_nonce``) before the request is
served, without waiting for the disk (:func:`platform_server.db.fast_commit_engine`: an fsync
per request doubled the time of a small answer): it survives a restart or a crash of the
process, which is what a replay window would need. Rows whose time is over are deleted at
most every :data:`PURGE_INTERVAL_S`. The memory cache (:class:`sync.auth.NonceCache`)
refuses most replays without a write and bounds what one terminal may hold; the database is
the authority.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy import Connection, Engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from platform_server.db import fast_commit, fast_commit_engine, request_nonce, transaction
from sync.auth import NonceCache
from sync.wire import quote

__all__ = ["PURGE_INTERVAL_S", "PersistentNonces"]

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 60


class PersistentNonces:
    """A :class:`~sync.auth.NonceStore` over a memory cache and the platform's database.

    :param engine: the platform's database
    :param cache: the memory cache (default: :class:`~sync.auth.NonceCache` with its limits)
    """

    def __init__(self, engine: Engine, cache: NonceCache | None = None) -> None:
        self.engine = fast_commit_engine(engine)
        self.cache = cache or NonceCache()
        self._purged_at = -math.inf

    def close(self) -> None:
        """Close the connections of its own engine, if it has one (idempotent).

        :raises: nothing
        """
        self.engine.dispose()

    def remember(self, terminal: str, nonce: str, expires_at: int, now: float) -> bool:
        """Remember a nonce in memory, then in the database (in its own transaction).

        :param terminal: the signing terminal
        :param nonce: 32 lowercase hex characters
        :param expires_at: the last second its timestamp is accepted
        :param now: the clock
        :returns: ``False`` when it was seen before and has not expired (here, before a
            restart, or by another process)
        :raises NonceLimit: the terminal's memory pool is full
        :raises Busy: the database stayed locked
        """
        if not self.cache.remember(terminal, nonce, expires_at, now):
            return False
        with transaction(self.engine) as conn:
            fast_commit(conn)
            fresh = _insert(conn, terminal, nonce, expires_at, now)
            if now - self._purged_at >= PURGE_INTERVAL_S:
                gone = conn.execute(
                    delete(request_nonce).where(request_nonce.c.expires_at < now)
                ).rowcount
                self._purged_at = now
                log.debug("event=nonces_purged rows=%d", gone)
        if not fresh:
            log.warning("event=nonce_replayed_from_database terminal=%s", quote(terminal))
        return fresh


def _insert(conn: Connection, terminal: str, nonce: str, expires_at: int, now: float) -> bool:
    """Store a nonce; ``False`` when it is stored already and has not expired (a row whose
    time is over is taken over by the new one)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(request_nonce).values(
        terminal_id=terminal, nonce=nonce, expires_at=expires_at
    )
    statement = statement.on_conflict_do_update(
        index_elements=[request_nonce.c.terminal_id, request_nonce.c.nonce],
        set_={"expires_at": statement.excluded.expires_at},
        where=request_nonce.c.expires_at < now,
    )
    # RETURNING, not rowcount: psycopg reports no row count for an upsert (SQLite >= 3.35)
    return conn.execute(statement.returning(request_nonce.c.nonce)).first() is not None
