"""Small named values of the store (``store.meta``): what the last sync saw, the catalogue's
ETag, the time the catalogue was loaded — kept in the ``meta`` table next to the data they
describe, so they survive a restart and move with the file.

Keys are dotted names owned by one module each (``catalogue.*`` by the catalogue, ``sync.*``
by the sync client); values are text. Nothing secret or personal is ever stored here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from offline_store.db import StoreDb
from offline_store.errors import StoreError

__all__ = ["Meta"]

KEY_MAX = 64
VALUE_MAX = 1024
_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


class Meta:
    """The ``meta`` table of one store.

    :param store_db: the open store
    """

    def __init__(self, store_db: StoreDb) -> None:
        self._db = store_db

    def get(self, key: str) -> str | None:
        """The value of a key, ``None`` when it was never set.

        :param key: a dotted name, e.g. ``sync.server_time``
        :raises StoreError: a malformed key, or the database failed
        """
        _check_key(key)
        found = self._db.fetch_one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if found is None else str(found[0])

    def set(self, values: Mapping[str, str | None]) -> None:
        """Set (or, with ``None``, delete) several keys in one transaction.

        :param values: key → text, or ``None`` to delete the key
        :raises StoreError: a malformed key, a value that is not text or is longer than 1024
            characters, or the database failed; nothing changes then
        """
        for key, value in values.items():
            _check_key(key)
            if value is not None and (not isinstance(value, str) or len(value) > VALUE_MAX):
                raise StoreError(f"meta value of {key} must be text of at most {VALUE_MAX} chars")
        with self._db.write() as conn:
            for key, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                    )


def _check_key(key: object) -> None:
    if not isinstance(key, str) or len(key) > KEY_MAX or not _KEY.fullmatch(key):
        raise StoreError(f"a meta key is a dotted lower-case name of at most {KEY_MAX} chars")
