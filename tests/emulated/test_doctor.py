"""``sscard doctor``'s checks one by one (terminal/doctor.py), against real files, a real pty
and an HTTPS platform on loopback with certificates made for the test: the TLS pin and CA file
checked as the sync checks them, the clock offset measured from the platform's answer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tls_support import Certificate, HttpsPlatform, make_ca_and_server

from config.settings import Settings, parse_settings
from terminal import doctor
from terminal.configuration import init_production
from terminal.doctor import Check, Level

pytestmark = pytest.mark.emulated

SERVER_TIME = 1_800_000_000.0  # what HttpsPlatform answers to GET /v1/time


def settings(folder: Path, **tables: dict[str, Any]) -> Settings:
    key = folder / "sync.key"
    if not key.exists():
        key.write_text("ab" * 32 + "\n")
        key.chmod(0o600)
    document: dict[str, Any] = {"terminal": {"id": "T1"}, **tables}
    return parse_settings(document, source="terminal.toml", base_dir=folder)


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Certificate, Certificate, Certificate, Certificate]:
    ca, server = make_ca_and_server(tmp_path, "platform")
    rogue_ca, rogue = make_ca_and_server(tmp_path, "rogue")
    return ca, server, rogue_ca, rogue


@pytest.fixture
def https(pki) -> Iterator[HttpsPlatform]:
    served = HttpsPlatform(pki[1], lambda code: (404, {}))
    yield served
    served.stop()


def sync_table(url: str, **extra: str) -> dict[str, str]:
    return {"url": url, "key_file": "sync.key", "key_id": "k1", **extra}


def test_a_pinned_platform_answers_and_the_clock_offset_is_measured(
    tmp_path: Path, pki, https: HttpsPlatform
) -> None:
    pinned = settings(tmp_path, sync=sync_table(https.url, pinned_cert_sha256=pki[1].sha256))
    platform, clock = doctor.check_platform(pinned, clock=lambda: SERVER_TIME - 30)
    assert platform.level is Level.OK and "(TLS pinned," in platform.detail
    # the offset is taken at the round trip's midpoint: a little under 30 s
    assert clock.level is Level.OK and clock.detail.endswith(" s from the platform")
    assert 29 < float(clock.detail.split()[0]) <= 30
    _, late = doctor.check_platform(pinned, clock=lambda: SERVER_TIME - 100)
    assert late.level is Level.WARN and late.detail.startswith("off by +")
    _, wrong = doctor.check_platform(pinned, clock=lambda: SERVER_TIME + 3600)
    assert wrong.level is Level.FAIL and wrong.detail.startswith("off by -3600.")
    assert wrong.detail.endswith(" s from the platform (limit 120 s)")
    assert wrong.advice == "synchronise the clock: `timedatectl set-ntp true`"


def test_a_certificate_off_the_pin_or_the_ca_fails_with_advice(
    tmp_path: Path, pki, https: HttpsPlatform
) -> None:
    ca, _, rogue_ca, rogue = pki
    by_ca = settings(tmp_path, sync=sync_table(https.url, ca_file=str(ca.cert)))
    (found, _) = doctor.check_platform(by_ca, clock=lambda: SERVER_TIME)
    assert found.level is Level.OK and "(TLS," in found.detail
    for tls in ({"pinned_cert_sha256": rogue.sha256}, {"ca_file": str(rogue_ca.cert)}):
        (refused,) = doctor.check_platform(settings(tmp_path, sync=sync_table(https.url, **tls)))
        assert refused.level is Level.FAIL and refused.detail.startswith("TLS: ")
        assert "pinned_cert_sha256 or ca_file" in refused.advice


def test_no_platform_configured_or_none_listening(tmp_path: Path) -> None:
    (none,) = doctor.check_platform(settings(tmp_path))
    assert none.level is Level.WARN and none.detail.startswith("no [sync] url")
    with_pin = settings(
        tmp_path, sync=sync_table("http://127.0.0.1:9/", pinned_cert_sha256="ab" * 32)
    )
    (plain,) = doctor.check_platform(with_pin)
    assert plain.level is Level.FAIL and "need an https:// URL" in plain.detail
    (down,) = doctor.check_platform(settings(tmp_path, sync=sync_table("http://127.0.0.1:9/")))
    assert down.level is Level.FAIL and down.detail.startswith("unreachable: ")


def test_key_files_readable_by_others_fail(tmp_path: Path) -> None:
    pepper = tmp_path / "pepper"
    pepper.write_text("00" * 32)
    pepper.chmod(0o644)
    found = doctor.check_key_files(settings(tmp_path, store={"pepper_file": "pepper"}))
    assert found.level is Level.FAIL and f"{pepper} has mode 0644" in found.detail
    pepper.chmod(0o600)
    assert doctor.check_key_files(settings(tmp_path, store={"pepper_file": "pepper"})).level is (
        Level.OK
    )
    unset = doctor.check_key_files(settings(tmp_path))
    assert unset.level is Level.FAIL and "pepper_file is not set" in unset.detail


def test_a_production_template_is_not_ready(tmp_path: Path) -> None:
    from config.settings import load_settings

    result = init_production(tmp_path / "prod")
    found = doctor.check_production(load_settings(result.settings))
    assert found.level is Level.FAIL
    assert found.detail.startswith("production terminal not ready: [sync] url is not set")


def test_serial_ports_and_the_software_sam(tmp_path: Path) -> None:
    missing = doctor.check_serial(
        settings(tmp_path, indicators={"serial_port": str(tmp_path / "ttyUSB9")})
    )
    assert missing.level is Level.FAIL and "does not exist" in missing.detail
    controller, device = os.openpty()
    try:
        port = os.ttyname(device)
        there = doctor.check_serial(settings(tmp_path, indicators={"serial_port": port}))
        assert there == Check("serial ports", Level.OK, f"{port} present and writable")
    finally:
        os.close(controller)
        os.close(device)
    soft = {"security": {"soft_sam_keys": "roots.toml"}}
    assert doctor.check_security_module(settings(tmp_path, **soft)).level is Level.WARN
    production = parse_settings(
        {"production": True, **soft}, source="terminal.toml", base_dir=tmp_path
    )
    assert doctor.check_security_module(production).level is Level.FAIL


def test_a_missing_store_fails_and_disk_space_is_reported(tmp_path: Path) -> None:
    found = doctor.check_store(settings(tmp_path, store={"database": "none/store.db"}), [])
    assert found == [
        Check(
            "store",
            Level.FAIL,
            f"no offline store at {tmp_path / 'none' / 'store.db'}",
            "write a configuration with `sscard init`, or correct [store] database",
        )
    ]
    disk = doctor.check_disk(settings(tmp_path, store={"database": "none/store.db"}))
    assert disk.name == "disk" and f"free in {tmp_path}" in disk.detail


def test_the_report_and_the_exit_status() -> None:
    checks = [
        Check("pcscd", Level.OK, "running (pid 7)"),
        Check("audio", Level.WARN, "voice prompts are off", "turn voice on"),
    ]
    assert doctor.report_lines(checks) == [
        "ok    pcscd: running (pid 7)",
        "warn  audio: voice prompts are off",
        "      → turn voice on",
    ]
    assert doctor.exit_status(checks) == 1
    assert doctor.exit_status(checks[:1]) == 0
    assert doctor.exit_status([*checks, Check("disk", Level.FAIL, "full", "free space")]) == 2
    assert checks[1].to_json() == {
        "name": "audio",
        "level": "warn",
        "detail": "voice prompts are off",
        "advice": "turn voice on",
    }
