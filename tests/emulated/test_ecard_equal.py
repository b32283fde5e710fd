"""Electronic cards count the same as physical ones (issue 11 §3, §6), decided offline through
the real pipeline and a real store file:

* the trust list of open ``SSC1`` codes under the profile's degraded policy: an expired list
  still verifies codes at a gate (flagged ``stale_list:trust_list``), ``refuse`` refuses, a
  missing list verifies nothing, and a production terminal refuses TEST KEYS whatever the
  policy;
* a valid code refused for another reason (anti-passback, the catalogue, a full gate) is not
  remembered as used: shown again, it is decided afresh, never refused as a replay;
* national codes the platform cannot decode now: a bus and a gate defer them (under the
  catalogue and a gate's capacity, which deferred entries count toward), a hotel and a hospital
  refuse them with a prompt that says what to do; at the next sync the platform's verdict
  completes the decision (the fare with the card's concessions, the profile's categories).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from pipeline_support import World
from platform_support import live_platform

from config.settings import Settings
from config.settings_file import EcardTable
from drivers.virtual import TEST_KEYS
from ecard import Alg, PrivateKey, issue_credential, make_code, make_trust_list
from ecard.keys import load_private_key
from offline_store import JournalRow, canonical_ecard_id
from sync.deferred import CONFIRMED, INVALID, Confirmation, Invalidity, follow_up_entry
from terminal.compose import open_online
from terminal.ecard_confirm import UNCHECKED_PROFILE, FollowUps
from terminal.ecard_flow import CodeVerifier, process_code
from terminal.profiles import Profile, load_profile, parse_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

KEYS = TEST_KEYS
TEST_ROOT = load_private_key((KEYS / "qr-root-test.pem").read_bytes())
TEST_PLATFORM = load_private_key((KEYS / "qr-platform-es256-test.pem").read_bytes())
TOKEN = "5a" * 32
DAY = 86400


def code(now: float, platform: PrivateKey = TEST_PLATFORM, counter: int = 1) -> str:
    """A fresh open code of a Nanchang card, made at ``now`` by its holder's device."""
    device = PrivateKey.generate(Alg.ES256)
    credential = issue_credential(
        platform,
        token=TOKEN,
        region="360100",
        category="3",
        not_before=int(now) - DAY,
        not_after=int(now) + 300 * DAY,
        device_public_key=device.public_key,
    )
    return make_code(credential, device, timestamp=int(now), counter=counter)


def hold_trust_list(
    world: World, *, expired: bool, root: PrivateKey = TEST_ROOT, key: PrivateKey = TEST_PLATFORM
) -> None:
    """Keep a trust list in the store (the next version): current, or expired two days ago."""
    now = int(world.clock.now)
    held = world.store.trust.info()
    version = held.version + 1 if held else 1
    not_after = now - 2 * DAY if expired else now + 7 * DAY
    raw = make_trust_list([key.public_key], root, version, now - 30 * DAY, not_after)
    world.store.trust.save(raw, version, not_after)


def gate(trust_list: str = "accept", **gate_rules: int) -> Profile:
    data = {
        "scenario": "gate",
        "catalogue_item": "0501",
        "gate": gate_rules,
        "degraded": {"trust_list": trust_list},
    }
    return parse_profile(data, "museum.toml", "gate")


def verifier(root: PrivateKey = TEST_ROOT, *, production: bool = False) -> CodeVerifier:
    return CodeVerifier(root_key_pem=root.public_key.to_pem(), production=production)


# --- the trust list under the degraded policy ---------------------------------------------


def test_an_expired_trust_list_at_a_gate_accepts_a_valid_code_flagged(world: World) -> None:
    hold_trust_list(world, expired=True)
    decision = process_code(world.pipeline(gate()), verifier(), code(world.clock.now))
    assert decision.reason == Reason.OK and decision.accepted
    assert decision.flags == ("stale_list:trust_list",)
    row = world.store.journal.last()
    assert row is not None and row.flags == ("stale_list:trust_list",)
    fresh = gate()
    hold_trust_list(world, expired=False)  # a current list: no flag
    assert process_code(world.pipeline(fresh), verifier(), code(world.clock.now)).flags == ()


def test_refuse_policy_refuses_an_expired_trust_list(world: World) -> None:
    hold_trust_list(world, expired=True)
    decision = process_code(world.pipeline(gate("refuse")), verifier(), code(world.clock.now))
    assert decision.reason == Reason.QR_STALE_TRUST_LIST and not decision.accepted


def test_a_missing_trust_list_verifies_no_code(world: World) -> None:
    decision = process_code(world.pipeline(gate()), verifier(), code(world.clock.now))
    assert decision.reason == Reason.QR_STALE_TRUST_LIST


def test_production_refuses_test_keys_even_on_an_expired_list_it_would_accept(
    world: World,
) -> None:
    hold_trust_list(world, expired=True)  # signed by the TEST root, listing a TEST key
    pipeline = world.pipeline(gate())
    refused = process_code(pipeline, verifier(production=True), code(world.clock.now))
    assert refused.reason == Reason.QR_STALE_TRUST_LIST and not refused.accepted
    # a deployment's own keys: the expired list is accepted in production as elsewhere
    root, key = PrivateKey.generate(Alg.ES256), PrivateKey.generate(Alg.ES256)
    hold_trust_list(world, expired=True, root=root, key=key)
    accepted = process_code(pipeline, verifier(root, production=True), code(world.clock.now, key))
    assert accepted.reason == Reason.OK and accepted.flags == ("stale_list:trust_list",)


# --- issue 11 §6: only an accepted code is remembered ----------------------------------------


def test_a_code_refused_by_anti_passback_is_decided_afresh_when_shown_again(
    world: World,
) -> None:
    hold_trust_list(world, expired=False)
    pipeline = world.pipeline(gate(anti_passback_s=10))
    first, second = code(world.clock.now, counter=1), code(world.clock.now, counter=2)
    assert process_code(pipeline, verifier(), first).reason == Reason.OK
    world.clock.now += 2
    assert process_code(pipeline, verifier(), second).reason == Reason.ANTI_PASSBACK
    world.clock.now += 10  # the gate's window is over, the code's is not (30 s)
    again = process_code(pipeline, verifier(), second)
    assert again.reason == Reason.OK, "a valid code refused for another reason is no replay"
    assert process_code(pipeline, verifier(), second).reason == Reason.QR_REPLAY  # now it is


def test_a_code_refused_by_the_catalogue_is_decided_afresh_when_shown_again(
    world: World, tmp_path: Path
) -> None:
    hold_trust_list(world, expired=False)
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(
        'format = "sscard-catalogue/1"\n[[items]]\ncode = "0301"\nname = "公共交通"\n'
        'scenario = "transit"\nregions = ["44"]\n',
        encoding="utf-8",
    )
    world.store.catalogue.load_file(elsewhere)  # the museum's item is not offered here
    shown = code(world.clock.now)
    refused = process_code(world.pipeline(gate()), verifier(), shown)
    assert refused.reason == Reason.NOT_IN_CATALOGUE
    world.store.catalogue.load_file(Path(__file__).resolve().parents[1] / "catalogue.toml")
    world.clock.now += 5
    assert process_code(world.pipeline(gate()), verifier(), shown).reason == Reason.OK


def test_an_accepted_code_is_a_replay_at_once(world: World) -> None:
    hold_trust_list(world, expired=False)
    shown = code(world.clock.now)
    assert process_code(world.pipeline(gate()), verifier(), shown).reason == Reason.OK
    assert process_code(world.pipeline(gate()), verifier(), shown).reason == Reason.QR_REPLAY


# --- issue 11 §3: national codes deferred offline, by profile ---------------------------------

NATIONAL = "CNSSC" + "A2B3C4D5" * 4


def national(n: int) -> str:
    """A distinct code in the reference platform's form (CNSSC + 32 Base32 characters)."""
    return "CNSSC" + f"{n:032d}".translate(str.maketrans("0123456789", "ABCDEFGHIJ"))


def offline() -> CodeVerifier:
    return CodeVerifier()  # no platform configured: national codes cannot be decoded now


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("transit", Reason.QR_DEFERRED),
        ("gate", Reason.QR_DEFERRED),
        ("hotel", Reason.QR_ONLINE_UNAVAILABLE),
        ("hospital", Reason.QR_ONLINE_UNAVAILABLE),
    ],
)
def test_offline_a_bus_and_a_gate_defer_national_codes_identity_services_refuse(
    world: World, profile: str, reason: Reason
) -> None:
    decision = process_code(world.pipeline(profile), offline(), NATIONAL, room="0302")
    assert decision.reason == reason
    if reason == Reason.QR_DEFERRED:
        assert decision.accepted and decision.record is None
        row = world.store.journal.last()
        assert row is not None and row.outcome == "deferred" and row.amount is None
    else:  # the prompt says what to do: the physical card works offline
        shown = decision.to_json()
        assert shown["prompt_zh"] == "网络不可用，请使用实体卡" and shown["hotline"]


def test_a_deferred_code_needs_the_service_offered_here_and_is_then_decided_afresh(
    world: World, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(
        'format = "sscard-catalogue/1"\n[[items]]\ncode = "0601"\nname = "住宿登记"\n'
        'scenario = "hotel"\nregions = ["*"]\n',
        encoding="utf-8",
    )
    world.store.catalogue.load_file(elsewhere)
    refused = process_code(world.pipeline("transit"), offline(), NATIONAL)
    assert refused.reason == Reason.NOT_IN_CATALOGUE
    world.store.catalogue.load_file(Path(__file__).resolve().parents[1] / "catalogue.toml")
    assert process_code(world.pipeline("transit"), offline(), NATIONAL).reason == (
        Reason.QR_DEFERRED
    )


def test_deferred_entries_count_toward_a_gates_capacity_and_a_full_gate_refuses_them(
    world: World,
) -> None:
    full_at_three = world.pipeline(gate(daily_capacity=3))
    assert process_code(full_at_three, offline(), national(1)).reason == Reason.QR_DEFERRED
    assert process_code(full_at_three, offline(), national(2)).reason == Reason.QR_DEFERRED
    # a sync's follow-up rows are no entries: confirming both leaves two entries, not four
    for row in world.store.journal.unconfirmed_deferred():
        world.store.journal.append(follow_up_entry(row, reason=None))
    assert process_code(full_at_three, offline(), national(3)).reason == Reason.QR_DEFERRED
    refused = process_code(full_at_three, offline(), national(4))
    assert refused.reason == Reason.CAPACITY_FULL  # three holders entered on deferred codes
    world.clock.now += DAY  # the next day the code refused for capacity is decided afresh
    assert process_code(full_at_three, offline(), national(4)).reason == Reason.QR_DEFERRED


# --- the follow-up row: the decision completed as the card would have had it ------------------


def verdict(category: str = "3", region: str = "430100") -> Confirmation:
    return Confirmation(1, True, None, "7c" * 32, region, category, dt.date(2031, 11, 1))


def deferred_row(world: World, scenario: str) -> JournalRow:
    process_code(world.pipeline(scenario), offline(), NATIONAL)
    (row,) = world.store.journal.unconfirmed_deferred()
    return row


def test_a_confirmed_ride_pays_the_fare_the_card_would_have_paid(world: World) -> None:
    row = deferred_row(world, "transit")
    elderly = FollowUps()(world.store, row, verdict(category="4"))
    assert (elderly.outcome, elderly.reason_code, elderly.amount) == ("accept", CONFIRMED, 0)
    assert elderly.ref_seq == row.seq and elderly.flags == ()
    assert elderly.credential_token == world.store.card_hash(canonical_ecard_id("7c" * 32))
    ordinary = FollowUps()(world.store, row, verdict(category="3"))
    assert ordinary.amount == 200


def test_a_card_the_service_does_not_serve_is_reported_invalid(world: World) -> None:
    row = deferred_row(world, "gate")
    profile = parse_profile(
        {"scenario": "gate", "catalogue_item": "0501", "gate": {}, "allowed_categories": ["4"]},
        "seniors-gate.toml",
        "gate",
    )
    follow_ups = FollowUps()
    follow_ups._pipelines[("gate", row.terminal_id)] = world.pipeline(profile)
    entry = follow_ups(world.store, row, verdict(category="3"))
    assert (entry.outcome, entry.reason_code) == ("refuse", INVALID)
    assert entry.flags == ("invalid:category_not_allowed",)


def test_the_platforms_refusal_is_journaled_with_its_reason(world: World) -> None:
    row = deferred_row(world, "gate")
    entry = FollowUps()(world.store, row, Confirmation(row.seq, False, Invalidity.DENY_LOST))
    assert (entry.outcome, entry.reason_code, entry.flags) == (
        "refuse",
        INVALID,
        ("invalid:deny_lost",),
    )
    assert entry.credential_token == row.credential_token  # the code's hash: no card named
    world.store.journal.append(entry)
    assert world.store.journal.count(outcome="deferred", unconfirmed=True) == 0


def test_a_profile_the_sync_cannot_find_gives_the_platforms_verdict_alone(world: World) -> None:
    process_code(
        world.pipeline(parse_profile(_bus(), "line-7.toml", "line-7")), offline(), NATIONAL
    )
    (row,) = world.store.journal.unconfirmed_deferred()
    entry = FollowUps()(world.store, row, verdict())
    assert entry.reason_code == CONFIRMED and entry.flags == (UNCHECKED_PROFILE,)
    assert entry.amount is None


def _bus() -> dict[str, object]:
    return {"scenario": "transit", "catalogue_item": "0301", "transit": {"fare_fen": 150}}


def test_a_production_desk_does_not_keep_a_test_key_list_it_fetched_online(
    world: World, tmp_path: Path
) -> None:
    """The ``online`` policy fetches the trust list during a scan: in production a TEST KEY as
    the pinned root (a platform made with ``init --test-keys``) refuses the fetch before
    anything is kept, as at ``sscard sync`` and ``sscard qr trust-import``."""
    with live_platform(tmp_path / "platform", {"T-TEST-01": ("hotel",)}, clock=time.time) as live:
        credentials = live.terminals["T-TEST-01"]
        key_file = tmp_path / "sync.key"
        key_file.write_text(credentials.key.hex())
        key_file.chmod(0o600)
        root = tmp_path / "qr-root.pem"
        root.write_bytes(TEST_ROOT.public_key.to_pem())
        for production, kept in ((True, False), (False, True)):
            settings = Settings(
                production=production,
                terminal_id="T-TEST-01",
                ecard=EcardTable(trust_root_key=str(root)),
                sync_url=live.url,
                sync_key_file=key_file,
                sync_key_id=credentials.key_id,
            )
            online = open_online(settings, world.store, load_profile("hotel"))
            assert online is not None
            with online:
                assert online.refresh_trust_list() is kept
            assert (world.store.trust.info() is not None) is kept


# --- the card's three steps: a hospital and its PIN ------------------------------------------

#: a synthetic holder (no real person): the identity a hospital's audience key unseals
HOLDER = {"name": "测试患者", "ssn": "360102195001010011", "sex": "1", "birth_date": "1950-01-01"}
AUDIENCE = ("hospital-test", bytes(range(32)))


def sealed_code(now: float, category: str = "1") -> str:
    """A fresh open code carrying :data:`HOLDER`, sealed to :data:`AUDIENCE`."""
    device = PrivateKey.generate(Alg.ES256)
    credential = issue_credential(
        TEST_PLATFORM,
        token=TOKEN,
        region="360100",
        category=category,
        not_before=int(now) - DAY,
        not_after=int(now) + 300 * DAY,
        device_public_key=device.public_key,
        identity=HOLDER,
        audience=AUDIENCE,
    )
    return make_code(credential, device, timestamp=int(now), counter=1)


def hospital_verifier() -> CodeVerifier:
    return CodeVerifier(root_key_pem=TEST_ROOT.public_key.to_pem(), audience_keys=dict([AUDIENCE]))


def test_a_hospital_registers_an_ecard_without_a_card_pin_and_names_what_only_a_card_holds(
    world: World,
) -> None:
    """docs/policy.md §7.1: the e-card's own authentication stands in for the card PIN; the
    DF04 medical items are on a card's chip only, and the decision says so."""
    hold_trust_list(world, expired=False)
    profile = load_profile("hospital")
    assert profile.pin
    decision = process_code(
        world.pipeline(profile), hospital_verifier(), sealed_code(world.clock.now)
    )
    assert decision.reason == Reason.OK, decision.detail
    assert decision.record is not None
    assert {k: decision.record[k] for k in HOLDER} == HOLDER
    assert not any(key.startswith("medical.") for key in decision.record)
    assert decision.detail["credential"] == "ecard"
    assert decision.detail["not_on_ecard"] == [f"medical.{f}" for f in profile.medical_fields]
    assert len(world.store.audit.rows()) == 1  # the identity was read for the registration


def test_an_ecard_refused_on_its_base_facts_has_no_personal_field_read(world: World) -> None:
    """As with a card, the personal step comes after every check: a category the hospital does
    not serve is refused and leaves no access-audit row and no personal field."""
    hold_trust_list(world, expired=False)
    data = {"scenario": "hospital", "catalogue_item": "0201", "fields": ["name", "ssn"],
            "allowed_categories": ["1"], "hospital": {}}  # fmt: skip
    profile = parse_profile(data, "clinic.toml", "clinic")
    code_text = sealed_code(world.clock.now, category="3")
    decision = process_code(world.pipeline(profile), hospital_verifier(), code_text)
    assert decision.reason == Reason.CATEGORY_NOT_ALLOWED
    assert decision.record is None
    assert world.store.audit.rows() == []
