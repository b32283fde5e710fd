"""Scenario profiles: the built-in files load, and every mistake in a profile is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminal.profiles import PROFILE_DIR, ProfileError, Scenario, load_profile, parse_profile

TRANSIT = {"scenario": "transit", "catalogue_item": "0301", "transit": {"fare_fen": 200}}


#: the transit variants: their own name and catalogue item, the transit rules
TRANSIT_VARIANTS = {"coach": "0302", "ferry": "0303"}


def test_every_built_in_profile_loads() -> None:
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    assert names == [
        "coach",
        "ferry",
        "gate",
        "hospital",
        "hotel",
        "meal-point",
        "service-hall",
        "transit",
    ]
    for name in names:
        profile = load_profile(name)
        scenario = Scenario.TRANSIT if name in TRANSIT_VARIANTS else Scenario(name)
        assert profile.name == name and profile.scenario == scenario
        assert profile.rules is getattr(profile, scenario.table)


def test_coach_and_ferry_are_transit_with_their_own_catalogue_item() -> None:
    items = {load_profile(name).catalogue_item for name in ("transit", *TRANSIT_VARIANTS)}
    assert items == {"0301", *TRANSIT_VARIANTS.values()}
    for name in TRANSIT_VARIANTS:
        profile = load_profile(name)
        assert profile.transit is not None and profile.fields == ()
        assert profile.degraded.deny_list == "accept"  # a coach or a ferry never waits


def test_each_new_scenario_reads_only_what_its_service_needs() -> None:
    hall = load_profile("service-hall")
    assert hall.fields == ("name", "ssn") and not hall.pin  # the PIN is per service
    assert hall.service_hall is not None
    assert [(s.code, s.pin) for s in hall.service_hall.services] == [
        ("identity", False),
        ("employment", False),
        ("records", True),
        ("benefits", True),
    ]
    meal = load_profile("meal-point")
    assert meal.fields == ("birth_date",) and meal.meal_point is not None
    assert [(c.name, c.min_age) for c in meal.meal_point.categories] == [
        ("elderly_80", 80),
        ("elderly_60", 60),
    ]
    gate = load_profile("gate")
    assert gate.fields == () and gate.gate is not None  # concessions from 卡类别 alone
    assert (gate.gate.free_categories, gate.gate.reduced_categories) == (("4",), ("2",))


def test_transit_and_gate_read_no_personal_field() -> None:
    for name in ("transit", "gate", *TRANSIT_VARIANTS):
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
        (
            {"qr": {"opaque_offline": "refuse", "max_deferred": 10}},
            'max_deferred applies only with opaque_offline = "defer"',
        ),
        (
            {"fields": ["birth_date"], "qr": {"opaque_offline": "defer"}},
            "a deferred national code carries no identity",
        ),
        ({"qr": {"opaque_offline": "defer", "max_deferred": 0}}, "qr.max_deferred"),
        ({"qr": {"opaque_offline": "defer", "max_deferred": True}}, "qr.max_deferred"),
        ({"qr": {"opaque_offline": "defer", "max_deferred": "50"}}, "qr.max_deferred"),
        ({"qr": {"opaque_offline": "defer", "max_deferred": 12.0}}, "qr.max_deferred"),
        ({"qr": {"opaque_offline": "defer", "max_deferred": 100_001}}, "qr.max_deferred"),
    ],
)
def test_mistakes_are_clear_errors_naming_the_file_and_key(change: dict, needle: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(TRANSIT | change, "/etc/sscard/profiles/bus.toml")
    message = str(info.value)
    assert message.startswith("/etc/sscard/profiles/bus.toml: ") and needle in message


def test_a_deferring_profile_caps_its_deferred_codes() -> None:
    gate = load_profile("gate")
    assert gate.qr.opaque_offline == "defer" and gate.qr.max_deferred == 200
    data = TRANSIT | {"qr": {"opaque_offline": "defer"}}
    assert parse_profile(data, "bus.toml").qr.max_deferred == 100  # the default cap
    data = TRANSIT | {"qr": {"opaque_offline": "defer", "max_deferred": 3}}
    assert parse_profile(data, "bus.toml").qr.max_deferred == 3


def test_transit_and_gates_defer_national_codes_offline_identity_services_refuse() -> None:
    """Issue 11 §3: by default a bus, a coach, a ferry and a gate take a national code the
    platform cannot check now and have it confirmed at the next sync; a hotel, a hospital, a
    service hall and a meal point, whose service needs the holder's data, refuse it
    (docs/policy.md §7)."""
    built_in = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    assert {name: load_profile(name).qr.opaque_offline for name in built_in} == {
        "coach": "defer",
        "ferry": "defer",
        "gate": "defer",
        "hospital": "refuse",
        "hotel": "refuse",
        "meal-point": "refuse",
        "service-hall": "refuse",
        "transit": "defer",
    }
    assert parse_profile(TRANSIT, "bus.toml").qr.opaque_offline == "defer"  # no [qr] table
    gate = {"scenario": "gate", "catalogue_item": "0501", "gate": {}, "qr": {"window_s": 10}}
    assert parse_profile(gate, "g.toml").qr.opaque_offline == "defer"  # a [qr] without the key
    refusing = TRANSIT | {"qr": {"opaque_offline": "refuse"}}
    assert parse_profile(refusing, "bus.toml").qr.opaque_offline == "refuse"
    # a bus that reads the birth date (an age concession) has no identity to give a deferred
    # code: it refuses by default, and cannot be told to defer
    aged = TRANSIT | {"fields": ["birth_date"]}
    aged["transit"] = {"fare_fen": 200, "concession_age": 65}
    assert parse_profile(aged, "bus.toml").qr.opaque_offline == "refuse"
    hotel = {"scenario": "hotel", "catalogue_item": "0601", "hotel": {}}
    hotel["fields"] = ["name", "ssn", "sex", "ethnicity", "birth_date"]
    with pytest.raises(ProfileError, match="carries no identity"):
        parse_profile(hotel | {"qr": {"opaque_offline": "defer"}}, "h.toml")


def test_a_scenario_needs_its_own_table() -> None:
    with pytest.raises(ProfileError, match=r"a gate profile needs a \[gate\] table"):
        parse_profile({"scenario": "gate", "catalogue_item": "0501"}, "g.toml")


def test_lodging_registration_needs_the_full_identity() -> None:
    data = {"scenario": "hotel", "catalogue_item": "0601", "fields": ["name"], "hotel": {}}
    with pytest.raises(ProfileError, match=r"needs the fields \['birth_date', 'ethnicity'"):
        parse_profile(data, "h.toml")


def test_unknown_profile_names_the_built_in_ones(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"no scenario profile 'spa'; built in: \['coach'"):
        load_profile("spa")
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("scenario = \n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(bad)


# --- operating policy (docs/policy.md) ------------------------------------------------------

RULE = "《某市公交乘车优待办法》第3条"


def test_degraded_defaults_by_scenario_and_a_partial_table_keeps_the_rest() -> None:
    for name in ("transit", "gate", "meal-point", *TRANSIT_VARIANTS):
        policy = load_profile(name).degraded
        assert (policy.deny_list, policy.catalogue, policy.trust_list) == ("accept",) * 3
    for name in ("hotel", "hospital", "service-hall"):
        policy = load_profile(name).degraded
        assert (policy.deny_list, policy.catalogue, policy.trust_list) == ("online",) * 3
        assert policy.online_fallback == "accept"
    hotel = {"scenario": "hotel", "catalogue_item": "0601", "hotel": {}}
    hotel["fields"] = ["name", "ssn", "sex", "ethnicity", "birth_date"]
    assert parse_profile(hotel, "h.toml").degraded.deny_list == "online"  # no table at all
    partial = parse_profile(hotel | {"degraded": {"online_timeout_s": 0.5}}, "h.toml").degraded
    assert (partial.deny_list, partial.online_timeout_s) == ("online", 0.5)
    explicit = parse_profile(TRANSIT | {"degraded": {"deny_list": "refuse"}}, "t.toml")
    assert (explicit.degraded.deny_list, explicit.degraded.catalogue) == ("refuse", "accept")


def test_a_region_restriction_and_a_region_concession_parse() -> None:
    profile = parse_profile(
        TRANSIT
        | {
            "regions": {"accept": ["44", "360100"], "rule": RULE},
            "transit": {
                "fare_fen": 200,
                "region_concessions": [
                    {
                        "name": "gz_senior_free",
                        "regions": ["440100"],
                        "categories": ["4"],
                        "rule": RULE,
                    }
                ],
            },
        },
        "t.toml",
    )
    assert profile.regions is not None and profile.regions.rule == RULE
    assert profile.transit is not None
    (local,) = profile.transit.region_concessions
    assert local.applies("440100", "4") and not local.applies("440100", "3")
    assert not local.applies("430100", "4")  # another city's elderly: the ordinary fare


CONCESSION = {"name": "local", "regions": ["440100"], "rule": RULE}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"regions": {"accept": ["44"]}}, "regions.rule"),
        ({"regions": {"accept": ["44"], "rule": " "}}, "must name the rule it rests on"),
        ({"regions": {"accept": [], "rule": RULE}}, "at least one region"),
        ({"regions": {"accept": ["4401"], "rule": RULE}}, "2-digit province prefixes"),
        ({"regions": {"accept": ["44"], "rule": "x" * 201}}, "at most 200"),
        ({"degraded": {"deny_list": "ignore"}}, "degraded.deny_list"),
        ({"degraded": {"online_fallback": "online"}}, "degraded.online_fallback"),
        ({"degraded": {"online_timeout_s": 30}}, "degraded.online_timeout_s"),
        ({"degraded": {"crl": "accept"}}, "degraded.crl: unknown key"),
        (
            {"transit": {"fare_fen": 200, "region_concessions": [CONCESSION | {"fare_fen": 200}]}},
            "below the fare",
        ),
        (
            {"transit": {"fare_fen": 200, "region_concessions": [CONCESSION, CONCESSION]}},
            "twice",
        ),
        (
            {"transit": {"fare_fen": 200, "region_concessions": [CONCESSION | {"name": "age"}]}},
            "card concessions' own",
        ),
        (
            {
                "transit": {
                    "fare_fen": 200,
                    "region_concessions": [{"name": "x", "regions": ["44"]}],
                }
            },
            "rule",
        ),
    ],
)
def test_policy_mistakes_are_clear_errors(change: dict, needle: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(TRANSIT | change, "/etc/sscard/profiles/bus.toml")
    assert needle in str(info.value)


def test_the_built_in_profiles_restrict_no_region() -> None:
    for name in sorted(p.stem for p in PROFILE_DIR.glob("*.toml")):
        assert load_profile(name).regions is None


# --- issue 10 finding 9, the profile loader: deep TOML, huge numbers, NUL, unbounded ints ---

GATE = {"scenario": "gate", "catalogue_item": "0501", "gate": {}}
HOTEL = {
    "scenario": "hotel",
    "catalogue_item": "0601",
    "fields": ["name", "ssn", "sex", "ethnicity", "birth_date"],
    "hotel": {},
}


def _refused(data: dict, key: str) -> str:
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "/etc/sscard/profiles/p.toml")
    message = str(info.value)
    assert message.startswith(f"/etc/sscard/profiles/p.toml: {key}: "), message
    return message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (TRANSIT | {"max_list_age_hours": 1e300}, "max_list_age_hours"),
        (TRANSIT | {"max_list_age_hours": float("inf")}, "max_list_age_hours"),
        (TRANSIT | {"max_list_age_hours": float("nan")}, "max_list_age_hours"),
        (TRANSIT | {"max_list_age_hours": 8761}, "max_list_age_hours"),
        (TRANSIT | {"qr": {"window_s": float("nan")}}, "qr.window_s"),
        (TRANSIT | {"qr": {"skew_s": float("inf")}}, "qr.skew_s"),
        (GATE | {"gate": {"daily_capacity": 2**63}}, "gate.daily_capacity"),
        (GATE | {"gate": {"daily_capacity": 10_000_001}}, "gate.daily_capacity"),
        (TRANSIT | {"transit": {"fare_fen": 10**400}}, "transit.fare_fen"),
    ],
)
def test_numbers_are_finite_and_bounded(data: dict, key: str) -> None:
    _refused(data, key)


def test_the_largest_numbers_taken() -> None:
    assert parse_profile(TRANSIT | {"max_list_age_hours": 8760}, "p.toml").max_list_age_hours
    gate = parse_profile(GATE | {"gate": {"daily_capacity": 10_000_000}}, "p.toml").gate
    assert gate is not None and gate.daily_capacity == 10_000_000


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (TRANSIT | {"name": "bus\x00"}, "name"),
        (TRANSIT | {"voice": {"ok": "请通过\x00"}}, "voice.ok"),
        (TRANSIT | {"voice": {"o\nk": "请通过"}}, "voice.'o\\nk'.[key]"),
        (
            TRANSIT | {"transit": {"fare_fen": 1, "disabled_list": "/var/x\x00"}},
            "transit.disabled_list",
        ),
        (TRANSIT | {"transit": {"fare_fen": 1, "disabled_list": ""}}, "transit.disabled_list"),
        (HOTEL | {"hotel": {"room_pattern": "^[0-9]\x00$"}}, "hotel.room_pattern"),
    ],
)
def test_strings_hold_no_control_character(data: dict, key: str) -> None:
    _refused(data, key)


def test_a_room_pattern_that_is_no_regular_expression_is_refused_at_load() -> None:
    message = _refused(HOTEL | {"hotel": {"room_pattern": "^[0-9"}}, "hotel.room_pattern")
    assert "not a regular expression" in message


@pytest.mark.parametrize(
    "content",
    [
        'scenario = "transit"\nvoice = ' + "[" * 5000 + "]" * 5000 + "\n",
        'scenario = "transit"\nvoice = ' + "{a = " * 5000 + "1" + "}" * 5000 + "\n",
        'scenario = "transit"\n' + ".".join(["voice"] * 5000) + ' = "x"\n',
    ],
    ids=["arrays", "inline-tables", "dotted-keys"],
)
def test_toml_nested_5000_deep_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}: ") and "nested" in str(info.value)


def test_a_profile_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'scenario = "transit"\nname = "caf\xe9"\n')
    with pytest.raises(ProfileError, match=rf"^{path}: not UTF-8 text \(line 2, byte 32\)$"):
        load_profile(path)


def test_a_profile_path_with_a_nul_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="holds no NUL"):
        load_profile(tmp_path / "transit\x00.toml")


def test_an_unknown_key_with_a_newline_cannot_forge_a_line_of_the_message() -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(TRANSIT | {"x\nforged: ok": 1}, "p.toml")
    assert "\n" not in str(info.value) and "'x\\nforged: ok': unknown key" in str(info.value)


# --- issue 11 §5: service halls, meal points, gate concessions ------------------------------

HALL = {
    "scenario": "service-hall",
    "catalogue_item": "0101",
    "fields": ["name", "ssn"],
    "service_hall": {"services": [{"code": "identity", "name": "身份核验"}]},
}
MEAL = {
    "scenario": "meal-point",
    "catalogue_item": "0701",
    "fields": ["birth_date"],
    "meal_point": {"daily_limit": 2, "categories": [{"name": "elderly_60", "min_age": 60}]},
}
SERVICE = {"code": "records", "name": "社保权益记录查询", "pin": True}
AGED = {"name": "elderly_60", "min_age": 60}
DISABLED = {"name": "disabled", "disabled": True}


def test_the_new_scenarios_need_their_own_table_named_with_an_underscore() -> None:
    with pytest.raises(ProfileError, match=r"a service-hall profile needs a \[service_hall\]"):
        parse_profile({"scenario": "service-hall", "catalogue_item": "0101"}, "s.toml")
    with pytest.raises(ProfileError, match=r"a meal-point profile needs a \[meal_point\] table"):
        parse_profile({"scenario": "meal-point", "catalogue_item": "0701"}, "m.toml")
    with pytest.raises(ProfileError, match=r"cannot have \['meal_point'\] tables"):
        parse_profile(HALL | {"meal_point": MEAL["meal_point"]}, "s.toml")


def test_a_service_hall_names_its_first_service_the_default() -> None:
    hall = parse_profile(
        HALL | {"service_hall": {"services": [HALL["service_hall"]["services"][0], SERVICE]}},
        "s.toml",
    ).service_hall
    assert hall is not None
    chosen = [hall.service(code) for code in (None, "identity", "records", "pension")]
    assert [item.code if item else None for item in chosen] == [
        "identity",
        "identity",
        "records",
        None,
    ]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (HALL | {"service_hall": {"services": []}}, "service_hall.services"),
        (HALL | {"service_hall": {}}, "service_hall.services"),
        (HALL | {"service_hall": {"services": [SERVICE, SERVICE]}}, "names a service twice"),
        (HALL | {"service_hall": {"services": [SERVICE | {"code": "Re cords"}]}}, "code"),
        (HALL | {"service_hall": {"services": [SERVICE | {"pin": "yes"}]}}, "pin"),
        (HALL | {"service_hall": {"services": [SERVICE | {"fee": 1}]}}, "fee: unknown key"),
        (MEAL | {"meal_point": {"daily_limit": 0, "categories": [AGED]}}, "daily_limit"),
        (MEAL | {"meal_point": {"daily_limit": 11, "categories": [AGED]}}, "daily_limit"),
        (MEAL | {"meal_point": {"daily_limit": 1, "categories": []}}, "categories"),
        (MEAL | {"meal_point": {"daily_limit": 1}}, "categories"),
        (
            MEAL | {"meal_point": {"daily_limit": 1, "categories": [AGED | {"disabled": True}]}},
            "either min_age or disabled = true",
        ),
        (
            MEAL | {"meal_point": {"daily_limit": 1, "categories": [{"name": "all"}]}},
            "either min_age or disabled = true",
        ),
        (
            MEAL | {"meal_point": {"daily_limit": 1, "categories": [AGED, AGED]}},
            "names a category twice",
        ),
        (MEAL | {"fields": []}, "['elderly_60'] need birth_date in fields"),
        (
            MEAL | {"meal_point": {"daily_limit": 1, "categories": [DISABLED]}},
            "needs meal_point.disabled_list",
        ),
        (
            GATE | {"gate": {"ticket_fen": 1000, "reduced_ticket_fen": 2000}},
            "must not exceed gate.ticket_fen",
        ),
        (GATE | {"gate": {"reduced_categories": ["2"]}}, "needs gate.reduced_ticket_fen"),
        (GATE | {"gate": {"free_categories": ["9"]}}, "gate.free_categories ['9']"),
        (GATE | {"gate": {"concession_age": 60}}, "gate.concession_age needs birth_date"),
        (GATE | {"gate": {"ticket_fen": -1}}, "gate.ticket_fen"),
    ],
)
def test_new_scenario_mistakes_are_clear_errors(data: dict, needle: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "/etc/sscard/profiles/p.toml")
    message = str(info.value)
    assert message.startswith("/etc/sscard/profiles/p.toml: ") and needle in message, message


def test_a_meal_point_with_a_disabled_list_and_a_scenic_gate_parse() -> None:
    meal = parse_profile(
        MEAL
        | {
            "meal_point": {
                "daily_limit": 1,
                "categories": [DISABLED, AGED],
                "disabled_list": "disabled.txt",
                "serve_others": True,
            }
        },
        "m.toml",
    )
    assert meal.disabled_list == "disabled.txt" and meal.meal_point is not None
    scenic = parse_profile(
        GATE
        | {
            "fields": ["birth_date"],
            "gate": {"ticket_fen": 6000, "reduced_ticket_fen": 3000, "concession_age": 65},
        },
        "g.toml",
    )
    assert scenic.gate is not None and scenic.gate.ticket_fen == 6000
