"""Medical settlement through the hospital profile's pipeline (issue 15): the emulated card's
personal account (DF04) and the emulated SSC PSAM, a real store. PIN first, the pending row
before the DEBIT, the settlement row with the medical payment object, the ``iDoDebit``
output, the EF08 record; a wrong PIN, an insufficient account and a torn DEBIT."""

from __future__ import annotations

import dataclasses

import pytest
from pipeline_support import World, world  # noqa: F401 (the fixture)
from support import make_card, make_psam

from apdu.medical_payment import ireaddebitrecord_output
from apdu.psam import PsamModule
from apdu.transport import t0_chain
from drivers.virtual.card import VirtualConnection
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.reasons import Reason
from terminal.settlement import MedicalSettlement, Settled

pytestmark = pytest.mark.emulated

BILL = "95.00|30.00+60.00|20261129101500|"  # account 30.00, pooled 60.00, self-pay 5.00


def settle(world: World, card: VirtualSscCard, pin: str = "123456", bill: str = BILL) -> Settled:  # noqa: F811
    module = PsamModule(t0_chain(VirtualConnection(make_psam("psam-national"))))
    settlement = MedicalSettlement(world.pipeline("hospital"), module)
    card.return_to_field()
    return settlement.settle(t0_chain(VirtualConnection(card)), pin, bill)


def cia(card: VirtualSscCard) -> int:
    assert card.medical_account is not None
    return card.medical_account.balances.account


def test_a_settlement_is_journaled_and_answers_idodebit(world: World) -> None:  # noqa: F811
    card = make_card("ordinary-2.0")
    before = cia(card)
    settled = settle(world, card)
    assert settled.code == 0 and settled.decision.reason == Reason.OK
    assert cia(card) == before - 3000
    fields = settled.result.split("|")
    assert fields[0] == "01" and fields[2] == "30.00" and fields[3] == "06"
    assert fields[6] == "20261129101500" and len(fields[7]) == 8
    rows = list(world.store.journal.rows())
    assert [(r.scenario, r.reason_code) for r in rows[-2:]] == [
        ("hospital", "purse_pending"),
        ("hospital", "ok"),
    ]
    payment = rows[-1].payment
    assert payment is not None and rows[-1].ref_seq == rows[-2].seq
    assert (payment["kind"], payment["state"], payment["amount_fen"]) == ("medical", "done", 3000)
    assert (payment["self_pay_fen"], payment["pooled_fen"], payment["issuer"]) == (500, 6000, None)
    assert payment["tac"] == fields[7] and len(payment["card_serial"]) == 32
    assert rows[-1].credential_token == world.card_hash("ordinary-2.0")
    assert world.store.payments.find("medical", payment["card_serial"]) is None
    assert card.medical_account is not None
    assert ireaddebitrecord_output(card.medical_account.records).endswith("^95.00^90.00^|")
    assert world.store.journal.verify_chain().ok


def test_a_wrong_pin_settles_nothing(world: World) -> None:  # noqa: F811
    card = make_card("ordinary-2.0")
    before = cia(card)
    settled = settle(world, card, pin="000000")
    assert settled.decision.reason == Reason.PIN_WRONG and settled.code == -51
    assert settled.result == "" and cia(card) == before
    assert all(r.payment is None for r in world.store.journal.rows())


def test_an_account_too_small_is_purse_insufficient(world: World) -> None:  # noqa: F811
    card = make_card("ordinary-2.0")
    assert card.medical_account is not None
    account = card.medical_account
    account.balances = dataclasses.replace(account.balances, account=2999)
    settled = settle(world, card)
    assert settled.decision.reason == Reason.PURSE_INSUFFICIENT and settled.code == -0x9401
    assert cia(card) == 2999


def test_a_bad_bill_is_refused_before_the_card(world: World) -> None:  # noqa: F811
    card = make_card("ordinary-2.0")
    settled = settle(world, card, bill="10.00|30.00|20261129101500|")
    assert settled.code != 0 and settled.result == "" and card.commands_seen == 0


def test_a_torn_debit_is_journaled_torn(world: World) -> None:  # noqa: F811
    probe = make_card("ordinary-2.0")
    assert settle(world, probe).code == 0
    debit = probe.commands_seen  # the DEBIT is the settlement's last card command
    card = make_card("ordinary-2.0")
    card.behaviour.tear_before_answer = debit
    module = PsamModule(t0_chain(VirtualConnection(make_psam("psam-national"))))
    settled = MedicalSettlement(world.pipeline("hospital"), module).settle(
        t0_chain(VirtualConnection(card)), "123456", BILL
    )
    assert settled.decision.reason == Reason.PURSE_TORN and settled.result == ""
    last = world.store.journal.last()
    assert last is not None and last.payment is not None and last.payment["state"] == "torn"
    assert world.store.payments.find("medical", last.payment["card_serial"]) is not None
