"""National e-card codes end to end with the reference platform served over TLS: a code from
``platform ecard issue`` has the national syntax, is decoded through the terminal's one
transport with the pinned certificate (the identity reaches the hotel), and not at all with
another pin (the gate defers it, without identity); a production terminal refuses the TEST KEYS
a platform made with ``init --test-keys`` hands out at sync."""

from __future__ import annotations

import argparse
import json
import os
import re
import tomllib
from pathlib import Path

import golden
import pytest
from sync_support import PlatformProcess, register, run, sscard
from tls_support import make_ca_and_server

from drivers.virtual import PERSONAS, TEST_KEYS
from platform_server import Platform
from terminal.cli import qr as qr_cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PERSONA = tomllib.loads((PERSONAS / "ordinary-2.0.toml").read_text())
CATALOGUE = ROOT / "tests" / "catalogue.toml"


def qr_verify(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict:
    """``sscard qr verify`` in this process (the real handler and composition)."""
    parser = argparse.ArgumentParser(prog="sscard")
    qr_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    argv = ["qr", "verify", *args, "--format", "json", "--config", str(config)]
    capsys.readouterr()

    def command() -> int:
        parsed = parser.parse_args(argv)
        return int(parsed.handler(parsed))

    status = golden.in_process(argv, command)
    out, err = capsys.readouterr()
    assert status in (0, 1), err
    decision: dict = json.loads(out)
    return decision


def settings(
    folder: Path, terminal_id: str, key_id: str, url: str, pin: str, *, production: bool
) -> Path:
    path = folder / "terminal.toml"
    path.write_text(
        f"production = {'true' if production else 'false'}\n"
        f'[terminal]\nid = "{terminal_id}"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\ndeny_public_key = "deny.pem"\n'
        'journal_key_file = "journal.key"\n'
        '[ecard]\ntrust_root_key = "qr-root.pem"\naudience_keys = "audience.keys"\n'
        f'[sync]\nurl = "{url}"\nkey_id = "{key_id}"\nkey_file = "sync.key"\ntimeout_s = 5\n'
        f'region = "440100"\npinned_cert_sha256 = "{pin}"\n'
        "[indicators]\nconsole = false\n"
    )
    return path


def test_national_codes_through_the_reference_platform_over_pinned_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, server = make_ca_and_server(tmp_path, "reference")
    _, rogue = make_ca_and_server(tmp_path, "rogue")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.cert))  # must change nothing
    platform = PlatformProcess(tmp_path / "platform")
    with Platform.init(str(platform.db), platform.keys, test_keys=TEST_KEYS) as made:
        made.load_catalogue(CATALOGUE)  # in this process: a child costs seconds
        code, other = (made.issue_ecard(PERSONA, 3600).code for _ in range(2))
    platform.start("--tls-cert", str(server.cert), "--tls-key", str(server.key))
    try:
        url = platform.url.replace("http://", "https://")
        folder = tmp_path / "terminal"
        terminal = register(platform, folder, "440100-T0001", scenarios="gate,hotel")
        (folder / "journal.key").write_text(os.urandom(32).hex())
        (folder / "journal.key").chmod(0o600)
        pinned = settings(folder, terminal.terminal_id, terminal.key_id, url, server.sha256,
                          production=False)  # fmt: skip
        synced = run(sscard("sync", "--once", "--config", str(pinned)), check=False)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert re.fullmatch(r"CNSSC[A-Z2-7]{32}", code)
        hotel = qr_verify(capsys, pinned, code, "--scenario", "hotel", "--room", "0302")
        assert hotel["reason"] == "ok" and hotel["record"]["name"] == "陈静怡"

        wrong = settings(folder, terminal.terminal_id, terminal.key_id, url, rogue.sha256,
                         production=False)  # fmt: skip
        refused = qr_verify(capsys, wrong, other, "--scenario", "hotel", "--room", "1")
        assert refused["reason"] == "qr_online_unavailable" and "record" not in refused
        deferred = qr_verify(capsys, wrong, other, "--scenario", "gate")
        assert deferred["reason"] == "qr_deferred" and "record" not in deferred

        production = settings(folder, terminal.terminal_id, terminal.key_id, url, server.sha256,
                              production=True)  # fmt: skip
        refused_sync = run(sscard("sync", "--once", "--config", str(production)), check=False)
        assert refused_sync.returncode == 1, refused_sync.stdout + refused_sync.stderr
        assert "TEST KEY drivers/virtual/test_keys/qr-root-test.pem" in refused_sync.stdout
    finally:
        platform.stop()
