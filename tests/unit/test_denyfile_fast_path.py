"""The deny-list line parsers' regular-expression fast paths (the platform's own layout) give
exactly what the JSON path gives for the same entry written another way (keys reordered, so
the fast path cannot match), errors included."""

from __future__ import annotations

import json

import pytest

from offline_store.denyfile import delta_entry, snapshot_entry
from offline_store.errors import DenyListError

HASH = "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"


def _layouts(entry: dict[str, str]) -> tuple[bytes, bytes, bytes]:
    """The platform's layout, the compact one (both fast), and the keys reversed (JSON path)."""
    reordered = dict(reversed(list(entry.items())))
    return (
        json.dumps(entry).encode() + b"\n",
        json.dumps(entry, separators=(",", ":")).encode() + b"\r\n",
        json.dumps(reordered).encode() + b"\n",
    )


def _parsed(parse, line: bytes):
    try:
        return parse(line, 7)
    except DenyListError as exc:
        return str(exc)


@pytest.mark.parametrize(
    "entry",
    [
        {"op": "add", "hash": HASH, "reason": "fraud", "effective": "2026-11-29"},
        {"op": "add", "hash": HASH, "reason": "stolen", "effective": "2026-11-29"},
        {"op": "add", "hash": HASH, "reason": "lost", "effective": "2026-02-30"},
        {"op": "remove", "hash": HASH},
    ],
)
def test_a_delta_line_parses_the_same_on_either_path(entry: dict[str, str]) -> None:
    fast, compact, slow = (_parsed(delta_entry, line) for line in _layouts(entry))
    assert fast == compact == slow
    if entry["op"] == "remove":
        assert fast == ("remove", bytes.fromhex(HASH), "", 0)


@pytest.mark.parametrize("reason", ["lost", "robbed"])
def test_a_snapshot_line_parses_the_same_on_either_path(reason: str) -> None:
    entry = {"hash": HASH, "reason": reason, "effective": "2026-11-20"}
    fast, compact, slow = (_parsed(snapshot_entry, line) for line in _layouts(entry))
    assert fast == compact == slow
