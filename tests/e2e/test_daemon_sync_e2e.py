"""End to end: ``sscard run`` syncing with the reference platform on loopback while it decides.

The terminal is registered on the platform and provisioned once with ``sscard sync --once``
(pepper, lists, catalogue); then the daemon takes taps through a real pcscd and its sync thread
uploads them every second. The platform ends up with exactly the journaled rows, once each,
across a restart of the daemon; a card the platform lists as lost is refused after the next
sync, without a restart. Every operator command of issue 13 reaches the daemon through its
admin socket while taps go on, without stopping the validator.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))  # sync_support

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from daemon_support import DaemonProcess, TerminalFolder
from store_support import header, public_pem, write_list
from support import CATALOGUE, make_card, run_sscard
from sync_support import PlatformProcess, daemon_terminal

from config.settings import load_settings
from offline_store import load_pepper_file
from offline_store.identity import canonical_card_id, keyed_card_hash

pytestmark = pytest.mark.e2e

TERMINAL_ID = "T-RUN-01"
LOST_CARD = ("440100", "A01023450")  # the persona ordinary-2.0
SYNC_DONE = '"event": "sync_done", "exit_status": "0"'


def _terminal(platform: PlatformProcess, folder: Path) -> TerminalFolder:
    return daemon_terminal(platform, folder, TERMINAL_ID)


def _wait_uploaded(platform: PlatformProcess, rows: int, daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + 15
    while len(platform.journal(TERMINAL_ID)) < rows:
        assert time.monotonic() < deadline, daemon.err()[-3000:]
        time.sleep(0.1)


def _tap(daemon: DaemonProcess, cards, persona: str, rows: int) -> str:
    cards.insert(make_card(persona, t0=True))
    daemon.wait_shown(rows)
    cards.remove_all()
    daemon.wait_state("waiting_card")
    return daemon.shown()[-1]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[PlatformProcess]:
    """The reference platform as a child process (as tests/sync/conftest.py serves it)."""
    served = PlatformProcess(tmp_path / "platform")
    served.init()
    served.start()
    yield served
    served.stop()


def test_the_platform_holds_exactly_the_journaled_rows_once_across_restarts(
    platform: PlatformProcess, tmp_path: Path, cards
) -> None:
    terminal = _terminal(platform, tmp_path / "terminal")
    for round_ in range(2):
        daemon = DaemonProcess(terminal)
        try:
            daemon.wait_notification("READY=1")
            daemon.wait_state("waiting_card")
            shown_before = 2 * round_
            for i, persona in enumerate(("ordinary-2.0", "elderly")):
                assert _tap(daemon, cards, persona, i + 1) == "ok"
            _wait_uploaded(platform, shown_before + 2, daemon)
            metrics = daemon.metrics()
            assert metrics['sscard_syncs_total{result="ok"}'] >= 1
            assert daemon.stop() == 0
        finally:
            daemon.close()
    stored = platform.journal(TERMINAL_ID)
    assert [seq for seq, _ in stored] == [1, 2, 3, 4]  # each row once, none lost
    assert "ok" in platform.verify()
    done = run_sscard("journal", "verify", "--config", str(terminal.config))
    assert done.returncode == 0, done.stderr


def test_a_card_listed_lost_at_the_platform_is_refused_after_the_next_sync(
    platform: PlatformProcess, tmp_path: Path, cards
) -> None:
    terminal = _terminal(platform, tmp_path / "terminal")
    daemon = DaemonProcess(terminal)
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
        assert _tap(daemon, cards, "ordinary-2.0", 1) == "ok"
        platform.run("deny", "add", ":".join(LOST_CARD), "--reason", "lost", keys=True)
        # counted once the listing is committed: while the platform's command starts (seconds on
        # a loaded machine) the daemon's 0.5 s cycles go on, and two could end before it commits
        syncs = daemon.err().count(SYNC_DONE)
        deadline = time.monotonic() + 15
        while daemon.err().count(SYNC_DONE) < syncs + 2:  # a whole cycle after the listing
            assert time.monotonic() < deadline, daemon.err()[-3000:]
            time.sleep(0.1)
        assert _tap(daemon, cards, "ordinary-2.0", 2) == "deny_lost", daemon.err()[-3000:]
        assert daemon.stop() == 0
    finally:
        daemon.close()


def _operator(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An operator command in a child process; not a golden call: while taps go on, what it
    prints (rows, counts) depends on the moment."""
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.timeout(300)  # a dozen sscard processes beside the taps on a loaded machine
def test_operator_commands_reach_the_daemon_while_taps_happen(
    platform: PlatformProcess, tmp_path: Path, cards
) -> None:
    terminal = _terminal(platform, tmp_path / "terminal")
    text = terminal.config.read_text(encoding="utf-8")
    terminal.config.write_text(text.replace("sync_interval_s = 0.5", "sync_interval_s = 0"))
    settings = load_settings(terminal.config)
    assert settings.pepper_file is not None
    lost = keyed_card_hash(
        load_pepper_file(settings.pepper_file), canonical_card_id("440100", "A07603317")
    )  # the persona elderly
    signer = Ed25519PrivateKey.generate()
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    deny = write_list(
        tmp_path / "deny.jsonl",
        header("snapshot", 1000, 1, created=created),
        [{"hash": lost, "reason": "lost", "effective": "2026-11-20"}],
        signer,
    )
    (tmp_path / "deny.pem").write_bytes(public_pem(signer))
    daemon = DaemonProcess(terminal)
    stop = threading.Event()
    shown: list[str] = []

    def taps() -> None:
        while not stop.is_set():
            shown.append(_tap(daemon, cards, "ordinary-2.0", len(shown) + 1))

    tapping = threading.Thread(target=taps)
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
        tapping.start()
        config = terminal.config
        status = _operator(config, "status")
        assert status.returncode == 0 and "threads.worker: True" in status.stdout, status.stderr
        synced = _operator(config, "sync", "--once")
        assert synced.returncode == 0 and synced.stdout.endswith("sync: ok\n"), synced.stdout
        # the sync pruned what it uploaded: the tail needs a tap decided since (on a loaded
        # machine none may have come before the command); the first one seen may have been
        # journaled before the prune, the second began after the sync had ended
        after_sync, deadline = len(shown), time.monotonic() + 30
        while len(shown) < after_sync + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tail = _operator(config, "journal", "tail", "-n", "1")
        assert tail.returncode == 0 and len(tail.stdout.splitlines()) == 1, tail.stderr
        verified = _operator(config, "journal", "verify")
        assert verified.returncode == 0 and "journal chain verified" in verified.stdout
        loaded = _operator(config, "catalogue", "load", str(CATALOGUE))
        assert loaded.returncode == 0 and "catalogue loaded" in loaded.stdout, loaded.stderr
        listed = _operator(config, "catalogue", "list", "--scenario", "transit")
        assert listed.returncode == 0 and listed.stdout, listed.stderr
        imported = _operator(config, "deny", "import", str(deny),
                             "--public-key", str(tmp_path / "deny.pem"))  # fmt: skip
        assert imported.returncode == 0, imported.stdout + imported.stderr
        deny_status = _operator(config, "deny", "status", "--scenario", "transit")
        assert deny_status.stdout.startswith("version:     1000\n"), deny_status.stdout
        stop.set()
        tapping.join(60)
        assert shown and set(shown) == {"ok"}  # every tap during the commands was decided
        assert _tap(daemon, cards, "elderly", len(shown) + 1) == "deny_lost"  # the import holds
        assert daemon.stop() == 0
    finally:
        stop.set()
        if tapping.is_alive():
            tapping.join(60)
        daemon.close()
    assert _operator(terminal.config, "journal", "verify").returncode == 0
