"""The complaint hotlines a deployment sets reach every refusal: the console line the holder
sees, the decision the host gets as JSON; an accepted tap carries none (docs/service-point.md).
The last test sets them in a settings file and runs the real ``sscard qr verify``."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from pipeline_support import World
from support import load_test_roots, make_card, run_sscard

from apdu.errors import SscardError
from apdu.transport import t0_chain
from config.settings import Settings
from drivers.indicators import ConsoleIndicator, Hotline
from drivers.soft_sam import SoftSam
from drivers.virtual.card import VirtualConnection
from terminal.card_read import ScenarioRead
from terminal.pipeline import Pipeline
from terminal.profiles import load_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

LOCAL = (
    Hotline("12333", "人社服务热线", "social security hotline"),
    Hotline("0791-12345", "南昌市民热线", "Nanchang citizens' hotline"),
)


def _tap(world: World, persona: str, console: io.StringIO, **behaviour: object):
    profile = load_profile("transit")
    pipeline = Pipeline(
        profile,
        world.store,
        terminal_id="T-TEST-01",
        indicator=ConsoleIndicator(console, colour=False),
        clock=world.clock,
        hotlines=LOCAL,
    )
    card = make_card(persona, **behaviour)
    sam = SoftSam(load_test_roots(), Settings())
    read = ScenarioRead(t0_chain(VirtualConnection(card)), card.historical, profile, sam)
    return pipeline.process(read)


def test_a_refusal_announces_the_deployments_hotlines_on_screen_and_in_json(
    world: World,
) -> None:
    console = io.StringIO()
    refused = _tap(world, "ordinary-2.0", console, app_locked=True)
    assert refused.reason == Reason.APP_LOCKED and refused.hotlines == LOCAL
    line = console.getvalue().strip()
    assert line.startswith("REFUSE     社保应用已锁定，请到人工窗口 / Card application locked")
    assert "12333 人社服务热线，0791-12345 南昌市民热线" in line
    assert "0791-12345 Nanchang citizens' hotline" in line
    out = refused.to_json()
    assert [h["number"] for h in out["hotlines"]] == ["12333", "0791-12345"]
    assert "南昌市民热线" in out["hotline"]


def test_an_accepted_tap_announces_no_hotline(world: World) -> None:
    console = io.StringIO()
    accepted = _tap(world, "ordinary-2.0", console)
    assert accepted.accepted
    assert "热线" not in console.getvalue()
    assert accepted.to_json()["hotlines"] == []


def test_a_service_point_without_a_hotline_is_refused(world: World) -> None:
    with pytest.raises(SscardError, match="at least one complaint hotline"):
        Pipeline(load_profile("transit"), world.store, terminal_id="T-TEST-01", hotlines=())


def test_the_hotlines_of_the_settings_file_reach_the_console_and_the_json(tmp_path: Path) -> None:
    for name, data in (("pepper", os.urandom(40)), ("journal.key", os.urandom(32).hex().encode())):
        (tmp_path / name).write_bytes(data)
        (tmp_path / name).chmod(0o600)
    config = tmp_path / "terminal.toml"
    config.write_text(
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        'journal_key_file = "journal.key"\n'
        "[indicators]\nvoice = false\n"
        "[[service_point.hotlines]]\n"
        'number = "0791-12345"\npurpose_zh = "南昌市民热线"\n'
        'purpose_en = "Nanchang citizens\' hotline"\n',
        encoding="utf-8",
    )
    # a national code while the platform is unknown: the hotel profile refuses it
    done = run_sscard(
        "qr", "verify", "CNSSC2NATIONAL2CODE", "--scenario", "hotel", "--room", "0302",
        "--format", "json", "--config", str(config),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    decision = json.loads(done.stdout)
    assert decision["reason"] == "qr_online_unavailable"
    assert decision["hotlines"] == [
        {
            "number": "0791-12345",
            "purpose_zh": "南昌市民热线",
            "purpose_en": "Nanchang citizens' hotline",
        }
    ]
    assert "12333" not in done.stdout  # the deployment's list replaces the defaults
    assert "REFUSE" in done.stderr and "0791-12345 南昌市民热线" in done.stderr
