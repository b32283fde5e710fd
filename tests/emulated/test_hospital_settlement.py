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


PSAM = make_psam("psam-national")  # one PSAM for the desk: a torn purchase is its own


def settle(
    world: World,  # noqa: F811
    card: VirtualSscCard,
    pin: str = "123456",
    bill: str = BILL,
    **tear: int,
) -> Settled:
    module = PsamModule(t0_chain(VirtualConnection(PSAM)))
    settlement = MedicalSettlement(world.pipeline("hospital"), module, clock=world.clock)
    card.return_to_field()
    for key, value in tear.items():
        setattr(card.behaviour, key, value)
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


def debit_index(world: World) -> int:  # noqa: F811
    """The settlement's last card command (its DEBIT), from a probe card."""
    probe = make_card("ordinary-2.0")
    assert settle(world, probe).code == 0
    return probe.commands_seen


@pytest.mark.parametrize(
    ("tear", "debited"),
    [("tear_after", False), ("tear_before_answer", True)],
)
def test_a_torn_debit_is_settled_once_when_the_desk_settles_again(
    world: World,  # noqa: F811
    tear: str,
    debited: bool,
) -> None:
    n = debit_index(world)
    card = make_card("ordinary-2.0")
    before = cia(card)
    mark = world.store.journal.last().seq  # type: ignore[union-attr]
    torn = settle(world, card, **{tear: n - 1 if tear == "tear_after" else n})
    assert torn.decision.reason == Reason.PURSE_TORN and torn.result == ""
    last = world.store.journal.last()
    assert last is not None and last.payment is not None and last.payment["state"] == "torn"
    assert cia(card) == before - (3000 if debited else 0)
    again = settle(world, card)  # the same bill, the card back
    assert again.code == 0 and again.decision.reason == Reason.OK, again
    assert cia(card) == before - 3000  # once
    fields = again.result.split("|")
    assert fields[2] == "30.00" and len(fields[7]) == 8
    states = [r.payment["state"] for r in world.store.journal.rows(mark) if r.payment]
    if debited:
        assert states == ["pending", "torn", "done"]
    else:
        assert states == ["pending", "torn", "void", "pending", "done"]
    assert world.store.payments.find("medical", last.payment["card_serial"]) is None
    assert world.store.journal.verify_chain().ok


def test_another_bill_after_a_torn_debit_settles_both(world: World) -> None:  # noqa: F811
    n = debit_index(world)
    card = make_card("ordinary-2.0")
    before = cia(card)
    assert settle(world, card, tear_before_answer=n).decision.reason == Reason.PURSE_TORN
    other = settle(world, card, bill="20.00|10.00|20261129103000|")
    assert other.code == 0 and cia(card) == before - 3000 - 1000
    done = [
        r.payment["amount_fen"]
        for r in world.store.journal.rows()
        if r.payment and r.payment["state"] == "done"
    ]
    assert done[-2:] == [3000, 1000]
