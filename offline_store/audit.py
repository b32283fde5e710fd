"""The access audit: one row for every read of personal data — who, for which terminal and
scenario, which fields (by name, never by value) and why.

Personal values never reach this table: :func:`check_field_name` refuses anything that does not
look like a field name, so a value passed by mistake (an SSN, a Chinese name) is rejected
rather than stored.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from offline_store.db import StorePart
from offline_store.errors import StoreError

__all__ = ["AuditLog", "AuditRow", "check_field_name"]

log = logging.getLogger(__name__)

FIELD_NAME_MAX = 64
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One recorded access.

    :param ts: when (UTC)
    :param who: the person or service that read
    :param terminal_id: the terminal the data belongs to
    :param scenario: the scenario the data was kept for
    :param fields: the names of the fields read
    :param purpose: why they were read
    """

    ts: datetime.datetime
    who: str
    terminal_id: str
    scenario: str
    fields: tuple[str, ...]
    purpose: str


def check_field_name(name: object, error: type[StoreError] = StoreError) -> str:
    """Refuse anything that is not a field name: a letter, then letters, digits, ``_.-``.

    :param name: the candidate name
    :param error: the error class to raise
    :raises StoreError: (or ``error``) not a field name; the message does not repeat it, since
        it may be a personal value given by mistake
    """
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise error(
            f"personal field names are a letter then up to {FIELD_NAME_MAX - 1} letters, digits, "
            "'_', '.' or '-' (a value was perhaps given instead of a name)"
        )
    return name


def _check_text(value: object, name: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty_ok) or _CONTROL.search(value):
        raise StoreError(
            f"audit {name} must be {'a' if empty_ok else 'a non-empty'} one-line string"
        )
    return value


class AuditLog(StorePart):
    """The access audit of one store (``store.audit``)."""

    def record(
        self, who: str, terminal_id: str, scenario: str, fields: Sequence[str], purpose: str
    ) -> None:
        """Record an access to personal fields (committed before this returns).

        :param who: the person or service reading
        :param terminal_id: the terminal the data belongs to (may be empty)
        :param scenario: the scenario the data was kept for
        :param fields: the names of the fields read (names only)
        :param purpose: why
        :raises StoreError: an empty ``who``/``scenario``/``purpose``, or something in
            ``fields`` that is not a field name
        """
        _check_text(who, "who")
        _check_text(terminal_id, "terminal_id", empty_ok=True)
        _check_text(scenario, "scenario")
        _check_text(purpose, "purpose")
        if isinstance(fields, str) or not isinstance(fields, Sequence):
            raise StoreError("audit fields must be a sequence of field names")
        names = [check_field_name(name) for name in fields]
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO audit (ts, who, terminal_id, scenario, fields, purpose) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self._clock(), who, terminal_id, scenario, json.dumps(names), purpose),
            )
        log.info("event=audit who=%s scenario=%s fields=%s", who, scenario, ",".join(names))

    def rows(self, limit: int | None = None) -> list[AuditRow]:
        """The recorded accesses, oldest first; with ``limit``, the newest ``limit`` of them.

        :param limit: how many of the newest rows, ``None`` for all
        :raises StoreError: the database failed
        """
        fetched = self._db.fetch_all(
            "SELECT ts, who, terminal_id, scenario, fields, purpose FROM audit "
            "ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [
            AuditRow(
                datetime.datetime.fromtimestamp(ts, datetime.UTC),
                who,
                terminal_id,
                scenario,
                tuple(json.loads(fields)),
                purpose,
            )
            for ts, who, terminal_id, scenario, fields, purpose in reversed(fetched)
        ]
