"""End to end: ``sscard tap`` through a real pcscd, with a real store file, every reason code.

Each test builds a terminal: settings, pepper and journal key (0600), the catalogue loaded and a
signed deny list imported with the real CLI; then taps emulated cards in vpcd slot 0 (and a
virtual PSAM in slot 1 where the test says so) with ``sscard tap`` in a child process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from store_support import header, public_pem, write_list
from support import (
    CATALOGUE,
    READER0,
    READER1,
    TEST_ROOTS,
    load_test_roots,
    make_card,
    make_psam,
    persona_path,
    run_sscard,
)

from drivers.keyfile import private_copy
from drivers.virtual.card import Behaviour
from drivers.virtual.persona import parse_persona
from drivers.virtual.ssc_card import VirtualSscCard
from offline_store import canonical_card_id, keyed_card_hash

pytestmark = pytest.mark.e2e

PEPPER = b"TEST PEPPER: e2e tap tests only, 32+"


def card_hash(region: str, number: str) -> str:
    return keyed_card_hash(PEPPER, canonical_card_id(region, number))


@dataclass
class Terminal:
    folder: Path
    config: Path
    keys: Path
    signer: Ed25519PrivateKey

    def sscard(self, *args: str, stdin: str | None = None):
        return run_sscard(*args, stdin=stdin)

    def deny(self, lines: list[dict], *, version: int = 1, age_h: float = 1) -> None:
        created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=age_h)
        head = header("snapshot", version, len(lines), created=created.isoformat())
        path = write_list(self.folder / f"deny-{version}.jsonl", head, lines, self.signer)
        pem = self.folder / "deny-signing.pem"
        pem.write_bytes(public_pem(self.signer))
        done = self.sscard("deny", "import", str(path), "--config", str(self.config),
                           "--public-key", str(pem))  # fmt: skip
        assert done.returncode == 0, done.stderr

    def tap(self, scenario: str, *extra: str, module: str = "soft", stdin: str | None = None):
        args = ["tap", "--scenario", scenario, "--config", str(self.config)]
        args += ["--reader", READER0, "--format", "json", "--timeout", "10"]
        if module == "soft":
            args += ["--soft-sam", str(self.keys)]
        elif module == "psam":
            args += ["--sam-reader", READER1]
        done = self.sscard(*args, *extra, stdin=stdin)
        assert done.returncode in (0, 1), done.stderr
        decision = json.loads(done.stdout)
        assert (done.returncode == 0) == (decision["outcome"] == "accept")
        return decision, done.stderr


@pytest.fixture
def terminal(tmp_path: Path, pcscd) -> Terminal:
    pepper = tmp_path / "pepper"
    pepper.write_bytes(PEPPER)
    key = tmp_path / "journal.key"
    key.write_text(os.urandom(32).hex())
    for secret in (pepper, key):
        secret.chmod(0o600)
    config = tmp_path / "terminal.toml"
    config.write_text(
        '[terminal]\nid = "E2E-01"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\njournal_key_file = "journal.key"\n'
        "[indicators]\nconsole = true\n"
    )
    done = run_sscard("catalogue", "load", str(CATALOGUE), "--config", str(config))
    assert done.returncode == 0, done.stderr
    keys = private_copy(TEST_ROOTS, tmp_path / "roots.toml")
    world = Terminal(tmp_path, config, keys, Ed25519PrivateKey.generate())
    world.deny([])
    return world


def test_a_transit_tap_is_accepted_journaled_and_shown(terminal: Terminal, cards) -> None:
    cards.insert(make_card("ordinary-2.0", t0=True))
    decision, stderr = terminal.tap("transit")
    assert decision["outcome"] == "accept" and decision["reason"] == "ok"
    assert decision["detail"] == {"fare_fen": 200, "concession": None}
    assert decision["prompt_zh"] == "验证通过" and decision["hotline"] is None
    assert "验证通过" in stderr  # the console indicator
    done = run_sscard("journal", "verify", "--config", str(terminal.config))
    assert done.returncode == 0 and "1 rows" in done.stdout


def test_every_persona_in_every_scenario(terminal: Terminal, cards) -> None:
    """The right outcome for each persona and scenario (personas × scenarios)."""
    expected = {
        ("ordinary-2.0", "gate"): "ok",
        ("elderly", "transit"): "ok",
        ("student", "transit"): "ok",
        ("hk-resident", "transit"): "ok",
        ("v3-sm4", "transit"): "ok",
        ("absent-fields", "gate"): "ok",
        ("foreign-4e", "gate"): "ok",
        ("foreign-4e", "transit"): "ok",  # Shanghai: cards of every region ride (docs/policy.md)
        ("v1-legacy", "gate"): "security_module_error",  # SSF33: no software SAM computes it
        ("forged", "gate"): "not_genuine",
        ("expired", "gate"): "expired",
    }
    for (name, scenario), reason in expected.items():
        cards.insert(make_card(name))
        decision, _ = terminal.tap(scenario)
        assert decision["reason"] == reason, (name, scenario, decision)
        cards.remove_all()


def test_concession_fares(terminal: Terminal, cards) -> None:
    fares = {}
    for name in ("elderly", "student", "hk-resident"):
        cards.insert(make_card(name))
        fares[name] = terminal.tap("transit")[0]["detail"]
        cards.remove_all()
    assert fares == {
        "elderly": {"fare_fen": 0, "concession": "elderly_category"},
        "student": {"fare_fen": 100, "concession": "reduced_category"},
        "hk-resident": {"fare_fen": 200, "concession": None},  # the same as a mainland adult
    }


def test_a_deny_listed_card_is_refused_with_its_reason(terminal: Terminal, cards) -> None:
    lines = [
        {"hash": card_hash("440100", "A01023450"), "reason": "lost", "effective": "2026-01-01"},
        {
            "hash": card_hash("440100", "A07603317"),
            "reason": "cancelled",
            "effective": "2026-01-01",
        },
        {"hash": card_hash("440100", "A05514724"), "reason": "replaced", "effective": "2026-01-01"},
        {"hash": card_hash("440300", "F33091278"), "reason": "fraud", "effective": "2026-01-01"},
    ]
    terminal.deny(lines, version=2)
    got = {}
    for name in ("ordinary-2.0", "elderly", "student", "hk-resident"):
        cards.insert(make_card(name))
        decision, _ = terminal.tap("transit")
        got[name] = decision["reason"]
        assert decision["outcome"] == "refuse" and "12333" in decision["hotline"]
        cards.remove_all()
    assert got == {
        "ordinary-2.0": "deny_lost",
        "elderly": "deny_cancelled",
        "student": "deny_replaced",
        "hk-resident": "deny_fraud",
    }
    # the store and the pepper come from the terminal's settings
    done = run_sscard("deny", "check", "440100:A01023450", "--config", str(terminal.config))
    assert done.returncode == 0 and "lost" in done.stdout and "A01023450" not in done.stdout


def test_locks_pins_and_the_hospital(terminal: Terminal, cards) -> None:
    cards.insert(make_card("ordinary-2.0", app_locked=True))
    assert terminal.tap("transit")[0]["reason"] == "app_locked"
    cards.remove_all()
    cards.insert(make_card("ordinary-2.0", card_blocked=True))
    assert terminal.tap("transit")[0]["reason"] == "card_blocked"
    cards.remove_all()
    card = cards.insert(make_card("ordinary-2.0", t0=True))
    assert terminal.tap("hospital", "--pin-stdin", stdin="\n")[0]["reason"] == "pin_missing"
    wrong = terminal.tap("hospital", "--pin-stdin", stdin="000000\n")[0]
    assert wrong["reason"] == "pin_wrong" and wrong["detail"] == {"tries_left": 2}
    right = terminal.tap("hospital", "--pin-stdin", stdin="123456\n")[0]
    assert right["reason"] == "ok" and right["record"]["medical.insurance_type"]
    for _ in range(3):
        terminal.tap("hospital", "--pin-stdin", stdin="999999\n")
    assert terminal.tap("hospital", "--pin-stdin", stdin="123456\n")[0]["reason"] == "pin_blocked"
    assert card.pin_tries == 0


def test_category_stale_lists_gate_rules_and_hotel(terminal: Terminal, cards) -> None:
    elderly_only = terminal.folder / "seniors.toml"
    elderly_only.write_text(
        'scenario = "transit"\ncatalogue_item = "0301"\nallowed_categories = ["4"]\n'
        "[transit]\nfare_fen = 0\n"
    )
    cards.insert(make_card("ordinary-2.0"))
    assert terminal.tap(str(elderly_only))[0]["reason"] == "category_not_allowed"
    assert terminal.tap("gate")[0]["reason"] == "ok"
    assert terminal.tap("gate")[0]["reason"] == "anti_passback"
    full = terminal.folder / "small-museum.toml"
    full.write_text('scenario = "gate"\ncatalogue_item = "0501"\n[gate]\ndaily_capacity = 1\n')
    assert terminal.tap(str(full))[0]["reason"] == "ok"
    assert terminal.tap(str(full))[0]["reason"] == "capacity_full"  # one entry a day
    hotel, _ = terminal.tap("hotel", "--room", "0815")
    assert hotel["reason"] == "ok" and hotel["record"]["ssn"] == "440000199003071027"
    done = run_sscard("tap", "--scenario", "hotel", "--config", str(terminal.config))
    assert done.returncode == 2 and "--room" in done.stderr  # refused before any card is read
    bad_room, _ = terminal.tap("hotel", "--room", "08 15")
    assert bad_room["reason"] == "bad_request"
    terminal.deny([], version=3, age_h=100)  # made 100 h ago: older than transit's 72 h
    stale = terminal.tap("transit")[0]  # the bus still goes: accepted, flagged for the operator
    assert (stale["reason"], stale["flags"]) == ("ok", ["stale_list:deny_list"])


def test_security_module_outcomes_with_the_virtual_psam(terminal: Terminal, cards) -> None:
    cards.insert(make_card("v3-sm4", t0=True))
    cards.insert(make_psam("psam-national"), slot=1)
    hotel, _ = terminal.tap("hotel", "--room", "1208", module="psam")
    assert hotel["reason"] == "ok" and hotel["record"]["name"] == "李晓梅"
    assert terminal.tap("transit", module="none")[0]["reason"] == "no_security_module"
    cards.remove_all()
    cards.insert(make_card("v3-sm4", t0=True))
    cards.insert(make_psam("psam-no-rkssse"), slot=1)
    refused = terminal.tap("hotel", "--room", "1208", module="psam")[0]
    assert refused["reason"] == "security_module_error"
    assert refused["detail"] == {"national_code": -2203}


def test_torn_and_unreadable_cards_ask_to_try_again(terminal: Terminal, cards) -> None:
    cards.insert(make_card("ordinary-2.0", tear_after=4))
    torn = terminal.tap("transit")[0]
    assert torn["reason"] == "card_removed" and torn["outcome"] == "attention"
    cards.remove_all()
    data = load_persona_dict("ordinary-2.0")
    data["raw_records"] = {"EF05.07": "0809413031303233343530"}  # record 07 answers as tag 08
    broken = VirtualSscCard(parse_persona(data, "broken"), Behaviour(), load_test_roots())
    cards.insert(broken)
    unreadable = terminal.tap("transit")[0]
    assert unreadable["reason"] == "card_unreadable" and unreadable["outcome"] == "attention"
    done = run_sscard("journal", "tail", "-n", "5", "--config", str(terminal.config))
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["reason"] for r in rows] == ["card_removed", "card_unreadable"]


def load_persona_dict(name: str) -> dict:
    return tomllib.loads(persona_path(name).read_text(encoding="utf-8"))
