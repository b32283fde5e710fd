"""The application catalogue (应用目录) the platform serves: loaded from an
``sscard-catalogue/1`` file (docs/offline-store.md §8), answered per region.

``GET /v1/catalogue?region=440100`` returns the items whose regions cover that region — the
city code itself, its two-digit province prefix, or ``"*"`` — as a JSON catalogue a terminal
loads whole. The bytes depend only on the items, so their SHA-256 is the ``ETag``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tomllib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from offline_store.catalogue import CATALOGUE_FORMAT, CatalogueItem, parse_catalogue
from offline_store.errors import CatalogueError
from platform_server.db import META_CATALOGUE_LOADED, catalogue_item, write_meta
from platform_server.errors import InvalidInput
from sync.wire import REGION

__all__ = ["CatalogueDocument", "document", "load"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogueDocument:
    """The catalogue of one region.

    :param body: the JSON bytes
    :param etag: the strong ETag (quoted SHA-256 hex of the body)
    :param items: how many items it holds
    """

    body: bytes
    etag: str
    items: int


def load(conn: Connection, raw: bytes, syntax: str, source: str, now: float) -> int:
    """Replace the catalogue with a file's items (the caller's transaction makes it atomic).

    :param conn: a connection in a write transaction
    :param raw: the file's bytes
    :param syntax: ``"toml"`` or ``"json"``
    :param source: where it came from, for messages
    :param now: the platform's clock
    :returns: the number of items
    :raises InvalidInput: ``invalid_catalogue``: not UTF-8, not TOML/JSON, or off-schema
    """
    try:
        text = raw.decode("utf-8")
        data: Any = tomllib.loads(text) if syntax == "toml" else json.loads(text)
        items = parse_catalogue(data, source)
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not UTF-8 text", "invalid_catalogue") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{source}: does not parse: {exc}", "invalid_catalogue") from None
    except CatalogueError as exc:
        raise InvalidInput(str(exc), "invalid_catalogue") from None
    conn.execute(delete(catalogue_item))
    if items:
        conn.execute(
            insert(catalogue_item),
            [
                {
                    "code": item.code,
                    "name": item.name,
                    "scenario": item.scenario,
                    "regions": json.dumps(list(item.regions)),
                    "valid_from": _day(item.valid_from),
                    "valid_to": _day(item.valid_to),
                }
                for item in items
            ],
        )
    write_meta(conn, META_CATALOGUE_LOADED, str(now))
    log.info("event=platform_catalogue_loaded items=%d", len(items))
    return len(items)


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def document(conn: Connection, region: str) -> CatalogueDocument:
    """The items covering a region, as an ``sscard-catalogue/1`` JSON document.

    :param conn: a connection
    :param region: a six-digit region code
    :raises InvalidInput: ``invalid_region``
    """
    if not isinstance(region, str) or not REGION.fullmatch(region):
        raise InvalidInput("region must be a six-digit region code", "invalid_region")
    items = []
    for row in conn.execute(select(catalogue_item).order_by(catalogue_item.c.code)):
        item = CatalogueItem(
            row.code,
            row.name,
            row.scenario,
            tuple(json.loads(row.regions)),
            dt.date.fromisoformat(row.valid_from) if row.valid_from else None,
            dt.date.fromisoformat(row.valid_to) if row.valid_to else None,
        )
        if not item.covers(region):
            continue
        entry: dict[str, Any] = {
            "code": item.code,
            "name": item.name,
            "scenario": item.scenario,
            "regions": list(item.regions),
        }
        if item.valid_from:
            entry["valid_from"] = item.valid_from.isoformat()
        if item.valid_to:
            entry["valid_to"] = item.valid_to.isoformat()
        items.append(entry)
    body = json.dumps(
        {"format": CATALOGUE_FORMAT, "items": items}, ensure_ascii=False, sort_keys=True
    ).encode("utf-8")
    return CatalogueDocument(body, f'"{hashlib.sha256(body).hexdigest()}"', len(items))
