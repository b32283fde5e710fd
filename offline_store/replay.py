"""The replay cache: keys seen recently (a QR code's nonce, a transaction id), so the same
credential presented twice within its lifetime is caught, across restarts.

Keys are stored as their SHA-256, so a key that happens to carry personal data is not kept.
Expiry uses the wall clock (a monotonic clock restarts at boot): a clock set back keeps keys
longer, which errs on the side of refusing.
"""

from __future__ import annotations

import hashlib
import logging
import math

from offline_store.db import StorePart
from offline_store.errors import StoreError

__all__ = ["ReplayCache"]

log = logging.getLogger(__name__)


class ReplayCache(StorePart):
    """The replay cache of one store (``store.replay``)."""

    def seen(self, key: str) -> bool:
        """Tell whether ``key`` is remembered (recorded and not expired); changes nothing.

        :param key: the value that must not be seen twice
        :returns: ``True`` when a decision already recorded it within its lifetime
        :raises StoreError: an empty key, or the database failed
        """
        key_hash = _key_hash(key)
        found = self._db.fetch_one("SELECT expires_at FROM replay WHERE key_hash = ?", (key_hash,))
        return found is not None and found[0] > self._clock()

    def check_and_add(self, key: str, ttl_s: float) -> bool:
        """Tell whether ``key`` is new, and remember it for ``ttl_s`` seconds — atomically.

        :param key: the value that must not be seen twice
        :param ttl_s: how long to remember it, seconds (> 0)
        :returns: ``True`` if the key was not seen within its lifetime (and is now recorded),
            ``False`` if it was (nothing changes then)
        :raises StoreError: an empty key or a TTL that is not a positive finite number
        """
        key_hash = _key_hash(key)
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
            raise StoreError("replay ttl_s must be a number of seconds")
        if not math.isfinite(ttl_s) or ttl_s <= 0:
            raise StoreError("replay ttl_s must be a positive finite number of seconds")
        with self._db.write() as conn:
            now = self._clock()
            seen = conn.execute(
                "SELECT expires_at FROM replay WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            if seen is not None and seen[0] > now:
                log.info("event=replay_seen key_hash=%s", key_hash[:16])
                return False
            conn.execute(
                "INSERT OR REPLACE INTO replay (key_hash, expires_at) VALUES (?, ?)",
                (key_hash, now + ttl_s),
            )
        return True

    def purge(self) -> int:
        """Forget the expired keys.

        :returns: how many were dropped
        :raises StoreError: the database failed
        """
        with self._db.write() as conn:
            dropped = conn.execute(
                "DELETE FROM replay WHERE expires_at <= ?", (self._clock(),)
            ).rowcount
        return int(dropped)


def _key_hash(key: str) -> str:
    """The stored form of a key: its SHA-256 (a key never lands in the file as such)."""
    if not isinstance(key, str) or not key:
        raise StoreError("replay key must be a non-empty string")
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
