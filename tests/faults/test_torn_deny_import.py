"""Fault campaign: ``sscard deny import`` killed mid-import, and a damaged deny-list entry.

A snapshot of 50,000 entries (``make faults``: 1,000,000, ten kills) is imported by the real
CLI, which is killed with SIGKILL at a random moment of its run, three times: each time the
list imported before stays whole and active — its card still found, none of the new list's —
unless the kill came after the import's commit (then the new list is whole and active), and the
file passes SQLite's integrity check; the import then runs to the end. An entry damaged
under SQLite (its reason or date no longer decodes, as a bad sector leaves it) is a
``StoreError`` at lookup, never a silent "not listed".
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from daemon_support import PEPPER, make_terminal
from fault_support import seeded, size
from store_support import entry, h, header, public_pem, raw, write_list

from offline_store import Store, StoreError, ed25519_verifier

pytestmark = pytest.mark.e2e

ENTRIES = size(50_000, 1_000_000)
KILLS = size(3, 10)
LISTED = 1  # the card of the list imported first (test card 1)


def _created(hours_ago: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)).isoformat()


def _import(config: Path, path: Path, pem: Path) -> subprocess.Popen[str]:
    """``sscard deny import`` as a child (its timing varies: not a golden call)."""
    return subprocess.Popen(
        [sys.executable, "-m", "terminal.cli", "deny", "import", str(path), "--config",
         str(config), "--public-key", str(pem)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _deny(store_path: Path) -> tuple[int | None, bool, bool]:
    """(active version, the first list's card found, a new list's card found)."""
    with Store.open(store_path, pepper=PEPPER) as store:
        return (
            store.deny.status().version,
            store.deny.lookup(h(LISTED)) is not None,
            store.deny.lookup(h(LISTED + 2)) is not None,
        )


def _integrity(store_path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def test_an_import_killed_midway_leaves_the_old_list_whole(tmp_path: Path) -> None:
    terminal = make_terminal(tmp_path)
    store_path = tmp_path / "store.db"
    signer = Ed25519PrivateKey.generate()
    pem = tmp_path / "faults-signing.pem"
    pem.write_bytes(public_pem(signer))
    old = write_list(tmp_path / "v2.jsonl", header("snapshot", 2, 1, created=_created(0.5)),
                     [entry(LISTED)], signer)  # fmt: skip
    done = _import(terminal.config, old, pem)
    assert done.wait(timeout=60) == 0, done.communicate()
    cards = range(LISTED + 1, LISTED + 1 + ENTRIES)
    new = write_list(tmp_path / "v3.jsonl", header("snapshot", 3, ENTRIES, created=_created(0.1)),
                     (entry(n) for n in cards), signer)  # fmt: skip
    kept = tmp_path / "v2-store.db"  # the store with the first list active (no WAL left)
    shutil.copyfile(store_path, kept)
    started = time.monotonic()
    done = _import(terminal.config, new, pem)
    assert done.wait(timeout=600) == 0, done.communicate()
    whole_s = time.monotonic() - started
    assert _deny(store_path) == (3, False, True)
    seed, rng = seeded()
    torn = 0  # kills that landed before the new list's commit
    for kill in range(KILLS):
        shutil.copyfile(kept, store_path)  # the first list active again, the same file to import
        child = _import(terminal.config, new, pem)
        delay = rng.uniform(0.2, whole_s * 0.9)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        status = child.wait(timeout=60)
        child.communicate()
        where = f"seed {seed} kill {kill} after {delay:.2f} s of {whole_s:.2f} s"
        if status == 0:  # it finished first on a fast machine: nothing to check this round
            continue
        assert _integrity(store_path) == ["ok"], where
        # killed before its commit, the old list; after it (the process not yet gone), the new
        # one: either whole, never a mixture
        state = _deny(store_path)
        assert state in ((2, True, False), (3, False, True)), (where, state)
        torn += state[0] == 2
    print(f"seed {seed}: {KILLS} kills, {torn} before the commit")
    done = _import(terminal.config, new, pem)
    assert done.wait(timeout=600) == 0, done.communicate()
    assert _deny(store_path) == (3, False, True)


def test_a_damaged_entry_is_an_error_never_a_silent_accept(tmp_path: Path) -> None:
    store_path = tmp_path / "store.db"
    signer = Ed25519PrivateKey.generate()
    listed = write_list(tmp_path / "v1.jsonl", header("snapshot", 1, 2), [entry(1), entry(2)],
                        signer)  # fmt: skip
    with Store.open(store_path, pepper=PEPPER) as store:
        store.deny.import_file(listed, ed25519_verifier(public_pem(signer)))
        assert store.deny.lookup(h(1)) is not None
    conn = raw(store_path)
    conn.execute("PRAGMA ignore_check_constraints = ON")  # as a bad sector would, past them
    conn.execute(
        "UPDATE deny_entry SET reason = 'lozt' WHERE card_hash = ?", (bytes.fromhex(h(1)),)
    )
    conn.execute("UPDATE deny_entry SET effective = 20261399 WHERE card_hash = ?",
                 (bytes.fromhex(h(2)),))  # fmt: skip
    conn.close()
    with Store.open(store_path, pepper=PEPPER) as store:
        for n in (1, 2):
            with pytest.raises(StoreError, match="the entry of this card is damaged"):
                store.deny.lookup(h(n))
        assert store.deny.lookup(h(3)) is None  # an unlisted card is still not listed
