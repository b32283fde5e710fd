"""The scenarios the regulations name (issue 11 §5) with in-process emulated cards, the software
SAM and a real store file: the service hall, the meal point, gate concessions, coach and ferry.

Each test taps persona cards and checks the decision, what reached the journal and the audit,
and what the card was asked (a field outside the profile's set is visible in its APDU log).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import CARDS, World
from support import make_card

from drivers.virtual.ssc_card import VirtualSscCard
from terminal.card_read import CardFacts
from terminal.cli.tap import service_problem
from terminal.profiles import Profile, load_profile, parse_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

EF05 = {0x01, 0x02, 0x03, 0x06, 0x07}  # what a tap decides on: never 04, 05 for iReadCardBas
TAG_ISSUE_DATE, TAG_SSN, TAG_NAME, TAG_NAME_EXTENSION, TAG_BIRTH_DATE = 0x05, 0x08, 0x09, 0x4E, 0x0D


def records_read(card: VirtualSscCard) -> set[int]:
    """The record identifiers of every READ RECORD the card was sent."""
    return {cmd[2] for cmd, _ in card.log if cmd.hex().upper().startswith("00B2")}


def pin_verified(card: VirtualSscCard) -> bool:
    return any(cmd.hex().upper().startswith("0020") for cmd, _ in card.log)


def meal_profile(world: World, **rules: object) -> Profile:
    data = {"daily_limit": 2, "categories": [{"name": "elderly_60", "min_age": 60}]} | rules
    return parse_profile(
        {
            "scenario": "meal-point",
            "catalogue_item": "0701",
            "fields": ["birth_date"],
            "meal_point": data,
        },
        str(world.folder / "meals.toml"),
        "meals",
    )


# --- service hall ---------------------------------------------------------------------------


def test_the_service_hall_shows_the_clerk_name_and_ssn_only_and_audits_the_service(
    world: World,
) -> None:
    decision, card = world.tap("service-hall", "ordinary-2.0")  # no --service: the first one
    assert (decision.outcome, decision.reason) == ("accept", Reason.OK)
    assert decision.detail == {"service": "identity"}
    assert decision.record == {
        "service": "identity",
        "region_code": "440100",
        "name": "陈静怡",
        "ssn": "440000199003071027",
    }
    assert not pin_verified(card)  # an identity check needs no PIN
    assert records_read(card) == EF05 | {TAG_ISSUE_DATE, TAG_SSN, TAG_NAME, TAG_NAME_EXTENSION}
    (audit,) = world.store.audit.rows()
    assert (audit.scenario, audit.fields, audit.purpose) == (
        "service-hall",
        ("name", "ssn"),
        "service-hall decision: identity 身份核验",
    )
    row = world.store.journal.last()
    assert row is not None and row.personal_fields == ("name", "ssn")
    assert (row.scenario, row.catalogue_item, row.amount) == ("service-hall", "0101", None)


def test_a_service_that_needs_the_pin_asks_for_it_and_every_read_is_audited(
    world: World,
) -> None:
    card = make_card("ordinary-2.0")
    missing = world.tap("service-hall", card, service="records")[0]
    assert missing.reason == Reason.PIN_MISSING and missing.outcome == "attention"
    wrong = world.tap("service-hall", card, service="records", pin="000000")[0]
    assert (wrong.reason, wrong.detail) == (Reason.PIN_WRONG, {"tries_left": 2})
    assert world.store.audit.rows() == []  # nothing personal was read for the refusals
    assert not records_read(card) & {TAG_SSN, TAG_NAME}
    right = world.tap("service-hall", card, service="records", pin="123456")[0]
    assert right.reason == Reason.OK and right.record is not None
    assert right.record["service"] == "records" and right.record["name"] == "陈静怡"
    world.tap("service-hall", card, service="employment")  # no PIN for this one
    purposes = [row.purpose for row in world.store.audit.rows()]
    assert purposes == [
        "service-hall decision: records 社保权益记录查询",
        "service-hall decision: employment 就业创业登记",
    ]
    assert [r.reason_code for r in world.store.journal.rows()] == [
        "pin_missing",
        "pin_wrong",
        "ok",
        "ok",
    ]


def test_a_service_the_hall_does_not_offer_is_refused_before_any_personal_read(
    world: World,
) -> None:
    decision, card = world.tap("service-hall", "ordinary-2.0", service="pension", pin="123456")
    assert decision.reason == Reason.BAD_REQUEST and decision.record is None
    assert decision.detail["problem"] == "service not offered here"
    assert decision.detail["services"] == ["identity", "employment", "records", "benefits"]
    assert records_read(card) <= EF05 | {TAG_ISSUE_DATE} and not pin_verified(card)
    assert world.store.audit.rows() == []


def test_a_hotel_room_number_is_checked_before_any_personal_read(world: World) -> None:
    decision, card = world.tap("hotel", "v3-sm4", room="12 08; drop")
    assert decision.reason == Reason.BAD_REQUEST
    assert records_read(card) <= EF05 | {TAG_ISSUE_DATE} and world.store.audit.rows() == []


def test_the_hall_decides_a_code_without_a_pin_step_for_its_first_service(world: World) -> None:
    pipeline = world.pipeline("service-hall")
    facts = _facts("ordinary-2.0", personal={"name": "陈静怡", "ssn": "440000199003071027"})
    decision = pipeline.decide(facts, world.card_hash("ordinary-2.0"))
    assert decision.reason == Reason.OK and decision.detail == {"service": "identity"}
    refused = pipeline.decide(facts, world.card_hash("ordinary-2.0"), service="pension")
    assert refused.reason == Reason.BAD_REQUEST


# --- meal point -----------------------------------------------------------------------------


def test_a_meal_point_serves_by_age_band_up_to_the_daily_limit(world: World) -> None:
    first, card = world.tap("meal-point", "elderly")  # born 1952-06-18: 74
    assert (first.reason, first.detail) == (
        Reason.OK,
        {"subsidy_category": "elderly_60", "meals_left": 1},
    )
    assert records_read(card) == EF05 | {TAG_BIRTH_DATE}  # the birth date, nothing else
    second = world.tap("meal-point", "elderly")[0]
    assert second.detail == {"subsidy_category": "elderly_60", "meals_left": 0}
    third = world.tap("meal-point", "elderly")[0]
    assert (third.outcome, third.reason) == ("refuse", Reason.MEAL_LIMIT_REACHED)
    assert third.detail == {"subsidy_category": "elderly_60", "daily_limit": 2}
    assert third.indication().prompt_zh == "今日助餐次数已用完，请改日再来"
    world.clock.now += 86_400
    assert world.tap("meal-point", "elderly")[0].detail["meals_left"] == 1  # a new day
    row = world.store.journal.last()
    assert row is not None and row.personal_fields == ("birth_date",)


def test_the_daily_limit_is_per_holder_and_per_meal_point(world: World) -> None:
    one_meal = meal_profile(world, daily_limit=1)
    assert world.tap(one_meal, "elderly")[0].reason == Reason.OK
    assert world.tap(one_meal, "elderly")[0].reason == Reason.MEAL_LIMIT_REACHED
    assert world.tap(one_meal, "absent-fields")[0].reason == Reason.OK  # another holder
    assert world.tap("meal-point", "elderly")[0].reason == Reason.OK  # another meal point


def test_a_synced_and_pruned_journal_does_not_reset_the_meal_limit(world: World) -> None:
    one_meal = meal_profile(world, daily_limit=1)
    assert world.tap(one_meal, "elderly")[0].reason == Reason.OK
    journal = world.store.journal
    journal.acknowledge(journal.backlog().last_seq)  # the platform holds every row …
    assert journal.prune() == 1 and journal.count() == 0  # … and they left the terminal
    again = world.tap(one_meal, "elderly")[0]
    assert again.reason == Reason.MEAL_LIMIT_REACHED  # the same holder, the same day


def test_a_synced_and_pruned_journal_does_not_reset_a_gate_s_daily_capacity(world: World) -> None:
    gate = load_profile("gate")
    assert gate.gate is not None
    small = gate.model_copy(update={"gate": gate.gate.model_copy(update={"daily_capacity": 2})})
    assert world.tap(small, "ordinary-2.0")[0].reason == Reason.OK
    assert world.tap(small, "student")[0].reason == Reason.OK
    journal = world.store.journal
    journal.acknowledge(journal.backlog().last_seq)
    assert journal.prune() == 2
    full = world.tap(small, "elderly")[0]
    assert (full.reason, full.detail) == (Reason.CAPACITY_FULL, {"capacity": 2})
    world.clock.now += 86_400
    assert world.tap(small, "elderly")[0].reason == Reason.OK


def test_a_birth_date_the_card_leaves_ff_comes_from_the_ssn_which_is_not_kept(
    world: World,
) -> None:
    decision, card = world.tap("meal-point", "absent-fields")  # SSN 44000019620915203X: 64
    assert decision.reason == Reason.OK
    assert decision.detail["subsidy_category"] == "elderly_60"
    assert records_read(card) == EF05 | {TAG_BIRTH_DATE, TAG_SSN}
    row = world.store.journal.last()
    assert row is not None and row.personal_fields == ("birth_date",)
    assert world.store.journal.read_personal(row.seq, who="test") == {"birth_date": "1962-09-15"}
    audit = world.store.audit.rows()[0]
    assert audit.fields == ("birth_date", "ssn")  # the SSN was read: the audit says so
    # a card that carries its birth date is never asked for the SSN
    assert TAG_SSN not in records_read(world.tap("meal-point", "elderly")[1])


def test_a_transit_age_concession_works_for_a_card_without_a_birth_date(world: World) -> None:
    by_age = parse_profile(
        {
            "scenario": "transit",
            "catalogue_item": "0301",
            "fields": ["birth_date"],
            "transit": {"fare_fen": 200, "concession_age": 60},
        },
        "by-age.toml",
        "by-age",
    )
    decision = world.tap(by_age, "absent-fields")[0]
    assert decision.detail == {"fare_fen": 0, "concession": "age"}


CATEGORIES = ("elderly", "absent-fields", "ordinary-2.0", "student")


def test_the_first_category_that_applies_is_the_holder_s(world: World, tmp_path: Path) -> None:
    listed = tmp_path / "disabled.txt"
    listed.write_text(f"{world.card_hash('ordinary-2.0')}\n")
    bands = meal_profile(
        world,
        categories=[
            {"name": "elderly_80", "min_age": 80},
            {"name": "disabled", "disabled": True},
            {"name": "elderly_70", "min_age": 70},
            {"name": "elderly_60", "min_age": 60},
        ],
        disabled_list="disabled.txt",
    )
    category = {p: world.tap(bands, p)[0].detail.get("subsidy_category") for p in CATEGORIES}
    assert category == {
        "elderly": "elderly_70",  # 74
        "absent-fields": "elderly_60",  # 64
        "ordinary-2.0": "disabled",  # 36, on the list
        "student": None,  # 18: refused
    }


def test_a_holder_of_no_category_is_refused_unless_the_point_serves_everyone(
    world: World,
) -> None:
    refused = world.tap("meal-point", "ordinary-2.0")[0]  # 36
    assert (refused.outcome, refused.reason) == ("refuse", Reason.MEAL_NOT_ELIGIBLE)
    assert refused.detail == {"subsidy_category": None}
    assert "民政" in refused.indication().advice_zh and refused.indication().hotlines
    row = world.store.journal.last()
    assert row is not None and row.personal_fields == ()  # refused: nothing kept
    everyone = meal_profile(world, serve_others=True, daily_limit=1)
    served = world.tap(everyone, "ordinary-2.0")[0]
    assert served.detail == {"subsidy_category": None, "meals_left": 0}
    assert world.tap(everyone, "ordinary-2.0")[0].reason == Reason.MEAL_LIMIT_REACHED


# --- gate concessions -----------------------------------------------------------------------


def test_gate_concessions_are_on_the_decision_without_reading_ef06(world: World) -> None:
    shown = {}
    for persona in ("elderly", "student", "ordinary-2.0", "hk-resident"):
        decision, card = world.tap("gate", persona)
        assert decision.reason == Reason.OK and records_read(card) <= EF05
        shown[persona] = decision.detail
    assert shown == {
        "elderly": {"concession": "elderly_category"},  # 卡类别 4: the 老年人优待证
        "student": {"concession": "reduced_category"},
        "ordinary-2.0": {"concession": None},
        "hk-resident": {"concession": None},  # the same as a mainland adult (§16)
    }
    assert [row.amount for row in world.store.journal.rows()] == [None] * 4  # free entry


def test_a_scenic_site_charges_its_ticket_less_the_concession(world: World, tmp_path: Path) -> None:
    (tmp_path / "disabled.txt").write_text(f"{world.card_hash('hk-resident')}\n")
    scenic = parse_profile(
        {
            "scenario": "gate",
            "catalogue_item": "0501",
            "fields": ["birth_date"],
            "gate": {
                "ticket_fen": 6000,
                "reduced_ticket_fen": 3000,
                "free_categories": ["4"],
                "reduced_categories": ["2"],
                "concession_age": 65,
                "disabled_list": "disabled.txt",
            },
        },
        "scenic.toml",
        "scenic",
    )
    shown = {p: world.tap(scenic, p)[0].detail for p in ("elderly", "student", "hk-resident")}
    shown["ordinary-2.0"] = world.tap(scenic, "ordinary-2.0")[0].detail
    assert shown == {
        "elderly": {"concession": "elderly_category", "ticket_fen": 0},
        "student": {"concession": "reduced_category", "ticket_fen": 3000},
        "hk-resident": {"concession": "disabled", "ticket_fen": 0},
        "ordinary-2.0": {"concession": None, "ticket_fen": 6000},
    }
    assert [row.amount for row in world.store.journal.rows()] == [0, 3000, 0, 6000]
    by_age = world.tap(scenic, "absent-fields")[0]  # 64: below 65, pays in full
    assert by_age.detail == {"concession": None, "ticket_fen": 6000}
    world.clock.now += 366 * 86_400  # a year on: 65
    assert world.tap(scenic, "absent-fields")[0].detail == {"concession": "age", "ticket_fen": 0}


# --- coach and ferry ------------------------------------------------------------------------


def test_coach_and_ferry_share_the_transit_rules_under_their_own_item(world: World) -> None:
    coach = world.tap("coach", "student")[0]
    assert coach.detail == {"fare_fen": 750, "concession": "reduced_category"}
    assert world.tap("coach", "elderly")[0].detail == {"fare_fen": 1500, "concession": None}
    ferry = world.tap("ferry", "elderly")[0]
    assert ferry.detail == {"fare_fen": 0, "concession": "elderly_category"}
    rows = [(r.scenario, r.catalogue_item, r.amount) for r in world.store.journal.rows()]
    assert rows == [("coach", "0302", 750), ("coach", "0302", 1500), ("ferry", "0303", 0)]
    # a catalogue without the ferry's item: the ferry is not offered, the bus still is
    world.store.catalogue.load_file(_catalogue(world.folder, "0301", "0302"))
    assert world.tap("ferry", "elderly")[0].reason == Reason.NOT_IN_CATALOGUE
    assert world.tap("transit", "elderly")[0].reason == Reason.OK


def _catalogue(folder: Path, *codes: str) -> Path:
    path = folder / "catalogue.toml"
    items = "".join(
        f'[[items]]\ncode = "{code}"\nname = "公共交通"\nscenario = "transit"\nregions = ["*"]\n'
        for code in codes
    )
    path.write_text(f'format = "sscard-catalogue/1"\n{items}', encoding="utf-8")
    return path


def _facts(persona: str, personal: dict[str, str]) -> CardFacts:
    region, number = CARDS[persona]
    return CardFacts(region, number, "3", None, None, genuine=True, personal=personal)


def test_sscard_tap_names_a_wrong_service_before_waiting_for_a_card() -> None:
    hall, hospital = load_profile("service-hall"), load_profile("hospital")
    assert service_problem(hall, None) is None and service_problem(hall, "records") is None
    assert service_problem(hall, "pension") == (
        "this service hall offers no service 'pension'; it offers: identity, employment, "
        "records, benefits"
    )
    assert service_problem(hospital, None) is None
    assert service_problem(hospital, "records") == (
        "--service is for a service hall, not a hospital profile"
    )
