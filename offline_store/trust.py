"""The e-card trust list in the store (``store.trust``): the platform's signed list of QR
signing keys, kept as the raw bytes it arrived as, with the previous list beside it.

The store does not verify the list: it has no root key and no QR code. Whoever saves a list has
verified it first, and whoever loads one verifies it again
(:func:`ecard.trust.load_stored_trust_list`), so a file edited behind the terminal's
back is refused like any tampered list. The store checks what it can: the bytes are unchanged
since they were saved (SHA-256), and versions only go forward. docs/offline-store.md §11.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from offline_store.db import StorePart
from offline_store.errors import StoreError, TrustVersionError

__all__ = ["StoredTrustList", "TrustStore"]

log = logging.getLogger(__name__)

ACTIVE = "active"
PREVIOUS = "previous"
MAX_RAW_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredTrustList:
    """What the store knows of a saved list (not its keys: those need the root key).

    :param version: the list's version
    :param not_after: when it goes stale, seconds since 1970
    :param sha256: of the raw bytes, lowercase hex
    :param saved_at: when it was saved, ISO 8601 UTC
    """

    version: int
    not_after: int
    sha256: str
    saved_at: str


class TrustStore(StorePart):
    """The trust-list table of one store."""

    def save(self, raw: bytes, version: int, not_after: int) -> None:
        """Make ``raw`` the active list; the active one becomes the previous one.

        Saving the active version again with the same bytes does nothing.

        :param raw: the list as the platform signed it (already verified by the caller)
        :param version: its version (from the verified list)
        :param not_after: its end of validity, seconds since 1970
        :raises TrustVersionError: a version older than the active one, or the active version
            with other bytes
        :raises StoreError: empty or oversized bytes, a bad version, or the database failed
        """
        if not isinstance(raw, bytes) or not 0 < len(raw) <= MAX_RAW_BYTES:
            raise StoreError(f"a trust list is 1 to {MAX_RAW_BYTES} bytes")
        for what, value in (("version", version), ("not_after", not_after)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StoreError(f"trust list {what} must be a positive integer")
        sha256 = hashlib.sha256(raw).hexdigest()
        saved_at = dt.datetime.fromtimestamp(self._clock(), dt.UTC).isoformat(timespec="seconds")
        with self._db.write() as conn:
            active = conn.execute(
                "SELECT version, sha256 FROM trust_list WHERE state = ?", (ACTIVE,)
            ).fetchone()
            if active is not None:
                if (version, sha256) == tuple(active):
                    return
                if version <= active[0]:
                    raise TrustVersionError(
                        f"trust list version {version} is not newer than the active version "
                        f"{active[0]}; nothing changed"
                    )
                conn.execute("DELETE FROM trust_list WHERE state = ?", (PREVIOUS,))
                conn.execute("UPDATE trust_list SET state = ? WHERE state = ?", (PREVIOUS, ACTIVE))
            conn.execute(
                "INSERT INTO trust_list (state, version, not_after, sha256, saved_at, raw) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ACTIVE, version, not_after, sha256, saved_at, raw),
            )
        log.info("event=trust_list_stored version=%d sha256=%s", version, sha256[:16])

    def load(self) -> bytes | None:
        """The active list's bytes, to verify again; ``None`` when none was saved.

        :raises StoreError: the bytes changed since they were saved, or the database failed
        """
        return self._load(ACTIVE)

    def load_previous(self) -> bytes | None:
        """The list that was active before the current one, or ``None``.

        :raises StoreError: the bytes changed since they were saved, or the database failed
        """
        return self._load(PREVIOUS)

    def info(self) -> StoredTrustList | None:
        """Version, end of validity, hash and save time of the active list, or ``None``.

        :raises StoreError: the database failed
        """
        row = self._db.fetch_one(
            "SELECT version, not_after, sha256, saved_at FROM trust_list WHERE state = ?",
            (ACTIVE,),
        )
        return None if row is None else StoredTrustList(*row)

    def _load(self, state: str) -> bytes | None:
        row = self._db.fetch_one(
            "SELECT raw, sha256, version FROM trust_list WHERE state = ?", (state,)
        )
        if row is None:
            return None
        raw, sha256, version = bytes(row[0]), row[1], row[2]
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise StoreError(
                f"the stored {state} trust list (version {version}) changed since it was saved"
            )
        return raw
