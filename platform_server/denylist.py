"""The platform's deny list (黑名单): entries by keyed card hash, one version per change, and
the signed ``sscard-deny/1`` files terminals import (docs/offline-store.md §3).

Every ``add`` or ``remove`` makes a new version and records the change, so a delta from any
earlier version can be computed: for each hash changed since that version, an ``add`` when it
is listed now with another reason or date than then, a ``remove`` when it was listed then and
is not now. A delta larger than the snapshot is served as the snapshot. A file for a given
(version, base) is always the same bytes — ``created`` is the version's creation time — so
files are cached and a terminal that downloads one twice gets the same SHA-256.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from offline_store.denyfile import DENY_FORMAT, DenyHeader, DenyListKind, DenyReason
from offline_store.identity import is_card_hash, pepper_check
from platform_server.db import (
    META_DENY_VERSION,
    deny_change,
    deny_entry,
    deny_version,
    iso_utc,
    read_meta,
)
from platform_server.db import write_meta as _write_meta
from platform_server.errors import InvalidInput, NotFound
from platform_server.keys import PlatformKeys

__all__ = [
    "DenyChange",
    "DenyFile",
    "DenyFileCache",
    "DenyStatus",
    "change",
    "current_version",
    "make_file",
    "status",
]

log = logging.getLogger(__name__)

CACHE_FILES = 8


@dataclass(frozen=True, slots=True)
class DenyChange:
    """The outcome of ``platform deny add|remove``.

    :param version: the list's version after the command
    :param changed: ``False`` when the card was already listed exactly so
    :param listed: entries listed in that version
    """

    version: int
    changed: bool
    listed: int


@dataclass(frozen=True, slots=True)
class DenyFile:
    """A signed deny-list file.

    :param version: the version it brings a terminal to
    :param kind: snapshot or delta
    :param base_version: a delta's base, ``None`` for a snapshot
    :param body: the file's bytes
    :param signature: the raw Ed25519 signature over ``body``
    """

    version: int
    kind: DenyListKind
    base_version: int | None
    body: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class DenyStatus:
    """The current list.

    :param version: its version
    :param listed: its entries
    :param created: when that version was made (ISO 8601 with offset)
    """

    version: int
    listed: int
    created: str


def current_version(conn: Connection, *, lock: bool = False, shared: bool = False) -> int:
    """The list's current version.

    :param conn: a connection in a transaction
    :param lock: lock the version row until the transaction ends
    :param shared: a reader's lock: other readers go on, writers wait (so a file is made
        from one version's entries)
    :raises: nothing beyond the database's own errors
    """
    return int(read_meta(conn, META_DENY_VERSION, lock=lock, shared=shared) or 1)


def status(conn: Connection) -> DenyStatus:
    """The current version, its entry count and creation time.

    :param conn: a connection in a transaction
    :raises: nothing beyond the database's own errors
    """
    version = current_version(conn)
    row = conn.execute(select(deny_version).where(deny_version.c.version == version)).one()
    return DenyStatus(version, row.listed, row.created)


def change(
    conn: Connection,
    card_hash: str,
    *,
    reason: DenyReason | None,
    effective: dt.date | None,
    now: float,
) -> DenyChange:
    """List a card (``reason`` given) or unlist it (解挂, ``reason`` ``None``).

    :param conn: a connection in a write transaction
    :param card_hash: the card's keyed hash (docs/offline-store.md §2.2)
    :param reason: why it is listed, or ``None`` to remove it
    :param effective: the first day it applies (listing only)
    :param now: the platform's clock
    :raises InvalidInput: not a card hash, or a listing without an effective date
    :raises NotFound: ``not_listed``: removing a card that is not on the list
    """
    if not is_card_hash(card_hash):
        raise InvalidInput("a card hash is 64 lowercase hex characters", "invalid_card")
    version = current_version(conn, lock=True)
    entry = conn.execute(
        select(deny_entry).where(deny_entry.c.card_hash == card_hash)
    ).one_or_none()
    if reason is not None:
        if effective is None:
            raise InvalidInput("a listing needs its effective date", "invalid_date")
        day = effective.isoformat()
        if entry is not None and (entry.reason, entry.effective) == (str(reason), day):
            return DenyChange(version, False, _listed(conn))
        new = version + 1
        if entry is None:
            conn.execute(
                insert(deny_entry).values(
                    card_hash=card_hash, reason=str(reason), effective=day, version=new
                )
            )
        else:
            conn.execute(
                update(deny_entry)
                .where(deny_entry.c.card_hash == card_hash)
                .values(reason=str(reason), effective=day, version=new)
            )
        op: dict[str, Any] = {"op": "add", "reason": str(reason), "effective": day}
    else:
        if entry is None:
            raise NotFound("the card is not on the deny list", "not_listed")
        new = version + 1
        conn.execute(delete(deny_entry).where(deny_entry.c.card_hash == card_hash))
        op = {"op": "remove", "reason": None, "effective": None}
    conn.execute(insert(deny_change).values(version=new, card_hash=card_hash, **op))
    listed = _listed(conn)
    conn.execute(
        insert(deny_version).values(version=new, created=iso_utc(now), listed=listed, changes=1)
    )
    _write_meta(conn, META_DENY_VERSION, str(new))
    log.info("event=deny_changed op=%s version=%d listed=%d", op["op"], new, listed)
    return DenyChange(new, True, listed)


def _listed(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(deny_entry)).scalar_one())


def make_file(conn: Connection, keys: PlatformKeys, since: int | None) -> DenyFile | None:
    """The file that brings a terminal at version ``since`` to the current version.

    :param conn: a connection in a transaction
    :param keys: the platform's keys (the deny-list signing key, the pepper)
    :param since: the terminal's version, ``None`` (or 0) for none
    :returns: ``None`` when ``since`` is current; a delta when ``1 ≤ since < current`` and
        the delta is not larger than the snapshot; otherwise the snapshot
    :raises: nothing beyond the database's own errors
    """
    version = current_version(conn, lock=True, shared=True)
    if since == version:
        return None
    info = conn.execute(select(deny_version).where(deny_version.c.version == version)).one()
    kind, base, lines = DenyListKind.SNAPSHOT, None, None
    if since is not None and 1 <= since < version:
        delta = _delta_lines(conn, since)
        if len(delta) <= info.listed:  # a delta larger than the snapshot is not worth it
            kind, base, lines = DenyListKind.DELTA, since, delta
    if lines is None:
        entries = conn.execute(
            select(deny_entry.c.card_hash, deny_entry.c.reason, deny_entry.c.effective).order_by(
                deny_entry.c.card_hash
            )
        ).all()
        lines = [_entry(h, r, e) for h, r, e in entries]
    header = _header(
        kind,
        version,
        base=base,
        created=info.created,
        entries=len(lines),
        check=pepper_check(keys.pepper),
    )
    return _signed(keys, header, lines, base=base)


def _delta_lines(conn: Connection, since: int) -> list[bytes]:
    touched = select(deny_change.c.card_hash).where(deny_change.c.version > since).distinct()
    latest_before = (
        select(deny_change.c.card_hash, func.max(deny_change.c.version).label("version"))
        .where(deny_change.c.version <= since, deny_change.c.card_hash.in_(touched))
        .group_by(deny_change.c.card_hash)
        .subquery()
    )
    before = {
        h: (op, r, e)
        for h, op, r, e in conn.execute(
            select(
                deny_change.c.card_hash,
                deny_change.c.op,
                deny_change.c.reason,
                deny_change.c.effective,
            ).join(
                latest_before,
                (deny_change.c.card_hash == latest_before.c.card_hash)
                & (deny_change.c.version == latest_before.c.version),
            )
        )
    }
    now = {
        h: (r, e)
        for h, r, e in conn.execute(
            select(deny_entry.c.card_hash, deny_entry.c.reason, deny_entry.c.effective).where(
                deny_entry.c.card_hash.in_(touched)
            )
        )
    }
    lines = []
    for card_hash in sorted(set(conn.execute(touched).scalars())):
        op, reason, effective = before.get(card_hash, ("remove", None, None))
        was = (reason, effective) if op == "add" else None
        listed = now.get(card_hash)
        if listed is not None and listed != was:
            lines.append(_entry(card_hash, *listed, op="add"))
        elif listed is None and was is not None:
            lines.append(json.dumps({"op": "remove", "hash": card_hash}).encode() + b"\n")
    return lines


def _entry(card_hash: str, reason: str, effective: str, op: str | None = None) -> bytes:
    # the layout docs/offline-store.md §3.3 recommends (terminals parse it without json.loads)
    entry = {"hash": card_hash, "reason": reason, "effective": effective}
    if op is not None:
        entry = {"op": op, **entry}
    return json.dumps(entry).encode("ascii") + b"\n"


def _header(
    kind: DenyListKind, version: int, *, base: int | None, created: str, entries: int, check: str
) -> bytes:
    header: dict[str, Any] = {"format": DENY_FORMAT, "kind": str(kind), "version": version}
    if base is not None:
        header["base_version"] = base
    header.update(created=created, entries=entries, pepper_check=check)
    return json.dumps(header).encode("ascii") + b"\n"


def _signed(keys: PlatformKeys, header: bytes, lines: list[bytes], *, base: int | None) -> DenyFile:
    body = header + b"".join(lines)
    parsed = DenyHeader.parse(header)  # the platform's own output, checked like a terminal does
    log.debug(
        "event=deny_file kind=%s version=%d base=%s entries=%d bytes=%d",
        parsed.kind,
        parsed.version,
        base,
        len(lines),
        len(body),
    )
    return DenyFile(parsed.version, parsed.kind, base, body, keys.sign_deny(body))


class DenyFileCache:
    """The last few files made, by (version, ``since``): a file never changes once made.

    :param limit: how many files to keep
    """

    def __init__(self, limit: int = CACHE_FILES) -> None:
        self._limit = limit
        self._files: OrderedDict[tuple[int, int | None], DenyFile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: int, since: int | None) -> DenyFile | None:
        """A cached file.

        :param version: the current version
        :param since: the terminal's version
        :raises: nothing
        """
        with self._lock:
            found = self._files.get((version, since))
            if found is not None:
                self._files.move_to_end((version, since))
            return found

    def put(self, since: int | None, file: DenyFile) -> None:
        """Keep a file.

        :param since: the terminal's version it was made for
        :param file: the file
        :raises: nothing
        """
        with self._lock:
            self._files[(file.version, since)] = file
            while len(self._files) > self._limit:
                self._files.popitem(last=False)
