"""The offline store on real SQLite files: the owner lock, schema versions and migrations, the
connection's settings, secret files, the replay cache, the access audit and the catalogue.
The deny list and the journal have their own modules (test_store_denylist.py,
test_store_journal.py); a crash test is in test_store_crash.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import KEY, NOON, PEPPER, TOKEN, Clock, raw

from offline_store import (
    CatalogueError,
    JournalEntry,
    SchemaTooNew,
    SecretFileError,
    Store,
    StoreError,
    StoreLocked,
    canonical_card_id,
    load_key_file,
    load_pepper_file,
)
from offline_store.db import MIGRATIONS, open_database

pytestmark = pytest.mark.emulated

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", journal_key=KEY, pepper=PEPPER, clock=clock) as opened:
        yield opened


def journal_of(path: Path, rows: int) -> None:
    with Store.open(path, journal_key=KEY) as store:
        for n in range(rows):
            store.journal.append(
                JournalEntry("transit", "0301", TOKEN, "accept", "ok", 100 + n, terminal_id="T")
            )


# --- replay cache --------------------------------------------------------------------------


def test_replay_keys_are_new_once_within_their_lifetime(tmp_path, clock) -> None:
    path = tmp_path / "store.db"
    with Store.open(path, clock=clock) as store:
        assert store.replay.check_and_add("qr:nonce-1", ttl_s=30)
        assert not store.replay.check_and_add("qr:nonce-1", ttl_s=30)
        assert store.replay.check_and_add("qr:nonce-2", ttl_s=120)
    clock.now += 29
    with Store.open(path, clock=clock) as store:  # remembered across a restart
        assert not store.replay.check_and_add("qr:nonce-1", ttl_s=30)
        clock.now += 1
        assert store.replay.purge() == 1
        assert store.replay.check_and_add("qr:nonce-1", ttl_s=30)
        assert not store.replay.check_and_add("qr:nonce-2", ttl_s=30)
    with raw(path) as conn:
        keys = [k for (k,) in conn.execute("SELECT key_hash FROM replay")]
    assert hashlib.sha256(b"qr:nonce-2").hexdigest() in keys
    assert not any("nonce" in k for k in keys)


@pytest.mark.parametrize(
    ("key", "ttl"), [("", 10), ("k", 0), ("k", -1), ("k", float("inf")), ("k", "10")]
)
def test_replay_refuses_bad_keys_and_lifetimes(store, key, ttl) -> None:
    with pytest.raises(StoreError, match="replay"):
        store.replay.check_and_add(key, ttl)


# --- audit ---------------------------------------------------------------------------------


def test_audit_rows_hold_names_only(store, clock) -> None:
    for n in range(3):
        store.audit.record(f"operator:{n}", "T-1", "hotel", ["name", "medical.insured"], "check-in")
        clock.now += 1
    rows = store.audit.rows()
    assert [r.who for r in rows] == ["operator:0", "operator:1", "operator:2"]
    assert rows[0].fields == ("name", "medical.insured")
    assert [r.who for r in store.audit.rows(limit=2)] == ["operator:1", "operator:2"]
    with pytest.raises(StoreError, match="a value was perhaps given") as caught:
        store.audit.record("operator:9", "T-1", "hotel", ["name", "张三"], "check-in")
    assert "张三" not in str(caught.value)
    with pytest.raises(StoreError, match="sequence of field names"):
        store.audit.record("operator:9", "T-1", "hotel", "name", "check-in")
    with pytest.raises(StoreError, match="who"):
        store.audit.record("", "T-1", "hotel", ["name"], "check-in")
    assert len(store.audit.rows()) == 3


# --- catalogue -----------------------------------------------------------------------------

CATALOGUE_TOML = """
format = "sscard-catalogue/1"

[[items]]
code = "0301"
name = "公交乘车"
scenario = "transit"
regions = ["44"]

[[items]]
code = "0302"
name = "广州公交"
scenario = "transit"
regions = ["440100", "440300"]
valid_from = 2026-01-01
valid_to = 2026-12-31

[[items]]
code = "0900"
name = "全国通用"
scenario = "transit"
regions = ["*"]

[[items]]
code = "0501"
name = "酒店入住"
scenario = "hotel"
regions = ["*"]
valid_to = "2026-06-30"
"""


def test_the_catalogue_finds_the_most_specific_item(store, tmp_path, clock) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(CATALOGUE_TOML, encoding="utf-8")
    assert store.catalogue.loaded_at() is None
    assert store.catalogue.load_file(path) == 4
    assert store.catalogue.loaded_at() == dt.datetime.fromtimestamp(NOON, dt.UTC)
    in_2026 = dt.date(2026, 11, 29)

    def code(scenario: str, region: str, day: dt.date) -> str | None:
        item = store.catalogue.find(scenario, region, day)
        return item.code if item else None

    assert code("transit", "440100", in_2026) == "0302"  # city beats province
    assert code("transit", "440100", dt.date(2027, 1, 1)) == "0301"  # 0302 expired
    assert code("transit", "441900", in_2026) == "0301"  # province beats "*"
    assert code("transit", "110000", in_2026) == "0900"
    assert code("hotel", "110000", in_2026) is None  # valid_to 2026-06-30
    assert code("hotel", "110000", dt.date(2026, 6, 30)) == "0501"
    assert code("library", "110000", in_2026) is None
    items = store.catalogue.items()
    assert [i.code for i in items] == ["0301", "0302", "0501", "0900"]
    assert items[1].regions == ("440100", "440300")
    assert items[1].valid_from == dt.date(2026, 1, 1)
    with pytest.raises(StoreError, match="6 ASCII digits"):
        store.catalogue.find("transit", "44", in_2026)


def test_a_json_catalogue_replaces_the_table(store, tmp_path) -> None:
    toml = tmp_path / "catalogue.toml"
    toml.write_text(CATALOGUE_TOML, encoding="utf-8")
    store.catalogue.load_file(toml)
    doc = {
        "format": "sscard-catalogue/1",
        "items": [
            {
                "code": "L1",
                "name": "图书馆",
                "scenario": "library",
                "regions": ["*"],
                "valid_from": "2026-01-01",
            }
        ],
    }
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    assert store.catalogue.load_file(path) == 1
    assert [i.code for i in store.catalogue.items()] == ["L1"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('format = "sscard-catalogue/2"\n', "format must be"),
        ('format = "sscard-catalogue/1"\nowner = "x"\n', "unknown keys ['owner']"),
        (
            'format = "sscard-catalogue/1"\n[[items]]\ncode = "A"\nname = "a"\nscenario = "s"\n'
            'regions = ["4401"]\n',
            "items[0] (A): regions must be",
        ),
        (
            'format = "sscard-catalogue/1"\n[[items]]\ncode = "A"\nname = "a"\nscenario = "s"\n'
            'regions = ["*"]\nvalid_from = 2026-02-01\nvalid_to = 2026-01-01\n',
            "valid_from is after valid_to",
        ),
        (
            'format = "sscard-catalogue/1"\n[[items]]\ncode = "A"\nname = "a"\nscenario = "s"\n'
            'regions = ["*"]\n[[items]]\ncode = "A"\nname = "b"\nscenario = "s"\nregions = ["*"]\n',
            "items[1]: code 'A' appears twice",
        ),
        (
            'format = "sscard-catalogue/1"\n[[items]]\ncode = "A"\nname = "a"\nscenario = "s"\n'
            'regions = ["*"]\nprice = 3\n',
            "unknown ['price']",
        ),
        ('format = "sscard-catalogue/1"\n[[items]\n', "does not parse"),
        (
            "items = " + "[" * 5000 + "]" * 5000 + "\n",
            "bad.toml: does not parse: nested too deeply",
        ),
    ],
)
def test_a_bad_catalogue_is_refused_and_changes_nothing(store, tmp_path, text, problem) -> None:
    good = tmp_path / "good.toml"
    good.write_text(CATALOGUE_TOML, encoding="utf-8")
    store.catalogue.load_file(good)
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        store.catalogue.load_file(bad)
    assert problem in str(caught.value)
    assert len(store.catalogue.items()) == 4


def test_a_deeply_nested_json_catalogue_from_the_platform_is_refused(store) -> None:
    raw = b'{"format": "sscard-catalogue/1", "items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(CatalogueError, match=r"^https://p\.example/c: does not parse: nested"):
        store.catalogue.load_bytes(raw, "json", "https://p.example/c")


def test_a_catalogue_path_with_a_nul_is_refused(store, tmp_path) -> None:
    with pytest.raises(CatalogueError, match=r"cannot read catalogue .*a NUL in its name"):
        store.catalogue.load_file(tmp_path / "cata\x00logue.toml")


def test_a_catalogue_needs_a_known_suffix(store, tmp_path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text("format: x\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"\.toml or \.json"):
        store.catalogue.load_file(path)


# --- the file: lock, schema, migrations, settings ----------------------------------------


def test_a_second_open_is_refused_while_the_first_holds_the_file(tmp_path) -> None:
    path = tmp_path / "sub" / "store.db"
    first = Store.open(path)
    try:
        with pytest.raises(StoreLocked) as caught:
            Store.open(path)
        assert caught.value.pid == os.getpid()
        assert str(path) in str(caught.value)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom offline_store import Store, StoreLocked\n"
                "try:\n    Store.open(sys.argv[1])\nexcept StoreLocked as exc:\n"
                "    print(exc)\n    sys.exit(3)\n",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=ROOT,
        )
        assert child.returncode == 3, child.stderr
        assert f"{path} is in use by process {os.getpid()}" in child.stdout
    finally:
        first.close()
    first.close()  # idempotent
    with Store.open(path) as again:
        assert not again.closed
    assert again.closed


def test_a_closed_store_refuses_work(tmp_path) -> None:
    store = Store.open(tmp_path / "store.db")
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.deny.status()
    with pytest.raises(StoreError, match="is closed"):
        store.journal.append(JournalEntry("transit", None, "", "refuse", "x", None))


def test_the_file_is_private_wal_and_fully_synced(store) -> None:
    assert store.path.stat().st_mode & 0o777 == 0o600
    conn = store._db.conn  # the store's own connection: synchronous is per connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(tmp_path) -> None:
    path = tmp_path / "store.db"
    Store.open(path).close()
    with raw(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match=r"written by a newer sscard.*version 99"):
        Store.open(path)
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
    with pytest.raises(SchemaTooNew):  # the lock was released by the failed open
        Store.open(path)


def test_migrations_run_in_order_once_and_a_failing_one_changes_nothing(tmp_path) -> None:
    path = tmp_path / "store.db"
    journal_of(path, 2)
    ran: list[str] = []

    def add_note(db: sqlite3.Connection) -> None:
        ran.append("add_note")
        db.execute("ALTER TABLE journal ADD COLUMN note TEXT")

    def broken(db: sqlite3.Connection) -> None:
        ran.append("broken")
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("disk on fire")

    store_db = open_database(path, (*MIGRATIONS, add_note))
    store_db.close()
    store_db = open_database(path, (*MIGRATIONS, add_note))  # nothing pending: nothing runs
    store_db.close()
    assert ran == ["add_note"]
    with pytest.raises(RuntimeError, match="disk on fire"):
        open_database(path, (*MIGRATIONS, add_note, broken))
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(journal)")}
    assert "half_done" not in tables
    assert "note" in columns
    with pytest.raises(SchemaTooNew):  # this code's migrations meet a file one step newer
        Store.open(path)


def test_an_sqlite_file_of_another_program_or_garbage_is_refused(tmp_path) -> None:
    foreign = tmp_path / "foreign.db"
    with raw(foreign) as conn:
        conn.execute("CREATE TABLE users (name)")
    with pytest.raises(StoreError, match="not an sscard offline store"):
        Store.open(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="not an sscard offline store"):
        Store.open(garbage)
    assert garbage.read_bytes() == b"this is not a database at all" * 200


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"journal_key": bytes(16)}, "journal key must be 32 bytes"),
        ({"pepper": b"short"}, "at least 16 bytes"),
        ({"journal_cap_rows": 0}, "journal_cap_rows"),
    ],
)
def test_open_checks_its_arguments_before_touching_the_file(tmp_path, options, problem) -> None:
    with pytest.raises(StoreError, match=problem):
        Store.open(tmp_path / "store.db", **options)
    assert not (tmp_path / "store.db").exists()


def test_card_hash_needs_a_pepper(tmp_path) -> None:
    canonical = canonical_card_id("440100", "D2143569X")
    with Store.open(tmp_path / "store.db", pepper=bytes(range(16))) as store:
        assert store.card_hash(canonical) == TOKEN  # docs §2.4
    with (
        Store.open(tmp_path / "store.db") as store,
        pytest.raises(StoreError, match="no deny-list pepper"),
    ):
        store.card_hash(canonical)


# --- secret files ----------------------------------------------------------------------------


def private(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def test_the_journal_key_file_is_hex_or_raw_and_private(tmp_path) -> None:
    assert load_key_file(private(tmp_path / "hex.key", KEY.hex().encode() + b"\n")) == KEY
    assert load_key_file(private(tmp_path / "raw.key", KEY)) == KEY
    loose = private(tmp_path / "loose.key", KEY.hex().encode(), 0o640)
    with pytest.raises(SecretFileError, match=f"mode 0640.*chmod 600 {loose}"):
        load_key_file(loose)
    with pytest.raises(SecretFileError, match="must hold 32 bytes") as caught:
        load_key_file(private(tmp_path / "short.key", KEY[:16].hex().encode()))
    assert KEY[:16].hex() not in str(caught.value)
    with pytest.raises(SecretFileError, match="cannot read journal key file"):
        load_key_file(tmp_path / "absent.key")


def test_the_pepper_file_is_hex_or_raw_and_private(tmp_path) -> None:
    assert load_pepper_file(private(tmp_path / "hex", PEPPER.hex().encode() + b"\n")) == PEPPER
    assert (
        load_pepper_file(private(tmp_path / "raw", b"a pepper, raw bytes!"))
        == b"a pepper, raw bytes!"
    )
    with pytest.raises(SecretFileError, match="at least 16 bytes"):
        load_pepper_file(private(tmp_path / "short", b"0011223344556677"))  # 8 bytes as hex
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_pepper_file(private(tmp_path / "loose", PEPPER.hex().encode(), 0o604))
