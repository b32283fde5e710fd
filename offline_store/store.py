"""The store: one SQLite file holding the deny list, the journal, the replay cache, the access
audit, the application catalogue, the e-card trust list, the day counters, the purchases still
open on this terminal (``payments``) and a few named values (``meta``), owned by one process.

::

    with Store.open(path, journal_key=key, pepper=pepper) as store:
        hit = store.deny.lookup(store.card_hash(canonical_card_id("440100", number)))
        store.journal.append(JournalEntry(...))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from apdu.resources import Closing
from offline_store.audit import AuditLog
from offline_store.catalogue import Catalogue
from offline_store.daycount import DayCounts
from offline_store.db import StoreDb, open_database
from offline_store.denylist import DenyList
from offline_store.errors import StoreError
from offline_store.identity import keyed_card_hash, pepper_check
from offline_store.journal import Journal
from offline_store.keys import JOURNAL_KEY_LEN
from offline_store.meta import Meta
from offline_store.payment import OpenPurchases
from offline_store.replay import ReplayCache
from offline_store.trust import TrustStore

__all__ = ["DEFAULT_JOURNAL_CAP_ROWS", "Store"]

log = logging.getLogger(__name__)

DEFAULT_JOURNAL_CAP_ROWS = 1_000_000


class Store(Closing):
    """An open offline store. Build it with :meth:`open`; close it (or use ``with``).

    :param store_db: the locked, migrated database
    :param journal_key: see :meth:`open`
    :param pepper: see :meth:`open`
    :param journal_cap_rows: see :meth:`open`
    :param clock: see :meth:`open`
    :param monotonic: see :meth:`open`
    """

    def __init__(
        self,
        store_db: StoreDb,
        *,
        journal_key: bytes | None,
        pepper: bytes | None,
        journal_cap_rows: int,
        clock: Callable[[], float],
        monotonic: Callable[[], int],
    ) -> None:
        self._db = store_db
        self._pepper = pepper
        self.path = store_db.path
        self.audit = AuditLog(store_db, clock)
        self.deny = DenyList(store_db, clock, pepper_check(pepper) if pepper else None)
        self.payments = OpenPurchases(store_db, journal_key)
        self.journal = Journal(
            store_db,
            audit=self.audit,
            key=journal_key,
            cap_rows=journal_cap_rows,
            clock=clock,
            monotonic=monotonic,
            payments=self.payments,
        )
        self.replay = ReplayCache(store_db, clock)
        self.day_counts = DayCounts(store_db)
        self.catalogue = Catalogue(store_db, clock)
        self.trust = TrustStore(store_db, clock)
        self.meta = Meta(store_db)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        journal_key: bytes | None = None,
        pepper: bytes | None = None,
        journal_cap_rows: int = DEFAULT_JOURNAL_CAP_ROWS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], int] = time.monotonic_ns,
    ) -> Store:
        """Open (creating if needed) the store file and take ownership of it.

        :param path: the SQLite file; its folder is created if missing
        :param journal_key: 32-byte AES-256-GCM key for journal personal fields; ``None``
            refuses to store them
        :param pepper: the deny-list pepper (≥ 16 bytes) for :meth:`card_hash`; ``None`` makes
            :meth:`card_hash` raise
        :param journal_cap_rows: above this many rows :meth:`Journal.alarm` reports (nothing is
            dropped)
        :param clock: wall clock, seconds since the epoch (injectable for tests)
        :param monotonic: monotonic clock, nanoseconds (injectable for tests)
        :raises StoreLocked: another store (this process or another) owns the file
        :raises SchemaTooNew: the file was written by a newer sscard
        :raises StoreError: a bad key, pepper or cap, or a file that cannot be opened
        """
        if journal_key is not None and (
            not isinstance(journal_key, bytes) or len(journal_key) != JOURNAL_KEY_LEN
        ):
            raise StoreError(f"the journal key must be {JOURNAL_KEY_LEN} bytes")
        if pepper is not None:
            pepper_check(pepper)  # raises StoreError when too short
        if (
            isinstance(journal_cap_rows, bool)
            or not isinstance(journal_cap_rows, int)
            or journal_cap_rows <= 0
        ):
            raise StoreError("journal_cap_rows must be a positive integer")
        store_db = open_database(path)
        try:
            store = cls(
                store_db,
                journal_key=journal_key,
                pepper=pepper,
                journal_cap_rows=journal_cap_rows,
                clock=clock,
                monotonic=monotonic,
            )
        except BaseException:
            store_db.close()
            raise
        log.info("event=store_opened path=%s", store.path)
        return store

    def card_hash(self, canonical: str) -> str:
        """The keyed hash of a canonical identifier: ``HMAC-SHA256(pepper, canonical)``, hex.

        :param canonical: from :func:`~offline_store.identity.canonical_card_id` or
            :func:`~offline_store.identity.canonical_ecard_id`
        :raises StoreError: the store has no pepper, or the identifier is not canonical
        """
        if self._pepper is None:
            raise StoreError("no deny-list pepper configured: card_hash needs one")
        return keyed_card_hash(self._pepper, canonical)

    @property
    def database(self) -> StoreDb:
        """The open database file (:mod:`offline_store.rebuild` copies what it can read).

        :raises: nothing
        """
        return self._db

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` ran."""
        return self._db.closed

    def close(self) -> None:
        """Close the database and release the owner lock; a second call does nothing.

        :raises: nothing
        """
        self._db.close()
