"""Day counters (``store.day_counts``): how many accepted decisions of a kind a day has seen —
a gate's entries against its daily capacity, one holder's meals at a meal point against the
daily limit.

A counter goes up in the transaction that appends its journal row (:meth:`Journal.append`
with ``counts=``), so the two never disagree after a crash. The counters live apart from the
journal because journal rows leave once the platform acknowledged them: a count taken from the
journal would drop to zero at every sync, and a holder would get a second day's meals on the
same day. A day is the local calendar date of the row's wall-clock time; counters of days before
the newest row's day are deleted as rows of a new day arrive.

Keys are chosen by the caller (``entries:<profile>``, ``meals:<profile>:<card hash>``); a card
appears only as its keyed hash, never as a number.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence

from offline_store.db import StoreDb
from offline_store.errors import StoreError

__all__ = ["DayCounts", "check_count_keys", "local_day"]

KEY_MAX = 512
#: any text without control characters: a profile name and a 64-hex card hash, joined by ``:``
_KEY = re.compile(rf"[^\x00-\x1f\x7f]{{1,{KEY_MAX}}}")


def local_day(wall_time: float) -> dt.date:
    """The local calendar date of a wall-clock time (the machine's time zone).

    :param wall_time: seconds since the epoch
    """
    return dt.datetime.fromtimestamp(wall_time).astimezone().date()


def check_count_keys(keys: Sequence[str], error: type[StoreError] = StoreError) -> tuple[str, ...]:
    """Check day-counter keys: text without control characters, at most 512 characters, no key
    given twice.

    :param keys: the keys
    :param error: the error class to raise
    :raises StoreError: (or ``error``) a malformed key, or a key given twice
    """
    if isinstance(keys, str) or not isinstance(keys, Sequence):
        raise error("day-counter keys are a sequence of strings")
    for key in keys:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise error(f"a day-counter key is 1-{KEY_MAX} characters without control characters")
    if len(set(keys)) != len(keys):
        raise error("a day-counter key is given twice")
    return tuple(keys)


def add_counts(conn: sqlite3.Connection, day: dt.date, keys: Sequence[str]) -> None:
    """Add one to each key's counter of a day, and drop the counters of earlier days; inside the
    caller's transaction (:meth:`Journal.append`).

    :param conn: the connection, in a write transaction
    :param day: the local date of the row
    :param keys: checked keys (:func:`check_count_keys`)
    """
    if not keys:
        return
    text = day.isoformat()
    conn.execute("DELETE FROM day_count WHERE day < ?", (text,))
    conn.executemany(
        "INSERT INTO day_count (day, key, count) VALUES (?, ?, 1) "
        "ON CONFLICT (day, key) DO UPDATE SET count = count + 1",
        [(text, key) for key in keys],
    )


class DayCounts:
    """The day counters of one store.

    :param store_db: the open store
    """

    def __init__(self, store_db: StoreDb) -> None:
        self._db = store_db

    def get(self, key: str, day: dt.date) -> int:
        """How many rows counted ``key`` on ``day`` (0 when none did).

        :param key: the counter
        :param day: the local date
        :raises StoreError: a malformed key, or the database failed
        """
        check_count_keys((key,))
        found = self._db.fetch_one(
            "SELECT count FROM day_count WHERE day = ? AND key = ?", (day.isoformat(), key)
        )
        return 0 if found is None else int(found[0])
