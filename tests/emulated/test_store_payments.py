"""Payment rows of the journal on real SQLite files (issue 15, schema 6): the payment object
uploaded in clear and hashed, encrypted at rest, checked on the way in; the open purchases of
``payment_open`` opened, updated and closed in the journal row's transaction."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import KEY, NOON, TOKEN, Clock, raw, write_old_journal_rows

from offline_store import JournalEntry, JournalError, Store
from offline_store.chain import canonical_bytes, chain_hash
from offline_store.db import SCHEMA_VERSION
from offline_store.payment import Payment

pytestmark = pytest.mark.emulated

SERIAL = "0123456789ABCDEF0102"
PENDING = Payment(
    kind="transit",
    state="pending",
    amount_fen=200,
    balance_before=5000,
    balance_after=4800,
    card_sequence=17,
    terminal_sequence=305,
    tac=None,
    time="20261129075803",
    terminal_number="012345678901",
    card_serial=SERIAL,
    issuer="0102030405060708",
)
DONE = dataclasses.replace(PENDING, state="done", tac="1A2B3C4D")
NOW = NOON


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", journal_key=KEY, clock=Clock()) as opened:
        yield opened


def fare(payment: Payment | None) -> JournalEntry:
    return JournalEntry(
        scenario="transit",
        catalogue_item="0301",
        credential_token=TOKEN,
        outcome="accept",
        reason_code="ok",
        amount=200,
        terminal_id="440100-T0001",
        payment=payment,
    )


def test_the_payment_object_is_uploaded_in_clear_and_hashed(store: Store) -> None:
    store.journal.append(fare(PENDING), recovery={"step": "pending"})
    store.journal.append(fare(DONE))
    rows = list(store.journal.rows())
    assert [r.payment["state"] for r in rows if r.payment] == ["pending", "done"]
    record = rows[1].record()
    assert record["payment"] == {
        "kind": "transit",
        "state": "done",
        "amount_fen": 200,
        "balance_before": 5000,
        "balance_after": 4800,
        "card_sequence": 17,
        "terminal_sequence": 305,
        "tac": "1A2B3C4D",
        "time": "20261129075803",
        "terminal_number": "012345678901",
        "card_serial": SERIAL,
        "issuer": "0102030405060708",
    }
    # integers are JSON numbers; the chain hash covers the object's digest, which the
    # platform computes from the object it receives
    assert canonical_bytes(record["payment"]).startswith(b'{"amount_fen":200,')
    hashed = {**record, "payment": hashlib.sha256(canonical_bytes(record["payment"])).hexdigest()}
    assert chain_hash(rows[1].prev_hash, canonical_bytes(hashed)) == rows[1].hash
    assert store.journal.verify_chain().ok
    assert Payment.from_json(record["payment"]) == DONE


def test_the_card_serial_is_not_stored_in_clear(store: Store) -> None:
    store.journal.append(fare(PENDING), recovery={"serial": SERIAL})
    conn = raw(store.path)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert SERIAL not in dump and SERIAL.lower() not in dump
    assert "payment_ct" in dump


def test_a_payment_without_a_journal_key_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as keyless:
        with pytest.raises(JournalError, match="journal key"):
            keyless.journal.append(fare(PENDING))
        assert keyless.journal.count() == 0


def test_a_wrong_key_fails_verify_with_the_row_named(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", journal_key=KEY) as store:
        store.journal.append(fare(None))
        store.journal.append(fare(DONE))
    with Store.open(tmp_path / "s.db", journal_key=bytes(32)) as other:
        report = other.journal.verify_chain()
    assert not report.ok and report.first_bad_seq == 2 and "decrypt" in (report.problem or "")


def test_an_altered_payment_breaks_the_chain(store: Store) -> None:
    store.journal.append(fare(DONE))
    row = next(store.journal.rows())
    forged = dataclasses.replace(row, payment={**DONE.to_json(), "amount_fen": 1})
    assert (
        chain_hash(row.prev_hash, dataclasses.replace(forged, payment_sha256=None).canonical())
        != row.hash
    )
    conn = raw(store.path)
    conn.execute("UPDATE journal SET payment_sha256 = ? WHERE seq = 1", ("0" * 64,))
    conn.close()
    report = store.journal.verify_chain()
    assert not report.ok and report.first_bad_seq == 1


def test_the_chain_verifies_without_the_journal_key(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", journal_key=KEY) as store:
        store.journal.append(fare(PENDING), recovery={"step": 1})
        store.journal.append(fare(DONE))
    with Store.open(tmp_path / "s.db") as keyless:
        assert keyless.journal.verify_chain().ok
        row = keyless.journal.last()
        assert row is not None and row.payment is None and row.payment_sha256 is not None
        with pytest.raises(JournalError, match="journal key"):
            row.record()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "bus"}, "kind"),
        ({"state": "maybe"}, "state"),
        ({"amount_fen": -1}, "amount_fen"),
        ({"amount_fen": True}, "amount_fen"),
        ({"card_sequence": 0x10000}, "card_sequence"),
        ({"tac": "1a2b3c4d"}, "tac"),
        ({"time": "2026-11-29"}, "time"),
        ({"time": "20261332075803"}, "time"),
        ({"terminal_number": "01234567890A"}, "terminal_number"),
        ({"card_serial": SERIAL[:-1]}, "card_serial"),
        ({"issuer": None}, "issuer"),
        ({"self_pay_fen": 5}, "medical"),
        ({"state": "done", "tac": None}, "TAC"),
    ],
)
def test_a_malformed_payment_is_refused(store: Store, change: dict[str, Any], message: str) -> None:
    with pytest.raises(JournalError, match=message):
        store.journal.append(fare(dataclasses.replace(PENDING, **change)))
    assert store.journal.count() == 0


def test_a_medical_payment_carries_its_parts() -> None:
    medical = dataclasses.replace(
        DONE, kind="medical", card_serial="AB" * 16, issuer=None, self_pay_fen=300, pooled_fen=500
    )
    out = medical.check().to_json()
    assert (out["self_pay_fen"], out["pooled_fen"], out["issuer"]) == (300, 500, None)
    assert "self_pay_fen" not in DONE.to_json()
    assert Payment.from_json(json.loads(json.dumps(out))) == medical
    with pytest.raises(JournalError, match="unknown"):
        Payment.from_json({**out, "extra": 1})
    with pytest.raises(JournalError, match="missing"):
        Payment.from_json({k: v for k, v in out.items() if k != "tac"})


def test_open_purchases_follow_the_rows_of_their_card(store: Store) -> None:
    assert store.payments.find("transit", SERIAL) is None
    first = store.journal.append(fare(PENDING), recovery={"step": 1})
    found = store.payments.find("transit", SERIAL)
    assert found is not None
    assert (found.seq, found.state, found.record) == (first.seq, "pending", {"step": 1})
    torn = store.journal.append(
        fare(dataclasses.replace(PENDING, state="torn")), recovery={"step": 2}
    )
    found = store.payments.find("transit", SERIAL)
    assert found is not None and (found.seq, found.state) == (torn.seq, "torn")
    assert found.opened_us == first.wall_time_us  # opened once, updated since
    assert [p.seq for p in store.payments.all()] == [torn.seq]
    assert store.payments.day_spend("transit", SERIAL, NOW).rides == 0
    done = store.journal.append(fare(DONE))
    assert store.payments.find("transit", SERIAL) is None
    assert store.payments.find("medical", SERIAL) is None
    spend = store.payments.day_spend("transit", SERIAL, NOW)
    assert (spend.spent_fen, spend.rides, spend.last_us) == (200, 1, done.wall_time_us)
    store.journal.append(fare(dataclasses.replace(DONE, card_sequence=18, amount_fen=150)))
    assert store.payments.day_spend("transit", SERIAL, NOW).spent_fen == 350
    assert store.payments.day_spend("transit", SERIAL, NOW + 86_400).rides == 0


def test_the_open_purchase_and_its_row_are_one_transaction(store: Store) -> None:
    # a malformed entry fails before anything is written: no open purchase without its row
    bad = dataclasses.replace(fare(PENDING), reason_code="")
    with pytest.raises(JournalError):
        store.journal.append(bad, recovery={"step": 1})
    assert store.payments.find("transit", SERIAL) is None and store.journal.count() == 0


def test_schema_6_holds_the_payment_tables(store: Store) -> None:
    conn = raw(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 6
    columns = [r[1] for r in conn.execute("PRAGMA table_info(journal)")]
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert "payment_ct" in columns and "payment_open" in tables


def test_a_store_of_schema_5_gains_payments_and_its_rows_hash_as_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_old_journal_rows(path, [200, None], version=5)
    with Store.open(path, journal_key=KEY) as store:
        assert store.journal.verify_chain().ok
        assert all(
            row.payment is None and "payment" not in row.record() for row in store.journal.rows()
        )
        store.journal.append(fare(DONE))
        assert store.journal.verify_chain().ok and store.journal.count() == 3
