"""The degraded policy for stale and missing lists (docs/policy.md §3), with in-process emulated
cards, real store files and a real reference platform on loopback for ``online``.

The matrix: each list a card decision uses (deny list, catalogue) × each policy (accept, online
with the platform answering, online with the platform unreachable, refuse) × each state (fresh,
stale, missing) — and the trust list of e-card codes the same way. Then the alarms: one log
line per change of state, never one per tap, and a loud start for a terminal never provisioned.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pipeline_support import CARDS, Clock, World
from platform_support import LivePlatform, free_port, live_platform
from store_support import header, public_pem, write_list
from support import CATALOGUE, load_test_roots, make_card

from apdu.transport import t0_chain
from config.settings import Settings
from drivers.soft_sam import SoftSam
from drivers.virtual import TEST_KEYS
from drivers.virtual.card import VirtualConnection
from ecard import (
    Alg,
    QrRefused,
    load_private_key,
    make_trust_list,
    save_trust_list,
)
from offline_store import DenyReason, Store, canonical_card_id, ed25519_verifier
from sync.config import SecretFiles, SyncConfig
from sync.online import OnlineLists
from sync.transport import Credentials
from terminal.card_read import ScenarioRead
from terminal.list_policy import trust_list_for_codes
from terminal.pipeline import Decision, Pipeline
from terminal.profiles import DegradedPolicy, Profile, RegionRestriction, load_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

TERMINAL = "T-TEST-01"  # pipeline_support's terminal id
PERSONA = "jiangxi-nanchang"  # a card from another province, decided in Guangdong
KEYS = TEST_KEYS
ROOT_KEY = load_private_key((KEYS / "qr-root-test.pem").read_bytes())
ES256 = load_private_key((KEYS / "qr-platform-es256-test.pem").read_bytes()).public_key
STALE_H = 100  # older than every built-in profile's limit but the gate's


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    """One reference platform for the module, on the real clock (requests are signed with it)."""
    folder = tmp_path_factory.mktemp("platform")
    scenarios = ("transit", "gate", "hotel", "hospital")
    with live_platform(folder, {TERMINAL: scenarios}, clock=time.time) as live:  # type: ignore[arg-type]
        live.platform.load_catalogue(CATALOGUE)
        live.platform.rotate_keys(Alg.ES256, grace_s=0)  # trust list version 2 is the current
        yield live


@dataclass
class Terminal:
    """A terminal world whose pepper is the platform's, with the lists provisioned by state."""

    world: World
    signer: Ed25519PrivateKey
    platform: LivePlatform

    @property
    def store(self) -> Store:
        return self.world.store

    def provision(self, deny: str = "fresh", catalogue: str = "fresh") -> None:
        """Bring each list to ``fresh``, ``stale`` (made 100 h before the tap) or ``missing``."""
        clock = self.world.clock
        if catalogue != "missing":
            clock.now -= STALE_H * 3600 if catalogue == "stale" else 0
            self.store.catalogue.load_file(CATALOGUE)
            clock.now += STALE_H * 3600 if catalogue == "stale" else 0
        if deny != "missing":
            age_h = STALE_H if deny == "stale" else 1
            created = dt.datetime.fromtimestamp(clock.now - age_h * 3600, dt.UTC).isoformat()
            path = write_list(
                self.world.folder / "deny-1.jsonl",
                header("snapshot", 1, 0, created=created),
                [],
                self.signer,
            )
            self.store.deny.import_file(path, ed25519_verifier(public_pem(self.signer)))

    def online(self, reachable: bool = True, timeout_s: float = 2.0) -> OnlineLists:
        credentials = self.platform.terminals[TERMINAL]
        url = self.platform.url if reachable else f"http://127.0.0.1:{free_port()}/"
        root = self.world.folder / "qr-root.pem"
        root.write_bytes(ROOT_KEY.public_key.to_pem())
        config = SyncConfig(
            url=url,
            credentials=Credentials(TERMINAL, credentials.key_id, credentials.key),
            region="440100",
            secret_files=SecretFiles(trust_root_key=root),
        )
        return OnlineLists(config, self.store, timeout_s=timeout_s, trust_saver=save_trust_list)

    def pipeline(
        self,
        profile: Profile | str,
        *,
        online: OnlineLists | None = None,
        region: str | None = None,
    ) -> Pipeline:
        if isinstance(profile, str):
            profile = load_profile(profile)
        return Pipeline(
            profile,
            self.store,
            terminal_id=TERMINAL,
            clock=self.world.clock,
            online=online,
            region=region,
        )

    def tap(
        self,
        profile: Profile | str,
        persona: str = PERSONA,
        *,
        online: OnlineLists | None = None,
        region: str | None = None,
        pipeline: Pipeline | None = None,
        pin: str | None = None,
        room: str | None = None,
    ) -> Decision:
        pipeline = pipeline or self.pipeline(profile, online=online, region=region)
        card = make_card(persona)
        sam = SoftSam(load_test_roots(), Settings())
        read = ScenarioRead(
            t0_chain(VirtualConnection(card)), card.historical, pipeline.profile, sam
        )
        return pipeline.process(read, pin=pin, room=room)


@pytest.fixture
def terminal(tmp_path: Path, platform: LivePlatform) -> Iterator[Terminal]:
    clock = Clock()
    store = Store.open(
        tmp_path / "store.db",
        journal_key=os.urandom(32),
        pepper=platform.platform.keys.pepper,
        clock=clock,
    )
    world = World(store, clock, Ed25519PrivateKey.generate(), tmp_path, io.StringIO())
    yield Terminal(world, world.signer, platform)
    store.close()


def with_policy(name: str = "transit", **policy: object) -> Profile:
    profile = load_profile(name)
    merged = profile.degraded.model_dump() | policy
    return profile.model_copy(update={"degraded": DegradedPolicy.model_validate(merged)})


# --- the matrix ----------------------------------------------------------------------------

LISTS = ("deny_list", "catalogue")
STATES = ("fresh", "stale", "missing")
POLICIES = ("accept", "online", "online-unreachable", "refuse")


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("which", LISTS)
def test_each_list_under_each_policy_in_each_state(
    terminal: Terminal, which: str, policy: str, state: str
) -> None:
    states = {"deny": "fresh", "catalogue": "fresh"}
    states["deny" if which == "deny_list" else "catalogue"] = state
    terminal.provision(**states)
    online = None
    if policy.startswith("online"):
        online = terminal.online(reachable=policy == "online", timeout_s=1.0)
    profile = with_policy(**{which: policy.split("-", maxsplit=1)[0], "online_fallback": "accept"})
    decision = terminal.tap(profile, online=online)
    if state == "fresh":
        expected = ("accept", Reason.OK, ())
    elif policy == "refuse":
        expected = ("refuse", Reason.LIST_STALE, ())
        assert decision.detail == {"list": which, "state": state}
    elif policy == "online":
        expected = ("accept", Reason.OK, (f"online:{which}",))
    else:  # accept, or online with the platform out of reach and accept as the fallback
        expected = ("accept", Reason.OK, (f"stale_list:{which}",))
    assert (decision.outcome, decision.reason, decision.flags) == expected
    row = terminal.store.journal.last()
    assert row is not None and row.flags == decision.flags and row.seq == decision.seq
    if which == "catalogue" and policy == "online" and state != "fresh":
        loaded = terminal.store.catalogue.loaded_at()  # fetched during the tap: fresh again
        assert loaded is not None and loaded.timestamp() == pytest.approx(terminal.world.clock.now)


def test_refuse_as_the_online_fallback_refuses_when_the_platform_is_out_of_reach(
    terminal: Terminal,
) -> None:
    terminal.provision(deny="stale")
    profile = with_policy("hotel", online_fallback="refuse")
    decision = terminal.tap(profile, online=terminal.online(reachable=False), room="0101")
    assert decision.reason == Reason.LIST_STALE and decision.outcome == "refuse"
    assert decision.to_json()["hotline"]  # a refusal carries the hotline
    no_link = terminal.tap(profile, room="0101")  # no [sync] configured at all: the same
    assert no_link.reason == Reason.LIST_STALE


def test_online_the_platform_refuses_a_card_it_lists_and_dates_count(terminal: Terminal) -> None:
    terminal.provision(deny="missing")
    region, number = CARDS["student"]
    today = dt.date.fromtimestamp(terminal.world.clock.now)
    terminal.platform.platform.deny(
        canonical_card_id(region, number), DenyReason.LOST, effective=today
    )
    later = canonical_card_id(*CARDS["elderly"])
    terminal.platform.platform.deny(later, DenyReason.CANCELLED, effective=today.replace(year=2099))
    profile = load_profile("hotel")  # deny_list = "online" by default
    online = terminal.online()
    lost = terminal.tap(profile, "student", online=online, room="0101")
    assert (lost.outcome, lost.reason, lost.flags) == (
        "refuse",
        Reason.DENY_LOST,
        ("online:deny_list",),
    )
    assert lost.detail["source"] == "platform" and lost.detail["deny_reason"] == "lost"
    assert lost.record is None  # refused: no personal data read
    not_yet = terminal.tap(profile, "elderly", online=online, room="0102")
    assert (not_yet.reason, not_yet.flags) == (Reason.OK, ("online:deny_list",))
    terminal.platform.platform.undeny(canonical_card_id(region, number))  # 解挂
    assert terminal.tap(profile, "student", online=online, room="0101").reason == Reason.OK


def test_a_card_the_stale_list_names_is_refused_whatever_the_policy(terminal: Terminal) -> None:
    terminal.provision(deny="missing")
    created = dt.datetime.fromtimestamp(terminal.world.clock.now - STALE_H * 3600, dt.UTC)
    entry = {"hash": terminal.world.card_hash(PERSONA), "reason": "lost", "effective": "2026-01-01"}
    path = write_list(
        terminal.world.folder / "deny-2.jsonl",
        header("snapshot", 2, 1, created=created.isoformat()),
        [entry],
        terminal.signer,
    )
    terminal.store.deny.import_file(path, ed25519_verifier(public_pem(terminal.signer)))
    decision = terminal.tap(with_policy(deny_list="accept"))
    assert decision.reason == Reason.DENY_LOST and decision.flags == ()


# --- the trust list of e-card codes --------------------------------------------------------


def trust_list(version: int, *, expired: bool) -> tuple[bytes, int]:
    now = int(time.time())
    not_after = now - 3600 if expired else now + 7 * 86400
    return make_trust_list([ES256], ROOT_KEY, version, now - 30 * 86400, not_after), not_after


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("policy", POLICIES)
def test_the_trust_list_under_each_policy_in_each_state(
    terminal: Terminal, policy: str, state: str
) -> None:
    if state != "missing":
        raw, not_after = trust_list(1, expired=state == "stale")
        terminal.store.trust.save(raw, 1, not_after)
    online = None
    if policy.startswith("online"):
        online = terminal.online(reachable=policy == "online", timeout_s=1.0)
    profile = with_policy(
        "gate", trust_list=policy.split("-", maxsplit=1)[0], online_fallback="accept"
    )
    root = ROOT_KEY.public_key.to_pem()
    call = lambda: trust_list_for_codes(  # noqa: E731
        terminal.store, profile, root, time.time(), online=online
    )
    if state == "fresh":
        assert call()[1] == ()
    elif policy == "online":
        trust, flags = call()  # the platform's list, fetched and verified now
        assert flags == ("online:trust_list",) and trust.version >= 1
    elif state == "missing" or policy == "refuse":
        with pytest.raises(QrRefused, match="trust list"):
            call()
    else:
        trust, flags = call()  # the expired list, still verified against the pinned root
        assert flags == ("stale_list:trust_list",) and trust.version == 1
        trust.check_current(time.time())  # what verify_code asks of it: codes verify


def test_a_platform_with_nothing_newer_falls_back(terminal: Terminal) -> None:
    raw, not_after = trust_list(7, expired=True)  # newer than the platform's, and expired
    terminal.store.trust.save(raw, 7, not_after)
    online = terminal.online()
    root = ROOT_KEY.public_key.to_pem()
    for fallback, expected in (("accept", ("stale_list:trust_list",)), ("refuse", None)):
        profile = with_policy("hotel", online_fallback=fallback)
        if expected is None:
            with pytest.raises(QrRefused):
                trust_list_for_codes(terminal.store, profile, root, time.time(), online=online)
        else:
            _, flags = trust_list_for_codes(
                terminal.store, profile, root, time.time(), online=online
            )
            assert flags == expected


# --- regions: the terminal's, a restriction that names its rule, a local concession ---------

PROVINCES = ("ordinary-2.0", "v3-sm4", "foreign-4e", PERSONA, "hunan-changsha", "taiwan-resident")


def test_cards_of_every_province_are_accepted_where_the_service_is_offered(
    terminal: Terminal,
) -> None:
    terminal.provision()
    got = {p: terminal.tap("gate", p, region="440100").reason for p in PROVINCES}
    assert set(got.values()) == {Reason.OK}, got
    transit = {p: terminal.tap("transit", p, region="440100").reason for p in PROVINCES}
    assert set(transit.values()) == {Reason.OK}, transit  # item 0301 names 44 and 33 only


def test_a_terminal_whose_region_the_catalogue_does_not_serve_refuses_and_says_so_at_start(
    terminal: Terminal,
) -> None:
    terminal.provision()
    held = terminal.pipeline("hospital")
    assert not any("offers no item" in line for line in held.warnings)  # no region: its own
    chengdu = terminal.pipeline("hospital", region="510100")
    assert any("offers no item 0201 for hospital in region 510100" in w for w in chengdu.warnings)
    decision = terminal.tap("hospital", "ordinary-2.0", region="510100", pin="123456")
    assert decision.reason == Reason.NOT_IN_CATALOGUE
    assert decision.detail == {"catalogue_item": "0201", "terminal_region": "510100"}


def test_a_region_restriction_refuses_with_its_rule_named(terminal: Terminal) -> None:
    terminal.provision()
    rule = "《某市公交敬老卡办法》第5条 (test rule)"
    restricted = RegionRestriction(accept=("44",), rule=rule)
    profile = load_profile("transit").model_copy(update={"regions": restricted})
    refused = terminal.tap(profile, PERSONA)
    assert refused.reason == Reason.REGION_NOT_ACCEPTED
    assert refused.detail == {"region_code": "360100", "rule": rule}
    shown = refused.to_json()
    assert rule in shown["advice_zh"] and rule in shown["advice_en"] and shown["hotline"]
    assert terminal.tap(profile, "macao-resident").reason == Reason.OK  # Zhuhai: in 44


def test_an_issuing_region_concession_is_a_fare_never_a_refusal(terminal: Terminal) -> None:
    terminal.provision()
    rule = "《广州市老年人优待办法》第3条 (test rule)"
    path = terminal.world.folder / "local-seniors.toml"
    path.write_text(
        'scenario = "transit"\ncatalogue_item = "0301"\n[transit]\nfare_fen = 200\n'
        "[[transit.region_concessions]]\n"
        f'name = "gz_senior_free"\nregions = ["440100"]\ncategories = ["4"]\nrule = "{rule}"\n',
        encoding="utf-8",
    )
    profile = load_profile(path)
    local = terminal.tap(profile, "elderly")  # Guangzhou, 卡类别 4
    assert local.detail == {"fare_fen": 0, "concession": "gz_senior_free", "concession_rule": rule}
    visitor = terminal.tap(profile, "hunan-changsha")  # Changsha, 卡类别 4: pays, rides
    assert (visitor.outcome, visitor.detail) == ("accept", {"fare_fen": 200, "concession": None})


# --- alarms --------------------------------------------------------------------------------


def test_one_log_line_per_change_of_state_never_one_per_tap(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    terminal.provision(deny="stale")
    pipeline = terminal.pipeline("transit")  # one pipeline, as in the daemon
    caplog.set_level(logging.INFO, logger="terminal.list_policy")

    def lines(event: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if f"event={event} " in r.getMessage()]

    for _ in range(3):
        assert terminal.tap("transit", pipeline=pipeline).flags == ("stale_list:deny_list",)
    assert len(lines("list_degraded")) == 1
    assert (
        "list=deny_list state=stale age_h=100.0 scenario=transit policy=accept"
        in (lines("list_degraded")[0])
    )
    created = dt.datetime.fromtimestamp(terminal.world.clock.now, dt.UTC).isoformat()
    path = write_list(
        terminal.world.folder / "deny-2.jsonl",
        header("snapshot", 2, 0, created=created),
        [],
        terminal.signer,
    )
    terminal.store.deny.import_file(path, ed25519_verifier(public_pem(terminal.signer)))
    for _ in range(2):
        assert terminal.tap("transit", pipeline=pipeline).flags == ()
    assert len(lines("list_current")) == 1 and len(lines("list_degraded")) == 1


def test_a_terminal_never_provisioned_says_so_loudly_at_start(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    pipeline = terminal.pipeline("hotel")
    text = "\n".join(pipeline.warnings)
    assert "never provisioned: no deny list, no catalogue, no trust list" in text
    assert "sscard sync --once" in text and "sscard catalogue load FILE" in text
    assert "no [sync] url/key is configured: it will accept without asking" in text
    assert any("event=terminal_unprovisioned" in r.getMessage() for r in caplog.records)
    # and it still decides: a hotel guest is registered, the decision flagged
    decision = terminal.tap("hotel", PERSONA, room="0101")
    assert (decision.reason, decision.flags) == (
        Reason.OK,
        ("stale_list:catalogue", "stale_list:deny_list"),
    )


def test_a_platform_that_does_not_answer_costs_one_timeout_then_a_quiet_period(
    terminal: Terminal,
) -> None:
    """A listener that accepts and never answers: the first holder waits the timeout, the next
    ones are decided at once by the fallback until the quiet period is over."""
    now = [0.0]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        credentials = terminal.platform.terminals[TERMINAL]
        config = SyncConfig(
            url=f"http://127.0.0.1:{silent.getsockname()[1]}/",
            credentials=Credentials(TERMINAL, credentials.key_id, credentials.key),
        )
        online = OnlineLists(
            config, terminal.store, timeout_s=0.5, quiet_s=30, monotonic=lambda: now[0]
        )
        timings = []
        for advance in (0.0, 10.0, 25.0):  # the third ask comes 35 s after the failure
            now[0] += advance
            started = time.monotonic()
            assert online.card_status("a" * 64) is None
            timings.append(time.monotonic() - started)
        online.close()
    assert timings[0] >= 0.45 and timings[1] < 0.1 and timings[2] >= 0.45
