"""End to end: a code made by ``sscard qr issue`` (the development platform, one folder) is
decided by ``sscard qr verify`` / ``sscard scan`` on a terminal (another folder) that holds only
the pinned root, the trust list, the catalogue and the deny list — then refused once replayed,
expired, deny listed, altered, or signed by a key the trust list dropped."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import golden
import pytest
from pty_pair import SocatPair
from store_support import header, write_list
from support import CATALOGUE, KEYS, PERSONAS, run_sscard

from ecard.keys import load_private_key
from offline_store import canonical_ecard_id, keyed_card_hash
from terminal.cli.qr import AUDIENCE_KID, dev_token

pytestmark = pytest.mark.e2e

PEPPER = b"TEST PEPPER: e2e qr tests only, 32 bytes+"


@dataclass
class Machines:
    platform: Path  # where codes and trust lists are made
    terminal: Path  # the terminal's folder
    config: Path

    def issue(self, persona: str, *extra: str) -> str:
        done = run_sscard("qr", "issue", "--persona", str(PERSONAS / f"{persona}.toml"), *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def trust(self, version: int, keys: str = "es256,sm2") -> None:
        path = self.platform / f"trust-{version}.cbor"
        made = run_sscard("qr", "trust-list", "--out", str(path), "--version", str(version),
                          "--keys", keys)  # fmt: skip
        assert made.returncode == 0, made.stderr
        done = run_sscard("qr", "trust-import", str(path), "--config", str(self.config))
        assert done.returncode == 0, done.stderr

    def verify(self, *args: str, scenario: str = "gate") -> dict:
        done = run_sscard("qr", "verify", *args, "--scenario", scenario, "--format", "json",
                          "--config", str(self.config))  # fmt: skip
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)

    def deny(self, tokens: list[str], version: int) -> None:
        lines = [
            {"hash": keyed_card_hash(PEPPER, canonical_ecard_id(t)), "reason": "lost",
             "effective": "2026-01-01"}
            for t in tokens
        ]  # fmt: skip
        created = dt.datetime.now(dt.UTC).isoformat()
        path = write_list(
            self.terminal / f"deny-{version}.jsonl",
            header("snapshot", version, len(lines), created=created),
            lines,
        )
        done = run_sscard("deny", "import", str(path), "--config", str(self.config),
                          "--unsigned-ok")  # fmt: skip
        assert done.returncode == 0, done.stderr


@pytest.fixture
def machines(tmp_path: Path) -> Machines:
    platform, terminal = tmp_path / "platform", tmp_path / "terminal"
    platform.mkdir()
    terminal.mkdir()
    for name, data in (("pepper", PEPPER), ("journal.key", os.urandom(32).hex().encode())):
        (terminal / name).write_bytes(data)
        (terminal / name).chmod(0o600)
    root = load_private_key((KEYS / "qr-root-test.pem").read_bytes()).public_key
    (terminal / "qr-root.pem").write_bytes(root.to_pem())  # the terminal holds the public half
    audience = (KEYS / "qr-audience-hotel-test.key").read_text().strip()
    (terminal / "audience.keys").write_text(f'{AUDIENCE_KID} = "{audience}"\n')
    (terminal / "audience.keys").chmod(0o600)
    config = terminal / "terminal.toml"
    config.write_text(
        '[terminal]\nid = "QR-E2E"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\njournal_key_file = "journal.key"\n'
        '[ecard]\ntrust_root_key = "qr-root.pem"\naudience_keys = "audience.keys"\n'
        "[indicators]\nconsole = false\n"
    )
    world = Machines(platform, terminal, config)
    done = run_sscard("catalogue", "load", str(CATALOGUE), "--config", str(config))
    assert done.returncode == 0, done.stderr
    world.deny([], 1)
    world.trust(1)
    return world


def test_a_code_is_accepted_once_then_refused_as_a_replay(machines: Machines) -> None:
    code = machines.issue("ordinary-2.0")
    assert code.startswith("SSC1:")
    first = machines.verify(code, scenario="transit")
    assert first["outcome"] == "accept" and first["detail"]["credential"] == "ecard"
    assert first["detail"]["fare_fen"] == 200
    assert machines.verify(code, scenario="transit")["reason"] == "qr_replay"


def test_sm2_codes_and_concessions_from_the_credential(machines: Machines) -> None:
    decision = machines.verify(machines.issue("elderly", "--alg", "sm2"), scenario="transit")
    assert decision["reason"] == "ok"
    assert decision["detail"]["fare_fen"] == 0 and decision["detail"]["concession"] == (
        "elderly_category"
    )


def test_a_png_made_on_the_platform_is_read_and_accepted(machines: Machines) -> None:
    image = machines.platform / "code.png"
    machines.issue("hk-resident", "--png", str(image))
    assert machines.verify("--image", str(image))["reason"] == "ok"


def test_the_hotel_reads_the_identity_sealed_to_its_audience_key(machines: Machines) -> None:
    decision = machines.verify(machines.issue("v3-sm4"), "--room", "1208", scenario="hotel")
    assert decision["reason"] == "ok"
    assert decision["record"]["name"] == "李晓梅" and decision["record"]["room"] == "1208"
    bare = machines.verify(machines.issue("v3-sm4", "--no-identity"), "--room", "1208",
                           scenario="hotel")  # fmt: skip
    assert bare["reason"] == "qr_identity_unavailable"


def test_expired_deny_listed_and_altered_codes_are_refused(machines: Machines) -> None:
    strict = machines.terminal / "strict-gate.toml"
    strict.write_text('scenario = "gate"\ncatalogue_item = "0501"\n[gate]\n[qr]\nskew_s = 0\n')
    short = machines.issue("ordinary-2.0", "--valid-hours", "0.0003")  # about one second
    time.sleep(2.0)
    assert machines.verify(short, scenario=str(strict))["reason"] == "qr_expired"
    machines.deny([dev_token("440300", "F33091278")], 2)
    assert machines.verify(machines.issue("hk-resident"))["reason"] == "deny_lost"
    code = machines.issue("ordinary-2.0")
    middle = len(code) // 2
    altered = code[:middle] + ("0" if code[middle] != "0" else "1") + code[middle + 1 :]
    assert machines.verify(altered)["reason"] in ("qr_bad_signature", "qr_bad_encoding")
    assert machines.verify(code)["reason"] == "ok"  # the original still works


def test_a_key_dropped_from_the_trust_list_stops_verifying_at_once(machines: Machines) -> None:
    code = machines.issue("student")
    machines.trust(2, keys="sm2")
    assert machines.verify(code)["reason"] == "qr_unknown_key"
    assert machines.verify(machines.issue("student", "--alg", "sm2"))["reason"] == "ok"


def test_scan_from_a_serial_scanner(machines: Machines, tmp_path: Path) -> None:
    (tmp_path / "pty").mkdir()
    pair = SocatPair(tmp_path / "pty")
    pair.start()
    try:
        code = machines.issue("ordinary-2.0")
        child = subprocess.Popen(
            [sys.executable, "-m", "terminal.cli", "scan", "--serial", str(pair.terminal),
             "--once", "--scenario", "gate", "--format", "json", "--config", str(machines.config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # the scanner drops what came before it opened its port (a loaded machine opens late):
        # the code is sent again every 2 s until `--once` has decided one
        deadline = time.monotonic() + 60
        with open(pair.device, "wb", buffering=0) as device:
            while child.poll() is None and time.monotonic() < deadline:
                device.write(code.encode() + b"\r\n")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=2)
            out, err = child.communicate(timeout=30)
    finally:
        pair.stop()
    golden.observed(child.args, child.returncode, out, err)  # type: ignore[arg-type]
    assert child.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["reason"] == "ok"
