"""``sscard platform …``: every operator command, its output, its refusals (exit 2 with one
line on stderr), and ``serve`` as a real child process stopped by SIGTERM or SIGINT, over HTTP
and HTTPS."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import golden
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from platform_support import (
    PERSONAS,
    ROOT,
    TEST_KEYS,
    PlatformProcess,
    chain_rows,
    cli,
    free_port,
    record,
    seal,
)

from ecard.keys import load_private_key
from platform_server import Platform
from platform_server import cli as platform_cli
from platform_server.batch import parse_batch
from platform_server.ecard import DecodeRequest
from platform_server.terminals import key_for
from terminal.cli.edge import run_command

pytestmark = pytest.mark.emulated

CARD = "440100:A01023450"


def run(*args: str) -> int:
    """``sscard platform ARGS`` in this process (no logging set-up), its failures answered at
    the CLI's edge as ``sscard``'s ``main`` does."""
    parser = argparse.ArgumentParser(prog="sscard")
    sub = parser.add_subparsers(dest="command", required=True)
    platform_cli.add_parser(sub, test_keys=TEST_KEYS)

    def command() -> int:
        parsed = parser.parse_args(["platform", *args])
        return run_command(lambda: int(parsed.handler(parsed)), log_file=None)

    return golden.in_process(["platform", *args], command)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with an initialised platform (test keys); ``$SSCARD_PLATFORM_DB`` and
    ``$SSCARD_PLATFORM_KEYS`` point at it."""
    monkeypatch.setenv("SSCARD_PLATFORM_DB", f"sqlite:///{tmp_path / 'platform.db'}")
    monkeypatch.setenv("SSCARD_PLATFORM_KEYS", str(tmp_path / "keys"))
    assert run("init", "--test-keys") == 0
    return tmp_path


def test_every_platform_command_and_option_has_help() -> None:
    parser = argparse.ArgumentParser(prog="sscard")
    sub = parser.add_subparsers(dest="command")
    platform_cli.add_parser(sub, test_keys=TEST_KEYS)
    pending = [("platform", sub.choices["platform"])]
    seen = 0
    while pending:
        name, command = pending.pop()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"sscard {name} {action.option_strings or action.dest} has no help"
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"sscard {name} {choice.dest} has no help"
                pending += [(f"{name} {n}", p) for n, p in action.choices.items()]
        seen += 1
    assert seen >= 15


def test_init_makes_private_key_files_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    keys = tmp_path / "keys"
    db = str(tmp_path / "platform.db")
    assert run("init", "--keys", str(keys), "--db", db) == 0
    out = capsys.readouterr().out
    assert "trust list version 1 (2 keys)" in out and "deny list version 1" in out
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for path in keys.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o644 if path.name.endswith(".pub.pem") else 0o600), path.name
    assert stat.S_IMODE(Path(db).stat().st_mode) == 0o600
    # fresh keys, not the test keys
    test_root = load_private_key((TEST_KEYS / "qr-root-test.pem").read_bytes())
    assert (keys / "trust-root.pub.pem").read_bytes() != test_root.public_key.to_pem()
    assert run("init", "--keys", str(keys), "--db", db) == 2
    assert "not empty" in capsys.readouterr().err


def test_init_with_test_keys_uses_the_public_test_root(site: Path, capsys) -> None:
    test_root = load_private_key((TEST_KEYS / "qr-root-test.pem").read_bytes())
    assert (site / "keys" / "trust-root.pub.pem").read_bytes() == test_root.public_key.to_pem()


def test_a_private_key_readable_by_others_is_refused(site: Path, capsys) -> None:
    os.chmod(site / "keys" / "pepper.key", 0o644)
    assert run("deny", "add", CARD, "--reason", "lost") == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err and "pepper.key" in err


def test_terminal_add_writes_a_0600_key_and_prints_the_settings(site: Path, capsys) -> None:
    key_file = site / "t1.key"
    status = run(
        "terminal",
        "add",
        "440100-T0001",
        "--scenarios",
        "transit,gate",
        "--key-out",
        str(key_file),
        "--url",
        "https://platform.example/",
    )
    assert status == 0
    snippet = tomllib.loads(capsys.readouterr().out)
    assert snippet["terminal"] == {"id": "440100-T0001"}
    assert snippet["sync"]["url"] == "https://platform.example/"
    assert snippet["sync"]["key_file"] == str(key_file.resolve())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = bytes.fromhex(key_file.read_text().strip())
    with Platform.open(str(site / "platform.db")) as platform:
        [info] = platform.list_terminals("440100-T0001")
        assert info.scenarios == ("transit", "gate") and info.region == "440100"
        with platform.engine.connect() as conn:
            assert key_for(conn, "440100-T0001", snippet["sync"]["key_id"]) == key


def test_terminal_add_refusals_leave_no_key_file(site: Path, capsys) -> None:
    key_file = site / "t.key"
    assert run("terminal", "add", "T1", "--key-out", str(key_file)) == 0
    capsys.readouterr()
    again = site / "again.key"
    assert run("terminal", "add", "T1", "--key-out", str(again)) == 2
    assert "already registered" in capsys.readouterr().err and not again.exists()
    assert run("terminal", "add", "T 2", "--key-out", str(again)) == 2
    assert run("terminal", "add", "T2", "--region", "44", "--key-out", str(again)) == 2
    assert run("terminal", "add", "T2", "--scenarios", "Gate!", "--key-out", str(again)) == 2
    assert not again.exists()
    # an existing key file is never overwritten
    assert run("terminal", "add", "T3", "--key-out", str(key_file)) == 2
    assert "cannot create the key file" in capsys.readouterr().err


def test_deny_add_and_remove_mask_the_card_and_make_versions(site: Path, capsys) -> None:
    assert run("deny", "add", CARD, "--reason", "lost", "--effective", "2026-11-20") == 0
    out = capsys.readouterr().out
    assert "A01023450" not in out and "440100:A******50" in out
    assert "deny list version 2, 1 entries" in out
    assert run("deny", "add", CARD, "--reason", "lost", "--effective", "2026-11-20") == 0
    assert "stays at version 2" in capsys.readouterr().out
    assert run("deny", "add", "--ecard-token", "7c1f" * 16, "--reason", "fraud") == 0
    assert "version 3, 2 entries" in capsys.readouterr().out
    assert run("deny", "status") == 0
    assert "deny list version 3: 2 entries" in capsys.readouterr().out
    assert run("deny", "remove", CARD) == 0
    assert "unlisted: deny list version 4, 1 entries" in capsys.readouterr().out
    assert run("deny", "remove", CARD) == 2
    assert "not on the deny list" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ("deny", "add", "440100A01023450", "--reason", "lost"),
        ("deny", "add", "440100:A0102", "--reason", "lost"),
        ("deny", "add", CARD, "--ecard-token", "x", "--reason", "lost"),
        ("deny", "add", "--reason", "lost"),
        ("deny", "add", CARD, "--reason", "lost", "--effective", "20261120"),
        ("deny", "remove", "--ecard-token", "a:b"),
    ],
)
def test_a_malformed_card_or_date_is_refused(site: Path, capsys, args: tuple[str, ...]) -> None:
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sscard: ") and err.count("\n") == 1
    assert "A0102" not in err


def test_keys_rotate_lists_the_new_key_and_retires_the_old(site: Path, capsys) -> None:
    assert run("keys", "rotate", "--alg", "sm2", "--grace-days", "1") == 0
    out = capsys.readouterr().out
    assert out.startswith("SM2: new key ") and "trust list version 2" in out
    new_kid = out.split()[3].rstrip(";")
    assert (site / "keys" / f"qr-sm2-{new_kid}.pem").exists()
    assert not list((site / "keys").glob("*.new"))
    assert run("keys", "list") == 0
    listing = capsys.readouterr().out
    assert f"SM2   {new_kid}  current" in listing and "retires 20" in listing


def test_commands_that_sign_need_the_keys_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("SSCARD_PLATFORM_KEYS", raising=False)
    assert run("keys", "rotate", "--db", str(tmp_path / "p.db")) == 2
    assert "--keys DIR" in capsys.readouterr().err


def test_ecard_issue_prints_a_code_the_platform_decodes(site: Path, capsys) -> None:
    assert run("terminal", "add", "T1", "--scenarios", "gate", "--key-out", str(site / "k")) == 0
    capsys.readouterr()
    persona = PERSONAS / "ordinary-2.0.toml"
    assert run("ecard", "issue", "--persona", str(persona), "--valid-hours", "1") == 0
    captured = capsys.readouterr()
    code = captured.out.strip()
    assert code.startswith("CNSSC") and "card token" in captured.err
    with Platform.open(str(site / "platform.db"), site / "keys") as platform:
        answer = platform.decode("T1", DecodeRequest(code, "T1", "gate"))
    assert answer["region"] == "440100" and "identity" not in answer
    assert run("ecard", "issue", "--persona", str(site / "missing.toml")) == 2


def test_catalogue_load(site: Path, capsys) -> None:
    assert run("catalogue", "load", "tests/catalogue.toml") == 0
    assert "items" in capsys.readouterr().out
    bad = site / "bad.json"
    bad.write_text(json.dumps({"format": "sscard-catalogue/1", "items": [{"code": "x"}]}))
    assert run("catalogue", "load", str(bad)) == 2
    assert "missing" in capsys.readouterr().err


def test_tx_list_and_verify_report_breaks_and_gaps(site: Path, capsys) -> None:
    assert run("terminal", "add", "T1", "--key-out", str(site / "k1")) == 0
    assert run("terminal", "add", "T2", "--key-out", str(site / "k2")) == 0
    capsys.readouterr()
    good = chain_rows("T1", 5)
    bad = chain_rows("T2", 6)
    broken = [*bad[:2], seal(record("T2", 3), "c" * 64), *bad[4:]]  # 3 broken, 4 missing
    with Platform.open(str(site / "platform.db")) as platform:
        platform.upload("T1", parse_batch(json.dumps({"rows": good}).encode()))
        platform.upload("T2", parse_batch(json.dumps({"rows": broken}).encode()))
    assert run("tx", "verify", "--terminal", "T1") == 0
    assert "T1: 5 rows (counted 5), seq 1-5, ack 5: ok" in capsys.readouterr().out
    assert run("tx", "verify") == 2
    captured = capsys.readouterr()
    assert "T2: 5 rows (counted 5), seq 1-6, ack 3: 1 missing (4), 1 chain breaks (3)" in (
        captured.out
    )
    assert "chain problems for 1 terminal(s): T2" in captured.err
    assert run("tx", "list", "--terminal", "T2", "--limit", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[1] == "3" and "chain_break" in lines[0]
    assert "gap" in lines[1]
    assert run("tx", "list", "--terminal", "T9") == 2


def test_the_database_defaults_to_platform_db_in_the_current_folder(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("SSCARD_PLATFORM_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run("init", "--keys", "keys") == 0
    assert (tmp_path / "platform.db").exists()
    assert run("terminal", "list") == 0
    assert "no terminals registered" in capsys.readouterr().out


def test_a_database_of_something_else_is_refused(tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    assert run("deny", "status", "--db", str(other)) == 2
    assert "not an sscard platform" in capsys.readouterr().err


# --- serve -------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_url_and_stops_cleanly_on_a_signal(site: Path, stop: int) -> None:
    server = PlatformProcess(f"sqlite:///{site / 'platform.db'}", site / "keys", free_port())
    try:
        printed = server.start()
        assert printed == server.url
        assert requests.get(server.url + "v1/health", timeout=5).json()["ok"] is True
    finally:
        status = server.signal(stop) if server.process else 0
    assert status == 0


def test_serve_refuses_plain_http_beyond_loopback(site: Path) -> None:
    result = cli("serve", "--host", "0.0.0.0", "--port", "0", cwd=site)
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "cert.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_file, 0o600)
    return cert_file, key_file


def test_serve_over_https_with_a_certificate(site: Path) -> None:
    cert, key = self_signed(site)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "terminal.cli",
            "platform",
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url == f"https://127.0.0.1:{port}/"
        assert requests.get(url + "v1/health", verify=str(cert), timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "v1/health", timeout=10)  # not in the system's trust store
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        if process.stdout is not None:
            process.stdout.close()
    golden.observed(process.args, process.returncode, url + "\n")  # type: ignore[arg-type]
