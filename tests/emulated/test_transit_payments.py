"""The transit fare through the pipeline (issue 15): an emulated card with its transit purse,
the emulated transit PSAM, a real store. The journal's rows per purchase (pending before the
debit, then done, torn or void), tearing at each step of the purchase recovered on the re-tap
(never a double charge, never a lost one), a daemon killed between pending and done, the
fare rules and the purse's refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fare_support import Validator, transit_profile
from payment_support import transit_module
from pipeline_support import World, world  # noqa: F401 (the fixture)
from support import make_card

from apdu.transport import t0_chain
from drivers.virtual.card import VirtualConnection
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.card_read import ScenarioRead
from terminal.fares import PurseRules
from terminal.payments import TransitPayments
from terminal.pipeline import Decision
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

FARE = 200


@pytest.fixture
def validator(world: World) -> Iterator[Validator]:  # noqa: F811
    profile = transit_profile()
    payments = TransitPayments(
        world.store, transit_module(), PurseRules(), tear_window_s=300, clock=world.clock
    )
    yield Validator(world, payments, profile)


def balance(card: VirtualSscCard) -> int:
    assert card.transit is not None
    return card.transit.balance


def commands_of_a_paid_tap(validator: Validator) -> int:
    card = make_card("ordinary-2.0")
    assert validator.tap(card).reason == Reason.OK
    return card.commands_seen


def test_a_tap_takes_the_fare_with_a_pending_row_before_the_done_row(validator: Validator) -> None:
    card = make_card("ordinary-2.0")
    before = balance(card)
    decision = validator.tap(card)
    assert decision.reason == Reason.OK and decision.detail["fare_fen"] == FARE
    assert balance(card) == before - FARE
    rows = list(validator.world.store.journal.rows())
    assert [(r.reason_code, r.payment and r.payment["state"]) for r in rows[-2:]] == [
        ("purse_pending", "pending"),
        ("ok", "done"),
    ]
    done = rows[-1].payment
    assert done is not None and rows[-1].ref_seq == rows[-2].seq
    assert (done["balance_before"], done["balance_after"]) == (before, before - FARE)
    assert len(done["tac"]) == 8 and len(done["card_serial"]) == 20 and len(done["issuer"]) == 16
    assert "payment" not in decision.to_json() and "card_serial" not in str(decision.to_json())
    assert validator.charged() == FARE
    assert validator.world.store.journal.verify_chain().ok


def test_insufficient_balance_is_its_own_refusal_and_debits_nothing(validator: Validator) -> None:
    card = make_card("ordinary-2.0")
    assert card.transit is not None
    card.transit.balance = FARE - 1
    decision = validator.tap(card)
    assert decision.reason == Reason.PURSE_INSUFFICIENT and decision.outcome == "refuse"
    assert "余额不足" in decision.to_json()["prompt_zh"]
    assert balance(card) == FARE - 1 and validator.charged() == 0


@pytest.mark.parametrize(
    ("step", "debited"),
    [
        ("before_initialise", False),
        ("after_initialise", False),
        ("debit_sent", False),
        ("debit_answered_lost", True),
    ],
)
def test_tearing_at_each_step_is_settled_on_the_retap(
    validator: Validator, step: str, debited: bool
) -> None:
    n = commands_of_a_paid_tap(validator)  # the DEBIT is the tap's last card command
    tear = {
        "before_initialise": {"tear_after": n - 2},  # leaves during INITIALIZE
        "after_initialise": {"tear_before_answer": n - 1},  # INITIALIZE acted, answer lost
        "debit_sent": {"tear_after": n - 1},  # leaves during DEBIT, before it acts
        "debit_answered_lost": {"tear_before_answer": n},  # debited, answer lost
    }[step]
    card = make_card("ordinary-2.0")
    before, mark = balance(card), validator.mark()
    first = validator.tap(card, **tear)
    assert first.outcome == "attention"  # 请重新刷卡 / tap again
    assert first.reason in (Reason.PURSE_TORN, Reason.CARD_REMOVED)
    assert balance(card) == before - (FARE if debited else 0)
    again = validator.tap(card)
    assert again.reason == Reason.OK, again
    assert balance(card) == before - FARE  # once, whatever the card did
    assert validator.charged(mark) == FARE
    assert validator.world.store.payments.find("transit", again_serial(validator)) is None
    if debited:
        assert again.detail["recovered"] == "debited"
    third = validator.tap(card)
    assert third.reason == Reason.OK and balance(card) == before - 2 * FARE


def again_serial(validator: Validator) -> str:
    last = validator.payments_journaled()[-1]
    return str(last["card_serial"])


@pytest.mark.parametrize("debited", [False, True])
def test_a_daemon_killed_between_pending_and_done_recovers_at_start(
    validator: Validator, debited: bool
) -> None:
    """Killed once the pending row is durable: before the DEBIT, or after the card debited and
    before the done row was written."""
    card = make_card("ordinary-2.0")
    before, mark = balance(card), validator.mark()
    pipeline = validator.pipeline()
    original = pipeline.append

    def killed(decision: Decision, *args: Any) -> Any:
        if debited and decision.reason == Reason.OK:
            raise KeyboardInterrupt  # the process stops before the done row
        row = original(decision, *args)
        if not debited and decision.reason == Reason.PURSE_PENDING:
            raise KeyboardInterrupt  # the process stops before the DEBIT
        return row

    pipeline.append = killed  # type: ignore[method-assign]
    read = ScenarioRead(t0_chain(VirtualConnection(card)), card.historical, validator.profile, None)
    with pytest.raises(KeyboardInterrupt):
        pipeline.process(read)
    assert balance(card) == before - (FARE if debited else 0)
    assert validator.payments_journaled(mark)[-1]["state"] == "pending"
    assert validator.payments.at_start(validator.pipeline()) == 1
    assert validator.payments_journaled()[-1]["state"] == "torn"
    assert validator.payments.at_start(validator.pipeline()) == 0  # torn stays for the card
    assert validator.tap(card).reason == Reason.OK
    assert balance(card) == before - FARE and validator.charged(mark) == FARE


def test_a_torn_purchase_past_the_window_is_left_to_the_platform(validator: Validator) -> None:
    n = commands_of_a_paid_tap(validator)
    card = make_card("ordinary-2.0")
    before = balance(card)
    assert validator.tap(card, tear_before_answer=n).reason == Reason.PURSE_TORN
    validator.world.clock.now += 301
    assert validator.tap(card).reason == Reason.OK  # a new fare: the old one is the platform's
    states = [p["state"] for p in validator.payments_journaled()[-4:]]
    assert states == ["torn", "torn", "pending", "done"]
    assert balance(card) == before - 2 * FARE


def test_the_daily_cap_and_a_fare_of_0_journaled_without_a_debit(world: World) -> None:  # noqa: F811
    rules = PurseRules(daily_cap_fen=500, transfer_discount_fen=50, transfer_window_s=600)
    validator = Validator(
        world,
        TransitPayments(world.store, transit_module(), rules, tear_window_s=300, clock=world.clock),
        transit_profile(),
    )
    card = make_card("ordinary-2.0")
    before = balance(card)
    fares = []
    for _ in range(4):
        world.clock.now += 3600  # past the transfer window
        fares.append(validator.tap(card).detail["fare_fen"])
    assert fares == [200, 200, 100, 0]
    world.clock.now += 60
    assert validator.tap(card).detail["fare_fen"] == 0  # capped: still accepted, journaled
    assert balance(card) == before - 500 and validator.charged() == 500
    last = list(world.store.journal.rows())[-1]
    assert (last.outcome, last.amount, last.payment) == ("accept", 0, None)


def test_the_transfer_discount_within_the_window(world: World) -> None:  # noqa: F811
    rules = PurseRules(transfer_discount_fen=150, transfer_window_s=600)
    validator = Validator(
        world,
        TransitPayments(world.store, transit_module(), rules, tear_window_s=300, clock=world.clock),
        transit_profile(),
    )
    card = make_card("ordinary-2.0")
    assert validator.tap(card).detail["fare_fen"] == 200
    world.clock.now += 599
    transfer = validator.tap(card).detail
    assert transfer == {**transfer, "fare_fen": 50, "base_fare_fen": 200, "transfer": True}


def test_times_are_sent_to_the_card_in_local_time(validator: Validator) -> None:
    card = make_card("ordinary-2.0")
    validator.tap(card)
    sent = validator.payments_journaled()[-1]["time"]
    local = dt.datetime.fromtimestamp(validator.world.clock.now).strftime("%Y%m%d%H%M%S")
    assert sent == local


def test_a_free_ride_needs_no_purse(validator: Validator) -> None:
    """老年人 (category 4) ride free: a card without a transit application is not refused."""
    card = make_card("elderly")
    assert card.transit is None
    decision = validator.tap(card)
    assert decision.reason == Reason.OK and decision.detail["fare_fen"] == 0
    last = validator.world.store.journal.last()
    assert last is not None and (last.amount, last.payment) == (0, None)


def test_a_card_without_a_transit_purse_cannot_pay_a_fare(validator: Validator) -> None:
    card = make_card("student")  # reduced fare, no transit application
    assert card.transit is None
    decision = validator.tap(card)
    assert decision.reason == Reason.PURSE_REFUSED and decision.detail == {"sw": "6A82"}
