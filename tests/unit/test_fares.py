"""The transit profile's purse rules (``[transit.purse]``): the transfer discount within its
window, the daily cap, their order, and a fare that falls to 0 (journaled without a debit)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from offline_store.payment import DaySpend
from terminal.fares import Fare, PurseRules, purse_fare
from terminal.profiles import TransitRules

NOW = 1_800_000_000_000_000  # microseconds
MIN = 60_000_000
NOTHING = DaySpend(0, 0, 0)


def test_without_rules_the_fare_is_the_profiles() -> None:
    assert purse_fare(PurseRules(), 200, DaySpend(10_000, 50, NOW - MIN), NOW) == Fare(200, 200)


def test_the_transfer_discount_holds_within_its_window_only() -> None:
    rules = PurseRules(transfer_discount_fen=100, transfer_window_s=5400)
    inside = purse_fare(rules, 200, DaySpend(200, 1, NOW - 89 * MIN), NOW)
    assert inside == Fare(100, 200, transfer=True)
    assert inside.detail() == {"fare_fen": 100, "base_fare_fen": 200, "transfer": True}
    assert purse_fare(rules, 200, DaySpend(200, 1, NOW - 91 * MIN), NOW) == Fare(200, 200)
    assert purse_fare(rules, 200, NOTHING, NOW) == Fare(200, 200)  # the first ride of the day
    assert purse_fare(rules, 50, DaySpend(200, 1, NOW), NOW).fen == 0  # never below 0


def test_the_daily_cap_takes_what_is_left_then_nothing() -> None:
    rules = PurseRules(daily_cap_fen=500)
    assert purse_fare(rules, 200, DaySpend(200, 1, NOW - MIN), NOW) == Fare(200, 200)
    capped = purse_fare(rules, 200, DaySpend(400, 2, NOW - MIN), NOW)
    assert capped == Fare(100, 200, capped=True)
    free = purse_fare(rules, 200, DaySpend(500, 3, NOW - MIN), NOW)
    assert free.fen == 0 and free.detail()["daily_cap"] is True


def test_the_transfer_comes_before_the_cap() -> None:
    rules = PurseRules(daily_cap_fen=500, transfer_discount_fen=100)
    # 200 - 100 = 100 fits the 150 left: the cap does not bite
    assert purse_fare(rules, 200, DaySpend(350, 2, NOW - MIN), NOW) == Fare(100, 200, True)


def test_a_concession_fare_of_0_stays_0() -> None:
    rules = PurseRules(daily_cap_fen=500, transfer_discount_fen=100)
    assert purse_fare(rules, 0, DaySpend(100, 1, NOW), NOW) == Fare(0, 0)


def test_the_profile_reads_its_purse_table() -> None:
    rules = TransitRules.model_validate(
        {"fare_fen": 200, "purse": {"daily_cap_fen": 600, "transfer_discount_fen": 100}}
    )
    assert (rules.purse.daily_cap_fen, rules.purse.transfer_window_s) == (600, 5400)
    assert TransitRules(fare_fen=200).purse == PurseRules()
    with pytest.raises(ValidationError):
        TransitRules.model_validate({"fare_fen": 200, "purse": {"daily_cap": 600}})
    with pytest.raises(ValidationError):
        PurseRules(transfer_window_s=-1)
