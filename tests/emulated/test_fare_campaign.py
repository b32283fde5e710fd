"""A campaign of transit purchases through the pipeline with random tearing, random re-taps and
random kills of the terminal between ``pending`` and ``done`` (issue 15): the emulated card and
transit PSAM, a real store. At the end the journal's ``done`` amounts — the latest state of
each purchase, as the platform counts them — equal the drop of the purse's balance to the fen,
and every TAC verifies with the emulated transit keys.

``SSCARD_FARE_PURCHASES`` sets the number of taps (200 by default; ``make faults`` runs
10,000); ``SSCARD_FARE_SEED`` the random seed (printed, to replay a failure).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from typing import Any

import pytest
from fare_support import Validator, transit_profile
from payment_support import transit_module
from pipeline_support import World, world  # noqa: F401 (the fixture)
from support import load_test_roots, make_card

from apdu.payment import Charge
from apdu.purchase import PurchaseRecord
from drivers.soft_sam import transit_tac_valid
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.fares import PurseRules
from terminal.payments import TransitPayments
from terminal.pipeline import Decision
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

PURCHASES = int(os.environ.get("SSCARD_FARE_PURCHASES", "200"))
BALANCE = 100_000_000  # fen: enough for 10,000 fares of the largest fare below
FARES = (100, 200, 350)


class Killed(BaseException):
    """The terminal's process stops here (a kill: nothing after it runs)."""


def kill_at(validator: Validator, reason: Reason) -> Any:
    """A pipeline whose process dies when it is about to journal a row of ``reason``: at the
    ``pending`` row (after it is durable, before the DEBIT) or at the final row (after the
    card answered, before the row is written)."""
    pipeline = validator.pipeline()
    original = pipeline.append

    def append(decision: Decision, *args: Any) -> Any:
        if decision.reason == reason and reason != Reason.PURSE_PENDING:
            raise Killed
        row = original(decision, *args)
        if decision.reason == reason:
            raise Killed
        return row

    pipeline.append = append  # type: ignore[method-assign]
    return pipeline


def test_random_tearing_retaps_and_kills_keep_the_totals_exact(world: World) -> None:  # noqa: F811
    seed = int(os.environ.get("SSCARD_FARE_SEED", str(time.time_ns() % 1_000_000)))
    print(f"fare campaign: {PURCHASES} taps, seed {seed}")
    rng = random.Random(seed)
    profile = transit_profile()
    module = transit_module()
    payments = TransitPayments(
        world.store, module, PurseRules(), tear_window_s=300, clock=world.clock
    )
    validator = Validator(world, payments, profile)
    card = make_card("ordinary-2.0")
    assert card.transit is not None
    card.transit.balance = BALANCE
    probe = make_card("ordinary-2.0")
    assert validator.tap(probe).reason == Reason.OK
    n = probe.commands_seen  # a plain paid tap's card commands; the DEBIT is the last
    mark = validator.mark()
    outcomes: dict[str, int] = {}
    for _ in range(PURCHASES):
        world.clock.now += rng.uniform(0.5, 20)  # within the tearing window
        validator.profile = with_fare(profile, rng.choice(FARES))
        tear = rng.choice(
            [{}] * 6
            + [{"tear_after": n - 2}, {"tear_after": n - 1}]
            + [{"tear_before_answer": n - 1}, {"tear_before_answer": n}]
            + [{"tear_after": rng.randrange(n + 6)}]  # anywhere, recovery reads included
        )
        if rng.random() < 0.05:
            outcome = killed_tap(validator, card, rng)
        else:
            outcome = str(validator.tap(card, **tear).reason)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    settle(validator, card)
    print(f"fare campaign outcomes: {sorted(outcomes.items())}")
    assert validator.charged(mark) == BALANCE - balance(card)
    assert outcomes.get("ok", 0) > PURCHASES // 4  # the campaign charges (about 55 % ok)
    check_tacs(validator, card, mark)
    assert world.store.journal.verify_chain().ok


def with_fare(profile: Any, fare: int) -> Any:
    transit = profile.transit.model_copy(update={"fare_fen": fare})
    return profile.model_copy(update={"transit": transit})


def killed_tap(validator: Validator, card: VirtualSscCard, rng: random.Random) -> str:
    """A tap during which the terminal dies, then its restart (``at_start``)."""
    from apdu.transport import t0_chain
    from drivers.virtual.card import VirtualConnection
    from terminal.card_read import ScenarioRead

    card.return_to_field()
    pipeline = kill_at(validator, rng.choice([Reason.PURSE_PENDING, Reason.OK]))
    read = ScenarioRead(t0_chain(VirtualConnection(card)), card.historical, validator.profile, None)
    try:
        pipeline.process(read)
    except Killed:
        validator.payments.at_start(validator.pipeline())
        return "killed"
    return "not_killed"  # the kill point was not reached (a refusal, a recovery without one)


def settle(validator: Validator, card: VirtualSscCard) -> None:
    """Re-tap until the card has no open purchase left on this terminal."""
    serial = card.transit.public.serial.hex().upper() if card.transit else ""
    for _ in range(5):
        if validator.world.store.payments.find("transit", serial) is None:
            return
        validator.world.clock.now += 1
        validator.tap(card)
    raise AssertionError("a purchase stayed open after five clean taps")


def balance(card: VirtualSscCard) -> int:
    assert card.transit is not None
    return card.transit.balance


def check_tacs(validator: Validator, card: VirtualSscCard, mark: int) -> None:
    """Every done purchase's TAC is the card's (the platform's check)."""
    assert card.transit is not None
    keys, factors = load_test_roots(), card.transit.public.factors()
    latest: dict[int, dict[str, Any]] = {}
    for payment in validator.payments_journaled(mark):
        latest[payment["card_sequence"]] = payment
    done = [p for p in latest.values() if p["state"] == "done"]
    for p in done:
        record = PurchaseRecord(
            application="transit",
            card_id=p["card_serial"],
            charge=Charge(p["amount_fen"]),
            when=dt.datetime.strptime(p["time"], "%Y%m%d%H%M%S"),
            terminal_number=p["terminal_number"],
            terminal_sequence=p["terminal_sequence"],
            tac=bytes.fromhex(p["tac"]),
        )
        assert transit_tac_valid(keys, record, factors), p
