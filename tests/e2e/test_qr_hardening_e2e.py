"""End to end through the real ``sscard`` CLI, the three e-card findings of issue 10 that a
terminal's operator would see:

* finding 3: at a gate (whose profile defers national codes) any text used to be accepted as a
  deferred national code, even with no platform configured, and one national code was accepted
  again and again; now only the national syntax is deferred, and only once;
* finding 5: a production terminal pinned to the TEST root imported a test trust list and
  accepted a development code; now both steps are refused, and a test platform key slipped
  into a list under a real root stops every code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import golden
import pytest
from store_support import header, write_list
from support import CATALOGUE, KEYS, PERSONAS, run_sscard

from ecard import Alg, PrivateKey, make_trust_list
from ecard.keys import load_private_key
from offline_store import Store, accept_unsigned
from terminal.cli import qr as qr_cli
from terminal.cli.edge import run_command

pytestmark = pytest.mark.e2e

PEPPER = b"TEST PEPPER: e2e qr hardening only, 32+"
NATIONAL = "CNSSC" + "A2B3C4D5E6F7G2H3J4K5L6M7N2P3Q4R5"
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "qr"
VALID_OPEN = (VECTORS / "valid-es256.txt").read_text(encoding="ascii")
TEST_ROOT = load_private_key((KEYS / "qr-root-test.pem").read_bytes())


def sscard_qr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``sscard qr ARGS`` in this process (the real handlers behind ``main``'s error edge; a child
    process costs seconds)."""
    parser = argparse.ArgumentParser(prog="sscard")
    sub = parser.add_subparsers(dest="command", required=True)
    qr_cli.add_parser(sub)
    capsys.readouterr()

    def command() -> int:
        parsed = parser.parse_args(["qr", *args])
        return run_command(lambda: parsed.handler(parsed), log_file=None)

    status = golden.in_process(["qr", *args], command)
    out, err = capsys.readouterr()
    return status, out, err


@dataclass
class Terminal:
    folder: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def config(self) -> Path:
        return self.folder / "terminal.toml"

    def settings(self, *, production: bool = False) -> None:
        self.config.write_text(
            f"production = {'true' if production else 'false'}\n"
            '[terminal]\nid = "QR-HARD"\n'
            '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
            'journal_key_file = "journal.key"\n'
            '[ecard]\ntrust_root_key = "qr-root.pem"\n'
            "[indicators]\nconsole = false\n"
        )

    def verify(self, text: str, scenario: str = "gate") -> tuple[int, dict | None, str]:
        status, out, err = sscard_qr(
            self.capsys, "verify", text, "--scenario", scenario, "--format", "json",
            "--config", str(self.config),
        )  # fmt: skip
        return status, json.loads(out) if out.strip() else None, err

    def trust_import(self, path: Path) -> tuple[int, str]:
        status, out, err = sscard_qr(self.capsys, "trust-import", str(path), "--config",
                                     str(self.config))  # fmt: skip
        return status, out + err

    def issue(self) -> str:
        persona = str(PERSONAS / "ordinary-2.0.toml")
        status, out, err = sscard_qr(self.capsys, "issue", "--persona", persona)
        assert status == 0, err
        return out.strip().splitlines()[-1]


@pytest.fixture
def terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Terminal:
    folder = tmp_path / "terminal"
    folder.mkdir()
    journal_key = os.urandom(32)
    for name, data in (("pepper", PEPPER), ("journal.key", journal_key.hex().encode())):
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)
    (folder / "qr-root.pem").write_bytes(TEST_ROOT.public_key.to_pem())
    created = dt.datetime.now(dt.UTC).isoformat()
    deny = write_list(folder / "deny-1.jsonl", header("snapshot", 1, 0, created=created), [])
    with Store.open(folder / "store.db", journal_key=journal_key, pepper=PEPPER) as store:
        store.catalogue.load_file(CATALOGUE)
        store.deny.import_file(deny, accept_unsigned)
    made = Terminal(folder, capsys)
    made.settings()
    return made


def test_sscard_qr_verify_hello_world_at_a_gate_is_bad_encoding(terminal: Terminal) -> None:
    """The finding as it was reported, through the real command in a child process."""
    done = run_sscard("qr", "verify", "hello world", "--scenario", "gate", "--format", "json",
                      "--config", str(terminal.config))  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["reason"] == "qr_bad_encoding"


def test_at_a_gate_text_that_is_no_code_is_bad_encoding_without_a_platform(
    terminal: Terminal,
) -> None:
    for text in ("SSC2:" + VALID_OPEN[5:], "ssc1:" + VALID_OPEN[5:], "https://example.com/x"):
        status, decision, stderr = terminal.verify(text)
        assert status == 1, stderr
        assert decision is not None and decision["reason"] == "qr_bad_encoding", text


def test_one_national_code_is_deferred_once_then_refused_as_a_replay(terminal: Terminal) -> None:
    reasons = [terminal.verify(NATIONAL)[1]["reason"] for _ in range(3)]  # type: ignore[index]
    assert reasons == ["qr_deferred", "qr_replay", "qr_replay"]


def test_production_refuses_the_test_root_at_import_and_at_load(
    terminal: Terminal, tmp_path: Path
) -> None:
    listing = tmp_path / "trust.cbor"
    assert sscard_qr(terminal.capsys, "trust-list", "--out", str(listing))[0] == 0
    terminal.settings(production=True)
    status, output = terminal.trust_import(listing)
    assert status == 2 and "TEST KEY drivers/virtual/test_keys/qr-root-test.pem" in output
    status, decision, stderr = terminal.verify(terminal.issue())
    assert status == 2 and decision is None
    assert "trust_root_key" in stderr and "production = true refuses test keys" in stderr


def test_a_test_platform_key_under_a_real_root_stops_every_code_in_production(
    terminal: Terminal, tmp_path: Path
) -> None:
    root = PrivateKey.generate(Alg.ES256)  # a root of this deployment, not a test key
    (terminal.folder / "qr-root.pem").write_bytes(root.public_key.to_pem())
    platform = load_private_key((KEYS / "qr-platform-es256-test.pem").read_bytes())
    now = int(time.time())
    listing = tmp_path / "trust.cbor"
    listing.write_bytes(make_trust_list([platform.public_key], root, 1, now - 60, now + 86_400))
    terminal.settings(production=True)
    status, output = terminal.trust_import(listing)
    assert status == 2 and "qr-platform-es256-test.pem" in output
    terminal.settings(production=False)  # imported on the bench, then put in production
    assert terminal.trust_import(listing)[0] == 0
    assert terminal.verify(terminal.issue())[1]["reason"] == "ok"  # type: ignore[index]
    terminal.settings(production=True)
    status, decision, stderr = terminal.verify(terminal.issue())
    assert status == 1, stderr
    assert decision is not None and decision["reason"] == "qr_stale_trust_list"
