"""End to end, the operator's side of issue 13: ``sscard init`` → the reference platform on
loopback → ``sscard sync --once`` → ``sscard tap`` through a real pcscd; ``sscard doctor`` on
that healthy terminal, then with the platform stopped and with a damaged store; and the
operator commands while another process owns the store: through its admin socket (printing
what the direct path prints), or waiting for the store, or failing clearly.

``sscard doctor`` runs in the test process and is not recorded in the golden files: its lines
hold what changes from run to run by nature (the platform's round trip, the free disk space).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from platform_support import ROOT, PlatformProcess, free_port
from store_support import TOKEN, Platform, entry, public_pem
from support import CATALOGUE, make_card, run_sscard

from offline_store import JournalEntry, Store, load_key_file, load_pepper_file
from terminal.cli import build_parser

pytestmark = pytest.mark.e2e

HOLDER = ROOT / "tests" / "admin_holder.py"


@dataclass
class Terminal:
    folder: Path
    config: Path
    platform: PlatformProcess

    def sscard(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_sscard(*args, "--config", str(self.config))


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    folder = tmp_path / "term"
    port = free_port()
    done = run_sscard(
        "init", "--scenario", "transit", "--platform-url", f"http://127.0.0.1:{port}/", str(folder)
    )
    assert done.returncode == 0, done.stderr
    platform = PlatformProcess(
        f"sqlite:///{folder / 'platform' / 'platform.db'}", folder / "platform" / "keys", port
    )
    platform.start()
    try:
        yield Terminal(folder, folder / "terminal.toml", platform)
    finally:
        platform.stop()


def doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    args = build_parser().parse_args(["doctor", "--config", str(config)])
    status = args.handler(args)
    return status, capsys.readouterr().out.splitlines()


def test_after_init_a_first_sync_and_a_tap_work(terminal: Terminal, cards) -> None:
    synced = terminal.sscard("sync", "--once")
    assert synced.returncode == 0, synced.stdout
    assert "catalogue  ok       8 items for region 440100" in synced.stdout
    cards.insert(make_card("ordinary-2.0"))
    tap = terminal.sscard("tap", "--scenario", "transit", "--format", "json")
    assert tap.returncode == 0, tap.stderr
    decision = json.loads(tap.stdout)
    assert decision["outcome"] == "accept" and decision["seq"] == 1
    verified = terminal.sscard("journal", "verify")
    assert verified.stdout == "journal chain verified: 1 rows\n"
    again = terminal.sscard("sync", "--once")
    assert "upload     ok       1 rows acknowledged" in again.stdout


def test_doctor_finds_a_healthy_terminal_then_each_problem(
    terminal: Terminal, pcscd, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = doctor(terminal.config, capsys)
    failed = [line for line in lines if line.startswith("fail")]
    assert failed == [] and status in (0, 1), lines
    for name in ("settings", "mode", "keys", "pcscd", "readers", "platform", "clock", "store"):
        assert any(line.startswith(f"ok    {name}:") for line in lines), (name, lines)
    assert any(line.startswith("ok    readers: 2: Virtual PCD 00 00") for line in lines)
    warnings = [line for line in lines if line.startswith("warn")]
    assert status == (1 if warnings else 0)
    # every problem says what to do, on the next line
    for n, line in enumerate(lines):
        if line.startswith(("warn", "fail")):
            assert lines[n + 1].startswith("      → "), line

    terminal.platform.stop()
    status, lines = doctor(terminal.config, capsys)
    assert status == 2
    n = next(i for i, line in enumerate(lines) if line.startswith("fail  platform: unreachable"))
    assert lines[n + 1].startswith("      → start the platform or correct [sync] url")

    store = terminal.folder / "store.db"
    store.write_bytes(store.read_bytes()[:4096] + b"\x00garbage" * 2000)
    status, lines = doctor(terminal.config, capsys)
    assert status == 2
    n = next(i for i, line in enumerate(lines) if line.startswith("fail  store:"))
    assert "restore the store from a backup" in lines[n + 1]


def test_doctor_fails_without_pcscd_settings_or_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "terminal.toml"
    config.write_text("[store]\ndatabase = 'missing/store.db'\n")
    status, lines = doctor(config, capsys)
    assert status == 2
    assert any(line.startswith("fail  keys: [store] pepper_file is not set") for line in lines)
    assert any(line.startswith(f"fail  store: no offline store at {tmp_path}") for line in lines)
    config.write_text("[store]\nbogus = 1\n")
    status, lines = doctor(config, capsys)
    assert status == 2 and lines[0].startswith("fail  settings:") and len(lines) == 2


@dataclass
class Holder:
    process: subprocess.Popen[str]

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0
        if self.process.stdout is not None:
            self.process.stdout.close()


def hold(config: Path, mode: str) -> Holder:
    process = subprocess.Popen(
        [sys.executable, str(HOLDER), str(config), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return Holder(process)


def journal_rows(terminal: Terminal, count: int) -> None:
    folder = terminal.folder
    with Store.open(
        folder / "store.db",
        pepper=load_pepper_file(folder / "pepper"),
        journal_key=load_key_file(folder / "journal.key"),
    ) as store:
        for n in range(count):
            store.journal.append(
                JournalEntry(
                    "transit", "0301", TOKEN, "accept", f"ok{n}", 200, terminal_id="DEV-0001"
                )
            )


@pytest.mark.timeout(300)  # a dozen sscard processes, each a few seconds on a loaded machine
def test_operator_commands_ask_the_daemon_and_print_the_same(
    terminal: Terminal, tmp_path: Path
) -> None:
    journal_rows(terminal, 3)
    assert terminal.sscard("catalogue", "load", str(CATALOGUE)).returncode == 0
    # without the daemon, status is the store's own view
    own = terminal.sscard("status")
    assert own.stdout.startswith("daemon: not running\njournal.last_seq: 3\njournal.acked_seq: 0\n")
    read_only = [
        ("journal", "tail", "-n", "2"),
        ("journal", "verify"),
        ("deny", "status", "--scenario", "transit"),
        ("catalogue", "list", "--scenario", "gate"),
    ]
    holder = hold(terminal.config, "serve")
    try:
        through = [terminal.sscard(*command) for command in read_only]
    finally:
        holder.release()
    direct = [terminal.sscard(*command) for command in read_only]
    for via_daemon, own in zip(through, direct, strict=True):
        assert (via_daemon.returncode, via_daemon.stdout) == (own.returncode, own.stdout)
        assert via_daemon.stdout
    holder = hold(terminal.config, "serve")
    try:
        status = terminal.sscard("status")
        synced = terminal.sscard("sync", "--once")
        platform = Platform.generate()
        deny = platform.snapshot(tmp_path, 2, [entry(1), entry(2)])
        (tmp_path / "deny.pem").write_bytes(public_pem(platform.key))
        imported = run_sscard(
            "deny", "import", str(deny), "--public-key", str(tmp_path / "deny.pem"),
            "--db", str(terminal.folder / "store.db"), "--config", str(terminal.config),
        )  # fmt: skip
    finally:
        holder.release()
    assert status.stdout == "daemon: running\nholder: tests/admin_holder.py\n"
    assert synced.returncode == 0 and synced.stdout.endswith("sync: ok\n")
    assert "upload     ok       3 rows acknowledged" in synced.stdout
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == (
        "deny list version 2 (snapshot) imported: 2 entries in the file, 2 cards listed\n"
    )
    after = terminal.sscard("deny", "status")
    assert after.stdout.startswith("version:     2\nprevious:    1\n")


def test_without_a_daemon_the_command_waits_for_the_store_then_fails(terminal: Terminal) -> None:
    holder = hold(terminal.config, "hold")
    try:
        refused = terminal.sscard("journal", "verify", "--wait", "0.5")
        waiting = subprocess.Popen(
            [sys.executable, "-m", "terminal.cli", "journal", "verify", "--wait", "20",
             "--config", str(terminal.config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.5)
    finally:
        holder.release()
    out, err = waiting.communicate(timeout=30)
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"is in use by process {holder.process.pid}, and no daemon answers on" in refused.stderr
    assert "(waited 0.5 s; --wait S waits longer)" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert (waiting.returncode, out, err) == (0, "journal chain verified: 0 rows\n", "")


def test_status_without_a_store_says_so(tmp_path: Path) -> None:
    config = tmp_path / "terminal.toml"
    config.write_text("[store]\ndatabase = 'none.db'\n")
    done = run_sscard("status", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.endswith("there is no offline store there (sscard init)\n")
    assert not (tmp_path / "none.db").exists()


def test_doctor_asks_the_daemon_to_verify_the_journal_it_owns(
    terminal: Terminal, capsys: pytest.CaptureFixture[str]
) -> None:
    journal_rows(terminal, 2)
    holder = hold(terminal.config, "serve")
    try:
        _, served = doctor(terminal.config, capsys)
    finally:
        holder.release()
    assert (
        "ok    store: integrity ok; owned by the daemon, which says: journal chain verified: "
        "2 rows" in served
    )
    holder = hold(terminal.config, "hold")
    try:
        _, held = doctor(terminal.config, capsys)
    finally:
        holder.release()
    n = next(i for i, line in enumerate(held) if line.startswith("warn  store:"))
    assert "the journal was not verified" in held[n]
    capsys.readouterr()
    args = build_parser().parse_args(["doctor", "--json", "--config", str(terminal.config)])
    status = args.handler(args)
    document = json.loads(capsys.readouterr().out)
    assert document["exit_status"] == status
    store = next(c for c in document["checks"] if c["name"] == "store")
    assert store["level"] == "ok" and "journal chain 2 rows" in store["detail"]
