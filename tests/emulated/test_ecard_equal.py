"""Electronic cards count the same as physical ones (issue 11 §3, §6), for the open ``SSC1``
format, decided offline through the real pipeline and a real store file:

* the trust list of e-card codes under the profile's degraded policy: an expired list still
  verifies codes at a gate (flagged ``stale_list:trust_list``), ``refuse`` refuses, a missing
  list verifies nothing, and a production terminal refuses TEST KEYS whatever the policy;
* a valid code refused for another reason (anti-passback, the catalogue) is not remembered as
  used: shown again, it is decided afresh, never refused as a replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import World

from terminal.ecard import Alg, PrivateKey, issue_credential, make_code, make_trust_list
from terminal.ecard.keys import load_private_key
from terminal.ecard_flow import CodeVerifier, process_code
from terminal.profiles import Profile, parse_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

KEYS = Path(__file__).resolve().parents[1] / "keys"
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
