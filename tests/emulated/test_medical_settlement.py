"""Medical settlement from the DF04 personal account (spec doc §7.1, §4.6): the PIN first, the
SSC PSAM's MAC1/MAC2, the EF08 record, the national interface strings, tearing and recovery."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from support import load_test_roots, make_card, make_psam, persona

from apdu import medical_payment, purse
from apdu.errors import ProtocolError, SecurityNotSatisfied
from apdu.medical_payment import (
    DebitRecord,
    MedicalAccountSession,
    PayInfo,
    idodebit_output,
    ireaddebitrecord_output,
)
from apdu.payment import Charge, InsufficientBalance, PurchaseTorn, PurseLocked
from apdu.psam import PsamModule
from apdu.purchase import Purchase, PurchaseState, Verdict, recover
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.ssc_card import VirtualSscCard

pytestmark = pytest.mark.emulated

H = bytes.fromhex
WHEN = dt.datetime(2026, 11, 29, 10, 15, 0)
BILL = Charge(3000, 500, 6000)  # account 30.00, self-pay 5.00, pooled 60.00
ROOTS = load_test_roots()


def account(card: VirtualSscCard, pin: str | None = "123456") -> MedicalAccountSession:
    connection = t0_chain(VirtualConnection(card))
    session = SscSession(connection)
    issuer = session.read_issuer()
    if pin is not None:
        session.verify_pin(pin)
    return MedicalAccountSession(connection, issuer.card_id)


def psam() -> PsamModule:
    return PsamModule(t0_chain(VirtualConnection(make_psam("psam-national"))))


@pytest.mark.parametrize("t0", [False, True])
def test_a_settlement_debits_the_account_and_writes_ef08(t0: bool) -> None:
    card = make_card("ordinary-2.0", t0=t0)
    session = account(card)
    assert session.balances() == medical_payment.MedicalBalances(120000, 0, 0, 2026)
    record = Purchase(session, psam(), BILL, WHEN).run()
    assert record.state == PurchaseState.DONE and record.mac2_checked
    assert (record.balance_before, record.balance_after, record.card_sequence) == (
        120000,
        117000,
        3,
    )
    assert session.balances() == medical_payment.MedicalBalances(117000, 500, 6000, 2026)
    (entry,) = session.read_debit_records()
    assert entry == DebitRecord(3, 0x31, record.terminal_number, WHEN, BILL)
    sent = [c for c, _ in card.log if c[:2] in (H("B028"), H("B02C"))]
    assert sent[0] == H("B028010113") + H("0100000BB8000001F400001770") + H(
        record.terminal_number
    ) + H("16")
    assert sent[1][:5] == H("B02C01000F") and sent[1][-1] == 0x08
    # the TAC is the card's: DTK three levels below the [des] dtk root, over the three amounts
    from apdu import crypto

    factors = medical_payment.medical_factors(session.card_number)[::-1]
    dtk = crypto.diversify_levels(crypto.Algorithm.DES, ROOTS.dtk, factors)
    data = medical_payment.tac_data(BILL, record.terminal_number, record.terminal_sequence, WHEN)
    assert purse.tac(dtk, data) == record.tac


def test_the_pin_comes_first() -> None:
    card = make_card("ordinary-2.0")
    session = account(card, pin=None)
    with pytest.raises(SecurityNotSatisfied):
        session.balances()
    with pytest.raises(SecurityNotSatisfied):
        Purchase(session, psam(), BILL, WHEN).run()
    assert card.medical_account is not None and card.medical_account.balances.account == 120000


def test_an_account_too_small_and_a_locked_one_are_refused() -> None:
    card = make_card("ordinary-2.0")
    purchase = Purchase(account(card), psam(), Charge(200000), WHEN)
    with pytest.raises(InsufficientBalance):
        purchase.run()
    assert purchase.state == PurchaseState.VOID
    base = persona("ordinary-2.0")
    assert base.medical_account is not None
    locked = dataclasses.replace(
        base, medical_account=dataclasses.replace(base.medical_account, locked=True)
    )
    with pytest.raises(PurseLocked):
        Purchase(account(VirtualSscCard(locked, Behaviour(), ROOTS)), psam(), BILL, WHEN).run()


def test_a_settlement_torn_after_the_commit_is_recovered_not_repeated() -> None:
    card = make_card("ordinary-2.0")
    module = psam()
    session = account(card)
    commands = len(card.log)
    card.behaviour.tear_before_answer = card.commands_seen + 2  # INITIALIZE, then DEBIT
    purchase = Purchase(session, module, BILL, WHEN)
    with pytest.raises(PurchaseTorn):
        purchase.run()
    assert len(card.log) == commands + 2
    card.return_to_field()
    result = recover(account(card), module, purchase.record, WHEN)
    assert result.verdict == Verdict.DEBITED and result.record.tac is not None
    assert card.medical_account is not None
    assert card.medical_account.balances.account == 120000 - BILL.amount


def test_a_settlement_torn_before_the_debit_charges_once_on_the_retry() -> None:
    card = make_card("ordinary-2.0")
    module = psam()
    session = account(card)
    card.behaviour.tear_after = card.commands_seen + 1  # the DEBIT never arrives
    purchase = Purchase(session, module, BILL, WHEN)
    with pytest.raises(PurchaseTorn):
        purchase.run()
    card.return_to_field()
    result = recover(account(card), module, purchase.record, WHEN)
    assert result.verdict == Verdict.NOT_DEBITED and result.retry is not None
    result.retry.authorise()
    result.retry.send_debit()
    assert result.retry.confirm().state == PurchaseState.DONE
    assert card.medical_account is not None
    assert card.medical_account.balances.account == 120000 - BILL.amount


def test_pay_info_and_the_interface_strings() -> None:
    info = PayInfo.parse("95.00|30.00+60.00|20261129101500|")
    assert info == PayInfo(BILL, WHEN)
    assert PayInfo.parse("95.00|30.00|20261129101500|").charge == Charge(3000, 6500, 0)
    for bad in (
        "95.00|30.00+60.00|20261129101500",
        "95.001|30.00|20261129101500|",
        "10.00|30.00|20261129101500|",
        "95.00|1+2+3|20261129101500|",
        "95.00|30.00|20261329101500|",
        "42949672.96|1.00|20261129101500|",
        "-1|1.00|20261129101500|",
    ):
        with pytest.raises(ProtocolError):
            PayInfo.parse(bad)
    card = make_card("ordinary-2.0")
    session = account(card)
    record = Purchase(session, psam(), info.charge, info.when).run()
    out = idodebit_output(record, card_algorithm_id=0x01)
    assert out == (
        f"01|017F|30.00|06|{record.terminal_number}|{record.terminal_sequence:08X}|"
        f"20261129101500|{record.tac.hex().upper()}|"  # type: ignore[union-attr]
    )
    lines = ireaddebitrecord_output(list(session.read_debit_records()))
    assert lines == f"3^{record.terminal_number}^20261129101500^95.00^90.00^|"


def test_debit_records_round_trip_and_parse_strictly() -> None:
    record = DebitRecord(3, 0x31, "440100813475", WHEN, BILL)
    raw = record.to_bytes()
    assert len(raw) == 0x1C and DebitRecord.parse(raw) == record
    assert DebitRecord.parse(bytes(0x1C)) is None and DebitRecord.parse(b"\xff" * 0x1C) is None
    with pytest.raises(ProtocolError):
        DebitRecord.parse(raw[:-1])
