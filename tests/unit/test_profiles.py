"""Scenario profiles: the built-in files load, and every mistake in a profile is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminal.profiles import PROFILE_DIR, ProfileError, Scenario, load_profile, parse_profile

TRANSIT = {"scenario": "transit", "catalogue_item": "0301", "transit": {"fare_fen": 200}}


def test_every_built_in_profile_loads() -> None:
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    assert names == ["gate", "hospital", "hotel", "transit"]
    for name in names:
        profile = load_profile(name)
        assert profile.name == name and profile.scenario == Scenario(name)


def test_transit_and_gate_read_no_personal_field() -> None:
    for name in ("transit", "gate"):
        profile = load_profile(name)
        assert profile.fields == () and profile.holder_fields == ()


def test_hotel_and_hospital_declare_their_fields() -> None:
    hotel = load_profile("hotel")
    assert set(hotel.holder_fields) == {"name", "ssn", "sex", "ethnicity", "birth_date"}
    hospital = load_profile("hospital")
    assert hospital.pin and hospital.medical_fields
    assert "birthplace" not in hospital.fields


def test_a_profile_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "bus-line-7.toml"
    path.write_text('scenario = "transit"\ncatalogue_item = "0301"\n[transit]\nfare_fen = 100\n')
    profile = load_profile(path)
    assert profile.name == "bus-line-7" and profile.transit is not None
    assert profile.transit.fare_fen == 100


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"transit": {"fare_fen": 200, "fare": 1}}, "transit.fare: unknown key"),
        ({"transit": {"fare_fen": "2.00"}}, "transit.fare_fen"),
        ({"transit": {"fare_fen": -1}}, "transit.fare_fen"),
        ({"fields": ["ssn", "shoe_size"]}, "['shoe_size'] are not card items"),
        ({"fields": ["ssn", "ssn"]}, "lists an item twice"),
        ({"fields": ["medical.insurance_type"]}, "need the PIN: set pin = true"),
        ({"transit": {"fare_fen": 200, "concession_age": 65}}, "needs birth_date in fields"),
        ({"transit": {"fare_fen": 200, "reduced_categories": ["2"]}}, "reduced_fare_fen"),
        ({"transit": {"fare_fen": 200, "free_categories": ["7"]}}, "codes are 1-4"),
        ({"allowed_categories": ["0"]}, "codes are 1-4"),
        ({"gate": {"anti_passback_s": 10}}, "cannot have ['gate'] tables"),
        ({"scenario": "spa"}, "scenario"),
        ({"catalogue_item": "03 01"}, "catalogue_item"),
        ({"require_genuine": "yes"}, "require_genuine"),
    ],
)
def test_mistakes_are_clear_errors_naming_the_file_and_key(change: dict, needle: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(TRANSIT | change, "/etc/sscard/profiles/bus.toml")
    message = str(info.value)
    assert message.startswith("/etc/sscard/profiles/bus.toml: ") and needle in message


def test_a_scenario_needs_its_own_table() -> None:
    with pytest.raises(ProfileError, match=r"a gate profile needs a \[gate\] table"):
        parse_profile({"scenario": "gate", "catalogue_item": "0501"}, "g.toml")


def test_lodging_registration_needs_the_full_identity() -> None:
    data = {"scenario": "hotel", "catalogue_item": "0601", "fields": ["name"], "hotel": {}}
    with pytest.raises(ProfileError, match=r"needs the fields \['birth_date', 'ethnicity'"):
        parse_profile(data, "h.toml")


def test_unknown_profile_names_the_built_in_ones(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"no scenario profile 'spa'; built in: \['gate'"):
        load_profile("spa")
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("scenario = \n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(bad)
