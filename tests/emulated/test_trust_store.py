"""The e-card trust list in the offline store, on real SQLite files: save, load and verify
again, keep the previous list, refuse older versions and edited rows, and the forward migration
from schema version 1 on an existing file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import KEY, NOON, Clock, raw, write_old_journal_rows

from drivers.virtual import TEST_KEYS
from ecard import (
    Alg,
    PrivateKey,
    QrReason,
    QrRefused,
    TrustListError,
    load_private_key,
    load_stored_trust_list,
    make_trust_list,
    save_trust_list,
)
from offline_store import Store, StoreError, TrustVersionError
from offline_store.db import MIGRATIONS

pytestmark = pytest.mark.emulated

KEYS = TEST_KEYS
ROOT_KEY = load_private_key((KEYS / "qr-root-test.pem").read_bytes())
ROOT_PEM = ROOT_KEY.public_key.to_pem()
ES256 = load_private_key((KEYS / "qr-platform-es256-test.pem").read_bytes()).public_key
SM2 = load_private_key((KEYS / "qr-platform-sm2-test.pem").read_bytes()).public_key
DAY = 86400


def trust_list(version: int, *keys: object, days: int = 30) -> bytes:
    return make_trust_list(
        list(keys) or [ES256, SM2], ROOT_KEY, version, int(NOON) - DAY, int(NOON) + days * DAY
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", journal_key=KEY, clock=clock) as opened:
        yield opened


def test_an_empty_store_has_no_trust_list(store: Store) -> None:
    assert store.trust.load() is None
    assert store.trust.load_previous() is None
    assert store.trust.info() is None
    assert load_stored_trust_list(store, ROOT_PEM, NOON) is None


def test_a_saved_list_survives_a_restart_and_is_verified_again(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    data = trust_list(1)
    with Store.open(path) as store:
        saved = save_trust_list(store, data, ROOT_PEM, NOON)
    with Store.open(path) as store:
        assert store.trust.load() == data
        again = load_stored_trust_list(store, ROOT_PEM, NOON)
        info = store.trust.info()
    assert again == saved
    assert info is not None
    assert (info.version, info.not_after) == (1, int(NOON) + 30 * DAY)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


def test_a_newer_list_keeps_the_previous_one_and_drops_older(store: Store) -> None:
    first, second, third = trust_list(1), trust_list(2, SM2), trust_list(5, ES256)
    for data in (first, second, third):
        save_trust_list(store, data, ROOT_PEM, NOON)
    assert store.trust.load() == third
    assert store.trust.load_previous() == second
    with raw(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trust_list").fetchone()[0] == 2


def test_an_older_or_conflicting_version_is_refused_and_changes_nothing(store: Store) -> None:
    save_trust_list(store, trust_list(3), ROOT_PEM, NOON)
    save_trust_list(store, trust_list(3), ROOT_PEM, NOON)  # the same list again: nothing to do
    with pytest.raises(TrustVersionError, match="not newer than the active version 3"):
        save_trust_list(store, trust_list(2), ROOT_PEM, NOON)
    with pytest.raises(TrustVersionError):
        save_trust_list(store, trust_list(3, SM2), ROOT_PEM, NOON)
    assert store.trust.load() == trust_list(3)
    assert store.trust.load_previous() is None


def test_a_list_that_does_not_verify_is_never_saved(store: Store) -> None:
    other_root = PrivateKey.generate(Alg.ES256)
    foreign = make_trust_list([ES256], other_root, 9, int(NOON) - DAY, int(NOON) + DAY)
    with pytest.raises(TrustListError):
        save_trust_list(store, foreign, ROOT_PEM, NOON)
    with pytest.raises(QrRefused) as caught:
        save_trust_list(store, trust_list(9, days=0), ROOT_PEM, NOON + 2 * DAY)
    assert caught.value.reason is QrReason.STALE_TRUST_LIST
    assert store.trust.load() is None


def test_a_row_edited_behind_the_stores_back_is_refused(store: Store) -> None:
    data = trust_list(1)
    save_trust_list(store, data, ROOT_PEM, NOON)
    forged = data[:-1] + bytes([data[-1] ^ 1])  # one bit of the last key's point
    with raw(store.path) as conn:
        conn.execute("UPDATE trust_list SET raw = ? WHERE state = 'active'", (forged,))
    with pytest.raises(StoreError, match="changed since it was saved"):
        store.trust.load()
    # an editor who also fixes the stored hash still meets the root signature
    with raw(store.path) as conn:
        conn.execute(
            "UPDATE trust_list SET sha256 = ? WHERE state = 'active'",
            (hashlib.sha256(forged).hexdigest(),),
        )
    with pytest.raises(TrustListError):
        load_stored_trust_list(store, ROOT_PEM, NOON)


def test_a_stored_list_goes_stale_with_time(store: Store) -> None:
    save_trust_list(store, trust_list(1, days=2), ROOT_PEM, NOON)
    assert load_stored_trust_list(store, ROOT_PEM, NOON + DAY) is not None
    with pytest.raises(QrRefused) as caught:
        load_stored_trust_list(store, ROOT_PEM, NOON + 3 * DAY)
    assert caught.value.reason is QrReason.STALE_TRUST_LIST


@pytest.mark.parametrize(
    ("raw_bytes", "version", "not_after"),
    [(b"", 1, 1), (b"x", 0, 1), (b"x", 1, 0), (b"x", True, 1), ("x", 1, 1)],
)
def test_the_store_refuses_nonsense(
    store: Store, raw_bytes: object, version: object, not_after: object
) -> None:
    with pytest.raises(StoreError):
        store.trust.save(raw_bytes, version, not_after)  # type: ignore[arg-type]


def test_a_version_1_file_migrates_with_its_data(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "store.db"
    # a store as the previous release wrote it: schema 1, with journal rows
    write_old_journal_rows(path, (100, 200), version=1)
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "trust_list" not in tables
    with Store.open(path, journal_key=KEY, clock=clock) as store:
        assert store.trust.load() is None
        save_trust_list(store, trust_list(1), ROOT_PEM, NOON)
        assert [row.amount for row in store.journal.rows()] == [100, 200]
        assert store.journal.verify_chain().ok
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
