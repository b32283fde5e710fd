"""The application catalogue (应用目录): which items a scenario may run under, where and when.

A catalogue file (``sscard-catalogue/1``, TOML or JSON) replaces the whole table in one
transaction. :meth:`Catalogue.find` picks, among the items of a scenario valid on a day for a
region, the most specific one: a six-digit city code beats a two-digit province prefix, which
beats ``"*"``; then the latest ``valid_from``; then the smallest code. docs/offline-store.md §8
gives the format.

The regions of an item say where the service is offered — the terminal's region — never whose
cards it takes: cards of every region are accepted alike ("全省互认", guangdong-draft.txt §3;
"省际互通", provincial-draft-2026.txt §15). :meth:`Catalogue.offered` answers the terminal's
question, "may I offer this item here today?".

TOML::

    format = "sscard-catalogue/1"

    [[items]]
    code = "GZ-BUS-01"
    name = "广州公交"
    scenario = "transit"
    regions = ["440100"]
    valid_from = 2026-01-01          # optional, a TOML date or "YYYY-MM-DD"
    valid_to = 2026-12-31            # optional, inclusive

JSON: ``{"format": "sscard-catalogue/1", "items": [{…}, …]}`` with dates as strings.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline_store.db import StorePart
from offline_store.errors import CatalogueError, StoreError

__all__ = ["CATALOGUE_FORMAT", "Catalogue", "CatalogueItem", "parse_catalogue"]

log = logging.getLogger(__name__)

CATALOGUE_FORMAT = "sscard-catalogue/1"
ALL_REGIONS = "*"
TEXT_MAX = 128
_REGION = re.compile(r"[0-9]{2}|[0-9]{6}")
_CITY = re.compile(r"[0-9]{6}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ITEM_REQUIRED = {"code", "name", "scenario", "regions"}
_ITEM_OPTIONAL = {"valid_from", "valid_to"}
_META_LOADED_AT = "catalogue.loaded_at"
_META_SOURCE = "catalogue.sha256"
CATALOGUE_SUFFIXES = (".toml", ".json")


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """One catalogue item.

    :param code: the item's code, unique in the catalogue
    :param name: its display name
    :param scenario: the scenario it belongs to
    :param regions: six-digit city codes, two-digit province prefixes, or ``"*"`` for all
    :param valid_from: the first day it applies, ``None`` for always
    :param valid_to: the last day it applies (inclusive), ``None`` for always
    """

    code: str
    name: str
    scenario: str
    regions: tuple[str, ...]
    valid_from: datetime.date | None
    valid_to: datetime.date | None

    def covers(self, region_code: str) -> int:
        """How specifically the item covers a region: 3 city, 2 province, 1 everywhere, 0 not.

        The region is where the service is offered (a terminal's region), not where a card was
        issued.

        :param region_code: a six-digit region code
        :raises: nothing
        """
        best = 0
        for region in self.regions:
            if region == region_code:
                best = max(best, 3)
            elif len(region) == 2 and region_code.startswith(region):
                best = max(best, 2)
            elif region == ALL_REGIONS:
                best = max(best, 1)
        return best

    def valid_on(self, day: datetime.date) -> bool:
        """Tell whether the item applies on a day.

        :param day: the day
        :raises: nothing
        """
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


def parse_catalogue(data: Any, source: str) -> list[CatalogueItem]:
    """Check a parsed catalogue document and build its items.

    :param data: the TOML or JSON document
    :param source: where it came from, for messages
    :raises CatalogueError: naming the item (by index and code) and the key that is wrong
    """
    if not isinstance(data, dict):
        raise CatalogueError(f"{source}: the catalogue must be a table/object")
    unknown = sorted(set(data) - {"format", "items"})
    if unknown:
        raise CatalogueError(f"{source}: unknown keys {unknown}")
    if data.get("format") != CATALOGUE_FORMAT:
        raise CatalogueError(f"{source}: format must be {CATALOGUE_FORMAT!r}")
    raw_items = data.get("items", [])
    if not isinstance(raw_items, list):
        raise CatalogueError(f"{source}: items must be a list of tables/objects")
    items: list[CatalogueItem] = []
    codes: set[str] = set()
    for index, raw in enumerate(raw_items):
        item = _item(raw, f"{source}: items[{index}]")
        if item.code in codes:
            raise CatalogueError(f"{source}: items[{index}]: code {item.code!r} appears twice")
        codes.add(item.code)
        items.append(item)
    return items


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        raise CatalogueError(f"{where}: {key} must be a non-empty one-line string")
    if len(value) > TEXT_MAX:
        raise CatalogueError(f"{where}: {key} must be at most {TEXT_MAX} characters")
    return value


def _date(raw: dict[str, Any], key: str, where: str) -> datetime.date | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise CatalogueError(f"{where}: {key} must be a date YYYY-MM-DD")


def _item(raw: object, where: str) -> CatalogueItem:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a table/object")
    missing = sorted(_ITEM_REQUIRED - raw.keys())
    unknown = sorted(raw.keys() - _ITEM_REQUIRED - _ITEM_OPTIONAL)
    if missing or unknown:
        raise CatalogueError(f"{where}: keys: missing {missing}, unknown {unknown}")
    code = _text(raw, "code", where)
    where = f"{where} ({code})"
    regions = raw["regions"]
    if (
        not isinstance(regions, list)
        or not regions
        or not all(
            isinstance(r, str) and (r == ALL_REGIONS or _REGION.fullmatch(r)) for r in regions
        )
    ):
        raise CatalogueError(
            f"{where}: regions must be a non-empty list of 6-digit city codes, 2-digit "
            'province prefixes or "*"'
        )
    valid_from = _date(raw, "valid_from", where)
    valid_to = _date(raw, "valid_to", where)
    if valid_from and valid_to and valid_from > valid_to:
        raise CatalogueError(f"{where}: valid_from is after valid_to")
    return CatalogueItem(
        code,
        _text(raw, "name", where),
        _text(raw, "scenario", where),
        tuple(regions),
        valid_from,
        valid_to,
    )


class Catalogue(StorePart):
    """The application catalogue of one store (``store.catalogue``)."""

    def load_file(self, path: str | Path) -> int:
        """Replace the catalogue with a file's items, in one transaction.

        :param path: a ``.toml`` or ``.json`` file
        :returns: the number of items loaded
        :raises CatalogueError: unreadable, not TOML/JSON, or off-schema; nothing changes
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CatalogueError(f"cannot read catalogue {path}: {exc.strerror}") from exc
        except ValueError:  # the C library cannot be given a name with a NUL in it
            raise CatalogueError(
                f"cannot read catalogue {str(path)!r}: a NUL in its name"
            ) from None
        if path.suffix not in CATALOGUE_SUFFIXES:
            raise CatalogueError(f"{path}: a catalogue file ends in .toml or .json")
        return self.load_bytes(raw, path.suffix[1:], str(path))

    def load_bytes(self, raw: bytes, syntax: str, source: str) -> int:
        """Replace the catalogue with the items of a document held in memory (what
        :meth:`load_file` does after reading; the sync client loads the platform's answer).

        :param raw: the document's bytes, UTF-8
        :param syntax: ``"toml"`` or ``"json"``
        :param source: where it came from, for messages and the log (a file, a URL)
        :returns: the number of items loaded
        :raises CatalogueError: not UTF-8, not TOML/JSON, or off-schema; nothing changes
        """
        try:
            text = raw.decode("utf-8")
            if syntax == "toml":
                data: Any = tomllib.loads(text)
            elif syntax == "json":
                data = json.loads(text)
            else:
                raise CatalogueError(f"{source}: a catalogue is TOML or JSON, not {syntax!r}")
        except UnicodeDecodeError:
            raise CatalogueError(f"{source}: not UTF-8 text") from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise CatalogueError(f"{source}: does not parse: {exc}") from None
        except RecursionError:
            # both parsers recurse per nested array or table; the stack unwound on the way here
            raise CatalogueError(f"{source}: does not parse: nested too deeply") from None
        items = parse_catalogue(data, source)
        with self._db.write() as conn:
            conn.execute("DELETE FROM catalogue")
            conn.executemany(
                "INSERT INTO catalogue (code, name, scenario, regions, valid_from, valid_to) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        item.code,
                        item.name,
                        item.scenario,
                        json.dumps(list(item.regions)),
                        item.valid_from.isoformat() if item.valid_from else None,
                        item.valid_to.isoformat() if item.valid_to else None,
                    )
                    for item in items
                ],
            )
            now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC).isoformat()
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(_META_LOADED_AT, now), (_META_SOURCE, hashlib.sha256(raw).hexdigest())],
            )
        log.info("event=catalogue_loaded items=%d source=%s", len(items), source)
        return len(items)

    def items(self) -> list[CatalogueItem]:
        """Every item, by code.

        :raises StoreError: the database failed
        """
        fetched = self._db.fetch_all(
            "SELECT code, name, scenario, regions, valid_from, valid_to FROM catalogue "
            "ORDER BY code"
        )
        return [_from_row(row) for row in fetched]

    def find(self, scenario: str, region_code: str, today: datetime.date) -> CatalogueItem | None:
        """The item a scenario runs under in a region on a day: the most specific one.

        :param scenario: the scenario
        :param region_code: the card's (or the terminal's) six-digit region code
        :param today: the day
        :returns: the item, or ``None`` when none covers the region that day
        :raises StoreError: the region code is not six digits
        """
        if not isinstance(region_code, str) or not _CITY.fullmatch(region_code):
            raise StoreError("region code must be 6 ASCII digits")
        fetched = self._db.fetch_all(
            "SELECT code, name, scenario, regions, valid_from, valid_to FROM catalogue "
            "WHERE scenario = ?",
            (scenario,),
        )
        candidates = [
            item
            for item in map(_from_row, fetched)
            if item.valid_on(today) and item.covers(region_code)
        ]
        if not candidates:
            return None
        # most specific region, then the newest item, then the smallest code
        return min(
            candidates,
            key=lambda item: (
                -item.covers(region_code),
                -(item.valid_from or datetime.date.min).toordinal(),
                item.code,
            ),
        )

    def offered(
        self, code: str, scenario: str, region: str | None, today: datetime.date
    ) -> CatalogueItem | None:
        """The item a terminal offers a service under: the item ``code`` of ``scenario``, valid
        on the day, whose regions cover the terminal's region.

        :param code: the item's code (the profile's ``catalogue_item``)
        :param scenario: the scenario
        :param region: the terminal's six-digit region code; ``None`` when the terminal has none
            configured: then the catalogue it holds is taken as its own (the platform serves
            each terminal the items of its registered region) and regions are not matched
        :param today: the day
        :returns: the item, or ``None`` when the terminal may not offer it
        :raises StoreError: a region that is not six digits, or the database failed
        """
        if region is not None and (not isinstance(region, str) or not _CITY.fullmatch(region)):
            raise StoreError("region code must be 6 ASCII digits")
        found = self._db.fetch_one(
            "SELECT code, name, scenario, regions, valid_from, valid_to FROM catalogue "
            "WHERE code = ? AND scenario = ?",
            (code, scenario),
        )
        if found is None:
            return None
        item = _from_row(found)
        if not item.valid_on(today) or (region is not None and not item.covers(region)):
            return None
        return item

    def loaded_at(self) -> datetime.datetime | None:
        """When the catalogue was last loaded (UTC), ``None`` if never.

        :raises StoreError: the database failed
        """
        found = self._db.fetch_one("SELECT value FROM meta WHERE key = ?", (_META_LOADED_AT,))
        return datetime.datetime.fromisoformat(found[0]) if found else None


def _from_row(row: tuple[Any, ...]) -> CatalogueItem:
    code, name, scenario, regions, valid_from, valid_to = row
    return CatalogueItem(
        code,
        name,
        scenario,
        tuple(json.loads(regions)),
        datetime.date.fromisoformat(valid_from) if valid_from else None,
        datetime.date.fromisoformat(valid_to) if valid_to else None,
    )
