"""What the offline store keeps for the sync client: the journal's cursors
(:meth:`Journal.backlog`), named values (``store.meta``) and a catalogue loaded from bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import Clock

from offline_store import CatalogueError, JournalEntry, Store, StoreError

pytestmark = pytest.mark.emulated


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", clock=Clock()) as opened:
        yield opened


def test_the_backlog_follows_appends_acknowledgements_and_pruning(store: Store) -> None:
    assert store.journal.backlog().pending == 0
    for _ in range(5):
        store.journal.append(JournalEntry("gate", None, "", "accept", "ok", None))
    assert store.journal.backlog() == type(store.journal.backlog())(5, 0, 0)
    store.journal.acknowledge(3)
    backlog = store.journal.backlog()
    assert (backlog.last_seq, backlog.acked_seq, backlog.anchor_seq, backlog.pending) == (
        5,
        3,
        0,
        2,
    )
    store.journal.prune()
    assert store.journal.backlog().anchor_seq == 3


def test_meta_values_are_set_together_read_back_and_deleted(store: Store, tmp_path: Path) -> None:
    assert store.meta.get("sync.server_time") is None
    store.meta.set({"sync.server_time": "1800000000.000", "sync.clock_offset_s": "-1.500"})
    assert store.meta.get("sync.clock_offset_s") == "-1.500"
    store.meta.set({"sync.clock_offset_s": None})
    assert store.meta.get("sync.clock_offset_s") is None
    store.close()
    with Store.open(tmp_path / "store.db") as again:
        assert again.meta.get("sync.server_time") == "1800000000.000"


@pytest.mark.parametrize("key", ["", "sync", "Sync.x", "sync.", "sync..x", "a" * 60 + ".bcdef"])
def test_meta_keys_are_dotted_lower_case_names(store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="meta key"):
        store.meta.set({key: "x"})


def test_a_meta_value_is_short_text_and_a_bad_one_changes_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="at most 1024"):
        store.meta.set({"sync.a": "ok", "sync.b": "x" * 1025})
    assert store.meta.get("sync.a") is None


def test_a_catalogue_loads_from_bytes_and_a_bad_one_changes_nothing(store: Store) -> None:
    document = {
        "format": "sscard-catalogue/1",
        "items": [{"code": "0501", "name": "图书馆", "scenario": "gate", "regions": ["*"]}],
    }
    assert store.catalogue.load_bytes(json.dumps(document).encode(), "json", "platform") == 1
    with pytest.raises(CatalogueError, match="platform: does not parse"):
        store.catalogue.load_bytes(b'{"format": ', "json", "platform")
    with pytest.raises(CatalogueError, match="TOML or JSON"):
        store.catalogue.load_bytes(b"", "yaml", "platform")
    assert [item.code for item in store.catalogue.items()] == ["0501"]
