"""End to end: ``sscard run`` syncing with the reference platform on loopback while it decides.

The terminal is registered on the platform and provisioned once with ``sscard sync --once``
(pepper, lists, catalogue); then the daemon takes taps through a real pcscd and its sync thread
uploads them every second. The platform ends up with exactly the journaled rows, once each,
across a restart of the daemon; a card the platform lists as lost is refused after the next
sync, without a restart.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))  # sync_support

from daemon_support import DaemonProcess, TerminalFolder, free_port
from support import CATALOGUE, READER0, TEST_ROOTS, make_card, run_sscard
from sync_support import PlatformProcess, register

from drivers.keyfile import private_copy

pytestmark = pytest.mark.e2e

TERMINAL_ID = "T-RUN-01"
LOST_CARD = ("440100", "A01023450")  # the persona ordinary-2.0
SYNC_DONE = '"event": "sync_done", "exit_status": "0"'


def _terminal(platform: PlatformProcess, folder: Path) -> TerminalFolder:
    platform.run("catalogue", "load", str(CATALOGUE))
    setup = register(platform, folder, TERMINAL_ID)
    done = setup.sync_once()
    assert done.returncode == 0, done.stdout + done.stderr
    private_copy(TEST_ROOTS, folder / "roots.toml")
    world = TerminalFolder(folder, setup.config_file, free_port())
    with setup.config_file.open("a", encoding="utf-8") as settings:
        settings.write(
            '[security]\nsoft_sam_keys = "roots.toml"\n'
            "[indicators]\nconsole = true\nvoice = false\n"
            f'[daemon]\nreaders = ["{READER0}"]\nsync_interval_s = 0.5\n'
            f"metrics_port = {world.metrics_port}\n"
        )
    return world


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
        syncs = daemon.err().count(SYNC_DONE)
        platform.run("deny", "add", ":".join(LOST_CARD), "--reason", "lost", keys=True)
        deadline = time.monotonic() + 15
        while daemon.err().count(SYNC_DONE) < syncs + 2:  # a whole cycle after the listing
            assert time.monotonic() < deadline, daemon.err()[-3000:]
            time.sleep(0.1)
        assert _tap(daemon, cards, "ordinary-2.0", 2) == "deny_lost"
        assert daemon.stop() == 0
    finally:
        daemon.close()
