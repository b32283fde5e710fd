"""The e-card trust list the platform publishes: its QR signing keys, signed by the trust root
(docs/qr-format.md §7), versioned, refreshed before it expires, and rotated.

The keys a list names are the registered QR keys that are not retired (``qr_key.retire_at``
unset or in the future). :func:`current` makes a new version whenever that set changes or the
newest list has used half of its validity, so a terminal that syncs regularly never holds an
expired list. :func:`rotate` registers a new key and retires the old keys of its algorithm
after a grace period: until then the list names both (codes signed by the old key keep
verifying), from then on only the new one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from ecard.keys import Alg, PrivateKey, PublicKey
from ecard.trust import make_trust_list
from platform_server.db import META_TRUST, qr_key, read_meta, trust_version
from platform_server.keys import PlatformKeys

__all__ = [
    "TRUST_VALIDITY_S",
    "QrKeyInfo",
    "TrustListInfo",
    "current",
    "qr_keys",
    "register",
    "rotate",
]

log = logging.getLogger(__name__)

TRUST_VALIDITY_S = 7 * 86_400
REFRESH_AFTER_S = TRUST_VALIDITY_S // 2


@dataclass(frozen=True, slots=True)
class TrustListInfo:
    """A published trust list.

    :param version: its version
    :param not_before: validity start, seconds since 1970
    :param not_after: validity end
    :param kids: the kids it names (hex), sorted
    :param raw: the signed bytes terminals download
    """

    version: int
    not_before: int
    not_after: int
    kids: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True, slots=True)
class QrKeyInfo:
    """A registered QR signing key.

    :param kid: its kid, hex
    :param alg: ES256 or SM2
    :param created_at: when it was registered
    :param retire_at: when it leaves the trust list, ``None`` while current
    """

    kid: str
    alg: str
    created_at: float
    retire_at: float | None


def register(conn: Connection, keys: PlatformKeys, now: float) -> int:
    """Register the keys folder's QR keys that the database does not know yet.

    :param conn: a connection in a write transaction
    :param keys: the keys folder
    :param now: the platform's clock
    :returns: how many keys were added
    :raises: nothing beyond the database's own errors
    """
    known = set(conn.execute(select(qr_key.c.kid)).scalars())
    added = [key for kid, key in sorted(keys.qr.items()) if kid not in known]
    for key in added:
        _insert(conn, key, now)
    return len(added)


def _insert(conn: Connection, key: PrivateKey, now: float) -> None:
    conn.execute(
        insert(qr_key).values(
            kid=key.kid.hex(),
            alg=str(key.alg),
            spki=key.public_key.spki,
            name=f"{key.alg} {key.kid.hex()}",
            created_at=now,
            retire_at=None,
        )
    )
    log.info("event=qr_key_registered alg=%s kid=%s", key.alg, key.kid.hex())


def qr_keys(conn: Connection) -> list[QrKeyInfo]:
    """Every registered QR key, oldest first.

    :param conn: a connection
    :raises: nothing beyond the database's own errors
    """
    return [
        QrKeyInfo(row.kid, row.alg, row.created_at, row.retire_at)
        for row in conn.execute(select(qr_key).order_by(qr_key.c.created_at, qr_key.c.kid))
    ]


def current(conn: Connection, keys: PlatformKeys, now: float) -> TrustListInfo:
    """The list to serve now, made (and stored) first when the key set changed or the newest
    list is half-way through its validity.

    :param conn: a connection in a write transaction
    :param keys: the keys folder (the root signs)
    :param now: the platform's clock
    :raises TrustListError: the registered keys do not make a valid list
    """
    read_meta(conn, META_TRUST, lock=True)  # one writer of versions at a time
    latest = conn.execute(
        select(trust_version).order_by(trust_version.c.version.desc()).limit(1)
    ).one_or_none()
    rows = conn.execute(
        select(qr_key)
        .where((qr_key.c.retire_at.is_(None)) | (qr_key.c.retire_at > now))
        .order_by(qr_key.c.created_at, qr_key.c.kid)
    ).all()
    kids = tuple(sorted(row.kid for row in rows))
    if (
        latest is not None
        and tuple(json.loads(latest.kids)) == kids
        and now < latest.not_before + REFRESH_AFTER_S
    ):
        return TrustListInfo(latest.version, latest.not_before, latest.not_after, kids, latest.raw)
    version = 1 if latest is None else latest.version + 1
    not_before = int(now)
    not_after = not_before + TRUST_VALIDITY_S
    listed = [(PublicKey(Alg(row.alg), row.spki), row.name) for row in rows]
    raw = make_trust_list(listed, keys.root, version, not_before, not_after)
    conn.execute(
        insert(trust_version).values(
            version=version,
            not_before=not_before,
            not_after=not_after,
            kids=json.dumps(list(kids)),
            raw=raw,
            created_at=now,
        )
    )
    log.info("event=trust_list_published version=%d keys=%d", version, len(kids))
    return TrustListInfo(version, not_before, not_after, kids, raw)


def rotate(
    conn: Connection, key: PrivateKey, grace_s: float, now: float
) -> tuple[str, tuple[str, ...]]:
    """Register a new QR key and retire the current keys of its algorithm after ``grace_s``.

    :param conn: a connection in a write transaction
    :param key: the new key (already staged in the keys folder)
    :param grace_s: how long the old keys stay on the list
    :param now: the platform's clock
    :returns: the new kid and the kids being retired (hex)
    :raises: nothing beyond the database's own errors
    """
    read_meta(conn, META_TRUST, lock=True)
    retiring = tuple(
        conn.execute(
            select(qr_key.c.kid).where(qr_key.c.alg == str(key.alg), qr_key.c.retire_at.is_(None))
        ).scalars()
    )
    conn.execute(
        update(qr_key).where(qr_key.c.kid.in_(retiring)).values(retire_at=now + max(grace_s, 0.0))
    )
    _insert(conn, key, now)
    log.info(
        "event=qr_key_rotated alg=%s kid=%s retiring=%s grace_s=%d",
        key.alg,
        key.kid.hex(),
        ",".join(retiring) or "-",
        grace_s,
    )
    return key.kid.hex(), retiring
