"""End to end: the operating policy through a real pcscd with ``sscard tap`` in child processes
(docs/policy.md).

A Guangzhou terminal (``[sync] region = "440100"``) whose catalogue is shaped like the one in
docs/offline-store.md §8 — items for Guangzhou or Guangdong only — takes the cards of five and
more provinces, Hong Kong, Macao and Taiwan residents and a foreign holder at each of the four
scenarios; a region restriction refuses naming its rule; an issuing-region concession is a fare
rule; a terminal never provisioned says so loudly and still lets the rider on, flagged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from store_support import header, public_pem, write_list
from support import READER0, TEST_ROOTS, make_card, run_sscard

from drivers.keyfile import private_copy

pytestmark = pytest.mark.e2e

PEPPER = b"TEST PEPPER: e2e policy tests only"
# the catalogue of a Guangzhou deployment: what this terminal offers, in its own region
CATALOGUE = """format = "sscard-catalogue/1"

[[items]]
code = "0301"
name = "广州公交"
scenario = "transit"
regions = ["440100"]

[[items]]
code = "0501"
name = "广州图书馆"
scenario = "gate"
regions = ["440100"]

[[items]]
code = "0601"
name = "住宿登记"
scenario = "hotel"
regions = ["44"]

[[items]]
code = "0201"
name = "就医结算"
scenario = "hospital"
regions = ["440100"]
"""
# persona → province of issue; every scenario sees five provinces or more
PERSONAS = {
    "ordinary-2.0": "44 Guangdong",
    "macao-resident": "44 Guangdong (Macao resident)",
    "v3-sm4": "33 Zhejiang",
    "foreign-4e": "31 Shanghai (foreign holder)",
    "jiangxi-nanchang": "36 Jiangxi",
    "hunan-changsha": "43 Hunan",
    "taiwan-resident": "35 Fujian (Taiwan resident)",
}
SCENARIOS = {
    "transit": (
        "ordinary-2.0",
        "jiangxi-nanchang",
        "hunan-changsha",
        "taiwan-resident",
        "foreign-4e",
    ),
    "gate": ("v3-sm4", "jiangxi-nanchang", "hunan-changsha", "macao-resident", "foreign-4e"),
    "hotel": ("v3-sm4", "jiangxi-nanchang", "hunan-changsha", "taiwan-resident", "macao-resident"),
    "hospital": ("ordinary-2.0", "v3-sm4", "jiangxi-nanchang", "hunan-changsha", "taiwan-resident"),
}
PINS = {  # the personas' [pin] values
    "ordinary-2.0": "123456",
    "v3-sm4": "123456",
    "jiangxi-nanchang": "135790",
    "hunan-changsha": "975310",
    "taiwan-resident": "445566",
}


@dataclass
class Terminal:
    folder: Path
    config: Path
    keys: Path

    def sscard(self, *args: str, stdin: str | None = None):
        return run_sscard(*args, "--config", str(self.config), stdin=stdin)

    def tap(self, scenario: str, *extra: str, stdin: str | None = None) -> tuple[dict, str]:
        done = self.sscard(
            "tap", "--scenario", scenario, "--reader", READER0, "--format", "json",
            "--timeout", "10", "--soft-sam", str(self.keys), *extra, stdin=stdin,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout), done.stderr


def make_terminal(folder: Path, *, provisioned: bool) -> Terminal:
    folder.mkdir()
    pepper = folder / "pepper"
    pepper.write_bytes(PEPPER)
    key = folder / "journal.key"
    key.write_text(os.urandom(32).hex())
    for secret in (pepper, key):
        secret.chmod(0o600)
    config = folder / "terminal.toml"
    config.write_text(
        '[terminal]\nid = "GZ-E2E-01"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\njournal_key_file = "journal.key"\n'
        '[sync]\nregion = "440100"\n'
    )
    terminal = Terminal(folder, config, private_copy(TEST_ROOTS, folder / "roots.toml"))
    if provisioned:
        catalogue = folder / "catalogue.toml"
        catalogue.write_text(CATALOGUE, encoding="utf-8")
        done = terminal.sscard("catalogue", "load", str(catalogue))
        assert done.returncode == 0, done.stderr
        signer = Ed25519PrivateKey.generate()
        created = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        path = write_list(
            folder / "deny-1.jsonl", header("snapshot", 1, 0, created=created), [], signer
        )
        pem = folder / "deny.pem"
        pem.write_bytes(public_pem(signer))
        done = terminal.sscard("deny", "import", str(path), "--public-key", str(pem))
        assert done.returncode == 0, done.stderr
    return terminal


def test_cards_of_every_province_at_every_scenario_rules_and_concessions(
    tmp_path: Path, cards
) -> None:
    terminal = make_terminal(tmp_path / "guangzhou", provisioned=True)
    outcomes: dict[tuple[str, str], str] = {}
    for scenario, personas in SCENARIOS.items():
        assert len({PERSONAS[p][:2] for p in personas}) >= 5, scenario
        for persona in personas:
            cards.insert(make_card(persona))
            extra: list[str] = []
            stdin = None
            if scenario == "hotel":
                extra = ["--room", "0815"]
            elif scenario == "hospital":
                extra, stdin = ["--pin-stdin"], PINS[persona] + "\n"
            decision, stderr = terminal.tap(scenario, *extra, stdin=stdin)
            outcomes[scenario, persona] = decision["reason"]
            assert decision["flags"] == [], (scenario, persona)
            assert "never provisioned" not in stderr and "lacks lists: no trust list" in stderr
            cards.remove_all()
    refused = {key: reason for key, reason in outcomes.items() if reason != "ok"}
    assert not refused, refused
    assert len(outcomes) == 20

    # a deployment restricted to Guangdong cards, by a rule it names
    rule = "《示例市公交票务规定》第7条 (e2e test rule)"
    restricted = terminal.folder / "gd-only.toml"
    restricted.write_text(
        'scenario = "transit"\ncatalogue_item = "0301"\n[transit]\nfare_fen = 200\n'
        f'[regions]\naccept = ["44"]\nrule = "{rule}"\n',
        encoding="utf-8",
    )
    cards.insert(make_card("jiangxi-nanchang"))
    decision, _ = terminal.tap(str(restricted))
    assert decision["outcome"] == "refuse" and decision["reason"] == "region_not_accepted"
    assert rule in decision["advice_zh"] and rule in decision["advice_en"]
    assert decision["prompt_zh"] == "本服务仅限规定地区的卡，请到人工窗口" and decision["hotline"]
    assert decision["detail"] == {"region_code": "360100", "rule": rule}
    cards.remove_all()

    # Guangzhou's own elderly ride free; Changsha's elderly pay the fare and ride
    local = terminal.folder / "gz-seniors.toml"
    local.write_text(
        'scenario = "transit"\ncatalogue_item = "0301"\n[transit]\nfare_fen = 200\n'
        '[[transit.region_concessions]]\nname = "gz_senior_free"\nregions = ["440100"]\n'
        f'categories = ["4"]\nrule = "{rule}"\n',
        encoding="utf-8",
    )
    fares = {}
    for persona in ("elderly", "hunan-changsha"):
        cards.insert(make_card(persona))
        decision, _ = terminal.tap(str(local))
        assert decision["outcome"] == "accept", persona
        fares[persona] = (decision["detail"]["fare_fen"], decision["detail"]["concession"])
        cards.remove_all()
    assert fares == {"elderly": (0, "gz_senior_free"), "hunan-changsha": (200, None)}
    done = terminal.sscard("journal", "verify")
    assert done.returncode == 0 and "23 rows" in done.stdout


def test_a_terminal_never_provisioned_warns_loudly_and_the_rider_still_rides(
    tmp_path: Path, cards
) -> None:
    terminal = make_terminal(tmp_path / "fresh-out-of-the-box", provisioned=False)
    cards.insert(make_card("hunan-changsha"))
    decision, stderr = terminal.tap("transit")
    assert "WARNING: this terminal was never provisioned: no deny list, no catalogue, " in stderr
    assert "no trust list" in stderr and "sscard sync --once" in stderr
    assert (decision["outcome"], decision["reason"]) == ("accept", "ok")
    assert decision["flags"] == ["stale_list:catalogue", "stale_list:deny_list"]
    assert decision["prompt_zh"] == "验证通过"  # the rider sees an ordinary accept
    status = terminal.sscard("deny", "status", "--scenario", "transit")
    assert status.returncode == 0
    assert "  transit:    DEGRADED (missing, limit 72 h): accept" in status.stdout
    listing = terminal.sscard("catalogue", "list", "--scenario", "hotel")
    assert listing.returncode == 0
    assert "#   hotel:      DEGRADED (missing, limit 24 h): online, else accept" in listing.stdout
    tail = terminal.sscard("journal", "tail", "-n", "1")
    assert json.loads(tail.stdout)["reason"] == "ok"
