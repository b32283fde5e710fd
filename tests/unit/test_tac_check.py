"""The platform's TAC check and payment contract (platform_server/payments.py, payment_keys.py):
the TAC the emulated card computed with its own keys verifies; anything changed in what it
covers does not; a card of an issuer without a key is ``no_key``; a missing input is
``incomplete``, never guessed. And one purchase stated by several rows counts its latest."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from clearing_support import payment_object, purse_card
from payment_support import WHEN, TransitTerminal, medical_settlement
from sqlalchemy import select
from support import TEST_ROOTS

from platform_server.db import open_engine, payment, transaction
from platform_server.errors import InvalidInput, PlatformConfigError
from platform_server.payment_keys import (
    PAYMENT_ROOTS,
    load_payment_roots,
    parse_payment_roots,
    payment_roots_of_test_keys,
)
from platform_server.payments import PaymentFact, parse_payment, record, tac_status


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("keys")
    path = folder / PAYMENT_ROOTS
    path.write_bytes(payment_roots_of_test_keys(TEST_ROOTS))
    path.chmod(0o600)
    loaded = load_payment_roots(folder)
    assert loaded is not None and loaded.test_keys
    return loaded


def transit_payment() -> dict[str, Any]:
    card = purse_card(8, 5000)  # issuer 4401…
    terminal = TransitTerminal()
    assert terminal.tap(card, 230, WHEN) == "ok"
    [rec] = terminal.journal.rows.values()
    return payment_object(rec, card)


def medical_payment() -> dict[str, Any]:
    rec, card_id = medical_settlement()
    assert rec.tac is not None and rec.terminal_number is not None
    return {
        "kind": "medical",
        "state": "done",
        "amount_fen": 3000,
        "self_pay_fen": 500,
        "pooled_fen": 6000,
        "balance_before": rec.balance_before,
        "balance_after": rec.balance_after,
        "card_sequence": rec.card_sequence,
        "terminal_sequence": rec.terminal_sequence,
        "tac": rec.tac.hex().upper(),
        "time": rec.when.strftime("%Y%m%d%H%M%S"),
        "terminal_number": rec.terminal_number,
        "card_serial": card_id.upper(),
        "issuer": None,
    }


def fact(raw: dict[str, Any], **changes: Any) -> PaymentFact:
    return parse_payment({**raw, **changes}, "rows[0]")


def test_the_cards_own_transit_tac_verifies_and_any_change_fails(roots) -> None:
    raw = transit_payment()
    assert tac_status(fact(raw), roots) == "ok"
    as_float = fact(raw, amount_fen=float(raw["amount_fen"]))  # JSON Schema's integer 230.0
    assert as_float.amount_fen == raw["amount_fen"] and tac_status(as_float, roots) == "ok"
    flipped = f"{int(raw['tac'], 16) ^ 0x80:08X}"
    assert tac_status(fact(raw, tac=flipped), roots) == "mismatch"
    assert tac_status(fact(raw, amount_fen=raw["amount_fen"] + 1), roots) == "mismatch"
    later = str(int(raw["time"]) + 1)
    assert tac_status(fact(raw, time=later), roots) == "mismatch"
    assert tac_status(fact(raw, time="20260230120000"), roots) == "mismatch"
    other = raw["terminal_sequence"] + 1
    assert tac_status(fact(raw, terminal_sequence=other), roots) == "mismatch"


def test_an_issuer_without_a_key_and_missing_inputs_are_said_so(roots) -> None:
    raw = transit_payment()
    only_other = dataclasses.replace(roots, transit_issuers=frozenset({"3101000000000000"}))
    assert raw["issuer"] == "4401000000000000"
    assert tac_status(fact(raw), only_other) == "no_key"
    assert tac_status(fact(raw), None) == "no_key"
    assert tac_status(fact(raw, tac=None), roots) == "incomplete"  # done without its TAC
    assert tac_status(fact(raw, state="pending", tac=None), roots) == "none"
    assert tac_status(fact(raw, terminal_sequence=None), roots) == "incomplete"


def test_the_medical_tac_covers_all_three_amounts(roots) -> None:
    raw = medical_payment()
    assert tac_status(fact(raw), roots) == "ok"
    assert tac_status(fact(raw, pooled_fen=5999), roots) == "mismatch"
    assert tac_status(fact(raw, self_pay_fen=None), roots) == "incomplete"
    assert fact(raw).clearing_issuer == raw["card_serial"][:6]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unknown ['extra']"),
        ({"amount_fen": True}, "amount_fen must be an integer"),
        ({"amount_fen": 1.5}, "amount_fen must be an integer"),
        ({"card_sequence": 65536}, "card_sequence must be an integer"),
        ({"tac": "1a2b3c4d"}, "tac does not have its format"),
        ({"time": "20261332075803"}, "time does not have its format"),
        ({"issuer": None}, "issuer must be the 16-hex issuer id"),
        ({"card_serial": "31"}, "card_serial is not a transit card serial"),
        ({"state": "paid"}, "state must be one of"),
        ({"self_pay_fen": 0}, "unknown ['self_pay_fen']"),
    ],
)
def test_a_payment_off_the_contract_is_refused_naming_the_key(change, message) -> None:
    raw = {**transit_payment(), **change}
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_payment(raw, "rows[0]")


def test_the_roots_file_its_mode_and_production(tmp_path: Path) -> None:
    path = tmp_path / PAYMENT_ROOTS
    assert load_payment_roots(tmp_path) is None
    path.write_bytes(payment_roots_of_test_keys(TEST_ROOTS))
    path.chmod(0o644)
    with pytest.raises(PlatformConfigError, match="0644"):
        load_payment_roots(tmp_path)
    path.chmod(0o600)
    test = load_payment_roots(tmp_path)
    assert test is not None
    with pytest.raises(PlatformConfigError, match="TEST KEY"):
        test.refuse_in_production()
    # a copy of the test roots without the flag or the comment: still known by its fingerprint
    assert test.transit_dtk is not None
    copied = parse_payment_roots({"transit": {"dtk": test.transit_dtk.hex()}}, "copy")
    assert copied.test_keys
    fresh = parse_payment_roots(
        {"transit": {"dtk": os.urandom(16).hex(), "issuers": ["4401000000000000"]}}, "fresh"
    )
    fresh.refuse_in_production()
    assert fresh.transit_root("3101000000000000") is None
    with pytest.raises(PlatformConfigError, match="issuers"):
        parse_payment_roots({"transit": {"dtk": "00" * 16, "issuers": ["4401"]}}, "bad")


def test_one_purchase_in_several_rows_counts_its_latest_state_once(tmp_path: Path, roots) -> None:
    raw = transit_payment()
    engine = open_engine(f"sqlite:///{tmp_path / 'p.db'}")
    pending = fact(raw, state="pending", tac=None)
    torn = fact(raw, state="torn", tac=None)
    done = fact(raw)
    with transaction(engine) as conn:  # the rows arrive out of order: seq 3, then 1 and 2
        record(conn, "T1", [(3, 300, done)], roots)
        record(conn, "T1", [(1, 100, pending), (2, 200, torn)], roots)
        record(conn, "T2", [(1, 50, torn)], roots)  # another terminal's older row
    with transaction(engine, readonly=True) as conn:
        [row] = conn.execute(select(payment)).all()
    assert (row.state, row.tac_status, row.seq, row.rows) == ("done", "ok", 3, 4)
    engine.dispose()
