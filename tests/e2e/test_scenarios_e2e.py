"""End to end: the scenarios the regulations name (issue 11 §5) through a real pcscd, with
``sscard tap --scenario NAME`` in child processes and a real store file: the service hall's
PIN per service, the meal point's daily limit, gate concessions, coach and ferry fares; then
``sscard journal verify|tail --db``.

The terminal (settings, pepper, journal key, catalogue, signed deny list) is the one of
``test_tap_e2e.py``.
"""

from __future__ import annotations

import json

import pytest
from support import READER0, make_card, run_sscard
from test_tap_e2e import Terminal, terminal

pytestmark = pytest.mark.e2e

__all__ = ["terminal"]  # the fixture, imported for the tests below


def test_the_service_hall_asks_the_pin_only_for_the_services_that_need_it(
    terminal: Terminal, cards
) -> None:
    cards.insert(make_card("ordinary-2.0", t0=True))
    records = ("--service", "records", "--pin-stdin")
    wrong, _ = terminal.tap("service-hall", *records, stdin="000000\n")
    assert (wrong["outcome"], wrong["reason"]) == ("attention", "pin_wrong")
    assert wrong["detail"] == {"tries_left": 2} and wrong["prompt_zh"] == "密码错误，请重新输入"
    right, _ = terminal.tap("service-hall", *records, stdin="123456\n")
    assert right["record"] == {
        "service": "records",
        "region_code": "440100",
        "name": "陈静怡",
        "ssn": "440000199003071027",
    }
    config = str(terminal.config)
    done = terminal.sscard(
        "tap", "--scenario", "service-hall", "--service", "pension", "--config", config
    )
    assert done.returncode == 2  # refused before any card is read
    assert "offers: identity, employment, records, benefits" in done.stderr


def test_the_meal_point_counts_each_holder_s_meals_for_the_day(terminal: Terminal, cards) -> None:
    cards.insert(make_card("elderly"))
    meals = [terminal.tap("meal-point")[0] for _ in range(3)]
    assert [m["detail"] for m in meals[:2]] == [
        {"subsidy_category": "elderly_60", "meals_left": 1},
        {"subsidy_category": "elderly_60", "meals_left": 0},
    ]
    third = meals[2]
    assert (third["outcome"], third["reason"]) == ("refuse", "meal_limit_reached")
    assert third["prompt_zh"] == "今日助餐次数已用完，请改日再来" and "12333" in third["hotline"]
    cards.remove_all()
    cards.insert(make_card("absent-fields"))  # birth date left FF: taken from the SSN
    assert terminal.tap("meal-point")[0]["detail"] == {
        "subsidy_category": "elderly_60",
        "meals_left": 1,
    }
    db = str(terminal.folder / "store.db")
    verify = run_sscard("journal", "verify", "--db", db)
    assert verify.returncode == 0 and "4 rows" in verify.stdout
    tail = run_sscard("journal", "tail", "-n", "4", "--db", db)
    rows = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [(r["scenario"], r["reason"], r["personal_fields"]) for r in rows] == [
        ("meal-point", "ok", ["birth_date"]),
        ("meal-point", "ok", ["birth_date"]),
        ("meal-point", "meal_limit_reached", []),
        ("meal-point", "ok", ["birth_date"]),
    ]


def test_gate_concessions_and_the_coach_and_ferry_fares(terminal: Terminal, cards) -> None:
    cards.insert(make_card("elderly"))
    shown = terminal.sscard(
        "tap", "--scenario", "gate", "--config", str(terminal.config), "--reader", READER0,
        "--soft-sam", str(terminal.keys), "--timeout", "10", "--format", "table",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "concession" in shown.stdout and "elderly_category" in shown.stdout
    ferry = terminal.tap("ferry")[0]
    assert ferry["detail"] == {"fare_fen": 0, "concession": "elderly_category"}
    cards.remove_all()
    cards.insert(make_card("student"))
    coach = terminal.tap("coach")[0]
    assert coach["detail"] == {"fare_fen": 750, "concession": "reduced_category"}
    tail = run_sscard("journal", "tail", "-n", "3", "--config", str(terminal.config))
    rows = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [(r["scenario"], r["amount"]) for r in rows] == [
        ("gate", None),
        ("ferry", 0),
        ("coach", 750),
    ]
