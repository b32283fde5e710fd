"""The validation pipeline with in-process emulated cards, the software SAM and a real store file.

Each test taps a persona's card for a scenario profile and checks the decision, what reached the
journal and what the card was asked: a check's order, a field outside the profile's set, a
refused card's personal data — each is visible in the card's APDU log or the store.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pipeline_support import World
from support import CATALOGUE, make_card

from drivers.virtual.ssc_card import VirtualSscCard
from offline_store import META_DENY_CURRENT_AT
from terminal.profiles import load_profile, parse_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated


def sent(card: VirtualSscCard, prefix: str) -> list[bytes]:
    return [cmd for cmd, _ in card.log if cmd.hex().upper().startswith(prefix)]


def test_an_ordinary_transit_tap_pays_the_fare_and_never_opens_ef06(world: World) -> None:
    decision, card = world.tap("transit", "ordinary-2.0")
    assert (decision.outcome, decision.reason) == ("accept", Reason.OK)
    assert decision.detail == {"fare_fen": 200, "concession": None}
    assert not [cmd for cmd, _ in card.log if cmd.hex().upper().endswith("EF06")]
    assert sent(card, "00880000")  # INTERNAL AUTHENTICATE: proven genuine
    row = world.store.journal.last()
    assert row is not None and row.seq == decision.seq
    assert (row.scenario, row.outcome, row.reason_code, row.amount) == (
        "transit",
        "accept",
        "ok",
        200,
    )
    assert row.credential_token == world.card_hash("ordinary-2.0")
    assert row.personal_fields == ()
    assert "ACCEPT" in world.console.getvalue()


def test_a_3_0_transit_tap_is_8_apdus_and_a_hotel_tap_proves_the_card_once(
    world: World,
) -> None:
    # transit reads no personal field: SELECT SSSE, SELECT EF05, READ 01 02 03 06 07, and the
    # genuineness proof without RKSSSE: the spec minimum (bench/bench_apdus.py)
    decision, card = world.tap("transit", "v3-sm4")
    assert decision.reason == Reason.OK
    assert len(card.log) == 8 and not sent(card, "0082") and not sent(card, "0084")
    assert len(sent(card, "00880000")) == 1
    decision, card = world.tap("hotel", "v3-sm4", room="1208")
    assert decision.reason == Reason.OK
    assert len(sent(card, "00880000")) == 1 and len(sent(card, "0082000A")) == 1


def test_concessions_come_from_card_data_never_from_residency(world: World, tmp_path: Path) -> None:
    assert world.tap("transit", "elderly")[0].detail == {
        "fare_fen": 0,
        "concession": "elderly_category",
    }
    assert world.tap("transit", "student")[0].detail == {
        "fare_fen": 100,
        "concession": "reduced_category",
    }
    listed = tmp_path / "disabled.txt"
    listed.write_text(f"# disabled holders\n{world.card_hash('hk-resident')}\n")
    by_age = parse_profile(
        {
            "scenario": "transit",
            "catalogue_item": "0301",
            "fields": ["birth_date"],
            "transit": {"fare_fen": 200, "concession_age": 35, "disabled_list": "disabled.txt"},
        },
        "by-age.toml",
        "by-age",
    )
    # a Hong Kong resident (810000…) is treated exactly like a mainland holder
    assert world.tap(by_age, "hk-resident")[0].detail["concession"] == "disabled"
    mainland = world.tap(by_age, "ordinary-2.0")[0]  # born 1990-03-07: 36
    assert mainland.detail == {"fare_fen": 0, "concession": "age"}
    row = world.store.journal.last()
    assert row is not None and row.personal_fields == ("birth_date",)


def test_the_checks_run_in_order_and_each_reason_is_journaled(world: World) -> None:
    # forged: refused before anything else is looked at
    decision, _ = world.tap("transit", "forged")
    assert decision.reason == Reason.NOT_GENUINE and decision.outcome == "refuse"
    # expired beats deny listed
    world.deny("delta", 2, [_entry(world, "ordinary-2.0", "lost")], base=1)
    assert world.tap("transit", "expired")[0].reason == Reason.EXPIRED
    lost = world.tap("transit", "ordinary-2.0")[0]
    assert lost.reason == Reason.DENY_LOST
    assert lost.detail == {"deny_reason": "lost", "effective": "2026-11-20", "list_version": 2}
    reasons = [row.reason_code for row in world.store.journal.rows()]
    assert reasons == ["not_genuine", "expired", "deny_lost"]
    assert world.store.journal.verify_chain().ok


def test_each_deny_reason_and_unlisting(world: World) -> None:
    lines = [
        _entry(world, "ordinary-2.0", "lost"),
        _entry(world, "student", "cancelled"),
        _entry(world, "elderly", "replaced"),
        _entry(world, "hk-resident", "fraud"),
    ]
    world.deny("delta", 2, lines, base=1)
    got = {p: world.tap("transit", p)[0].reason for p in ("ordinary-2.0", "student", "elderly")}
    assert got == {
        "ordinary-2.0": Reason.DENY_LOST,
        "student": Reason.DENY_CANCELLED,
        "elderly": Reason.DENY_REPLACED,
    }
    assert world.tap("transit", "hk-resident")[0].reason == Reason.DENY_FRAUD
    world.deny("delta", 3, [{"op": "remove", "hash": world.card_hash("ordinary-2.0")}], base=2)
    assert world.tap("transit", "ordinary-2.0")[0].reason == Reason.OK  # 解挂


def test_a_deny_entry_effective_tomorrow_does_not_refuse_today(world: World) -> None:
    entry = _entry(world, "ordinary-2.0", "lost") | {"effective": "2026-11-30"}
    world.deny("delta", 2, [entry], base=1)
    assert world.tap("transit", "ordinary-2.0")[0].reason == Reason.OK
    world.clock.now += 86_400
    assert world.tap("transit", "ordinary-2.0")[0].reason == Reason.DENY_LOST


def test_locks_and_blocks(world: World) -> None:
    assert world.tap("transit", "ordinary-2.0", app_locked=True)[0].reason == Reason.APP_LOCKED
    assert world.tap("transit", "ordinary-2.0", card_blocked=True)[0].reason == Reason.CARD_BLOCKED


def test_no_security_module_where_the_profile_requires_one(world: World) -> None:
    decision, card = world.tap("transit", "ordinary-2.0", module=False)
    assert decision.reason == Reason.NO_SECURITY_MODULE and not sent(card, "0088")
    lenient = load_profile("transit").model_copy(update={"require_genuine": False})
    assert world.tap(lenient, "ordinary-2.0", module=False)[0].reason == Reason.OK


def test_category_and_a_list_gone_stale(world: World) -> None:
    elderly_only = load_profile("transit").model_copy(update={"allowed_categories": ("4",)})
    decision = world.tap(elderly_only, "ordinary-2.0")[0]
    assert decision.reason == Reason.CATEGORY_NOT_ALLOWED and decision.detail == {"category": "3"}
    # a Chengdu (51) card at a terminal whose catalogue item names provinces 44 and 33 only:
    # the item says where the service is offered, not whose cards it takes
    sichuan = load_profile("transit").model_copy(update={"expiry_grace_days": 366 * 8})
    assert world.tap(sichuan, "expired")[0].reason == Reason.OK
    world.clock.now += 73 * 3600  # the lists were made 73 h ago; transit trusts 72 h
    stale = world.tap("transit", "ordinary-2.0")[0]
    assert (stale.outcome, stale.reason) == ("accept", Reason.OK)  # never the rider's problem
    assert stale.flags == ("stale_list:catalogue", "stale_list:deny_list")
    row = world.store.journal.last()
    assert row is not None and row.flags == stale.flags
    assert world.tap("gate", "ordinary-2.0")[0].flags == ()  # the gate trusts a week


def test_gate_anti_passback_and_daily_capacity(world: World) -> None:
    assert world.tap("gate", "ordinary-2.0")[0].reason == Reason.OK
    again = world.tap("gate", "ordinary-2.0")[0]
    assert again.reason == Reason.ANTI_PASSBACK and again.detail == {"window_s": 300}
    world.clock.now += 301
    assert world.tap("gate", "ordinary-2.0")[0].reason == Reason.OK
    small = load_profile("gate").model_copy(
        update={"gate": load_profile("gate").gate.model_copy(update={"daily_capacity": 2})}
    )
    assert world.tap(small, "student")[0].reason == Reason.CAPACITY_FULL  # 2 entries today
    world.clock.now += 86_400
    assert world.tap(small, "student")[0].reason == Reason.OK  # a new day


def test_hotel_registration_record_and_encrypted_journal(world: World) -> None:
    decision, card = world.tap("hotel", "v3-sm4", room="1208")
    assert decision.reason == Reason.OK
    assert decision.record == {
        "room": "1208",
        "region_code": "330100",
        "name": "李晓梅",
        "ssn": "310000197811203384",
        "sex": "2",
        "ethnicity": "01",
        "birth_date": "1978-11-20",
    }
    assert sent(card, "0082000A")  # RKSSSE opened EF06 of the 3.0 card
    read_tags = {cmd[2] for cmd in sent(card, "00B2")}
    assert 0x0C not in read_tags  # birthplace is not in the hotel's field set: never read
    row = world.store.journal.last()
    assert row is not None
    assert row.personal_fields == ("birth_date", "ethnicity", "name", "sex", "ssn")
    stored = world.store.journal.read_personal(row.seq, who="test auditor")
    assert stored["ssn"] == "310000197811203384" and "birthplace" not in stored
    audit = world.store.audit.rows()
    assert [a.scenario for a in audit] == ["hotel", "hotel"]  # the tap, then the auditor
    assert "310000197811203384" not in repr(audit)
    database = (world.folder / "store.db").read_bytes()
    wal = world.folder / "store.db-wal"
    database += wal.read_bytes() if wal.exists() else b""
    assert b"310000197811203384" not in database and "李晓梅".encode() not in database


def test_a_refused_card_has_no_personal_data_read(world: World) -> None:
    world.deny("delta", 2, [_entry(world, "v3-sm4", "lost")], base=1)
    decision, card = world.tap("hotel", "v3-sm4", room="1208")
    assert decision.reason == Reason.DENY_LOST and decision.record is None
    ef05_records = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07}
    assert {cmd[2] for cmd in sent(card, "00B2")} <= ef05_records
    assert world.store.audit.rows() == []
    row = world.store.journal.last()
    assert row is not None and row.personal_fields == ()


def test_hotel_needs_a_room(world: World) -> None:
    assert world.tap("hotel", "ordinary-2.0", room="12 08; drop")[0].reason == Reason.BAD_REQUEST
    assert world.tap("hotel", "ordinary-2.0")[0].reason == Reason.BAD_REQUEST


def test_hospital_pin_states_and_medical_fields(world: World) -> None:
    assert world.tap("hospital", "ordinary-2.0")[0].reason == Reason.PIN_MISSING
    card = make_card("ordinary-2.0")
    wrong = world.tap("hospital", card, pin="000000")[0]
    assert wrong.reason == Reason.PIN_WRONG and wrong.detail == {"tries_left": 2}
    assert wrong.outcome == "attention"
    decision = world.tap("hospital", card, pin="123456")[0]
    assert decision.reason == Reason.OK
    assert decision.record is not None
    assert {"medical.insurance_type", "medical.insured_region", "name", "ssn"} <= set(
        decision.record
    )
    for _ in range(3):
        world.tap("hospital", card, pin="999999")
    assert world.tap("hospital", card, pin="123456")[0].reason == Reason.PIN_BLOCKED


def test_a_card_removed_mid_read_is_try_again_and_journaled(world: World) -> None:
    decision, _ = world.tap("transit", "ordinary-2.0", tear_after=3)
    assert decision.reason == Reason.CARD_REMOVED and decision.outcome == "attention"
    row = world.store.journal.last()
    assert row is not None and row.outcome == "refuse" and row.credential_token == ""


def test_no_personal_value_outside_the_field_set_reaches_a_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.tap("hotel", "v3-sm4", room="0101")
    world.tap("transit", "ordinary-2.0")
    text = caplog.text + world.console.getvalue()
    for value in ("310000197811203384", "李晓梅", "E55120706", "A01023450", "310104"):
        assert value not in text
    assert "event=tap" in caplog.text


def _entry(world: World, persona: str, reason: str) -> dict:
    return {
        "op": "add",
        "hash": world.card_hash(persona),
        "reason": reason,
        "effective": "2026-11-20",
    }


def test_an_unchanged_list_the_platform_confirmed_is_not_stale(world: World) -> None:
    world.clock.now += 100 * 3600  # the list itself was made 100 h ago …
    assert world.tap("transit", "ordinary-2.0")[0].flags == (
        "stale_list:catalogue",
        "stale_list:deny_list",
    )
    world.store.meta.set({META_DENY_CURRENT_AT: f"{world.clock.now - 3600:.3f}"})
    world.store.catalogue.load_file(CATALOGUE)  # … and the catalogue was fetched again too
    fresh = world.tap("transit", "ordinary-2.0")[0]  # confirmed an hour ago
    assert (fresh.reason, fresh.flags) == (Reason.OK, ())
