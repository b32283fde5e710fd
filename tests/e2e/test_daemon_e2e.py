"""End to end: ``sscard run`` as a child process, a real pcscd with vpcd, emulated cards.

The daemon is watched from outside only: its systemd notifications (``READY=1``), its metrics
port, its console indicator on stderr and its store file (read-only). Presentations are made
with the vpcd bridge; ``cards.remove_all()`` waits until pcscd sees the reader empty.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import DaemonProcess, TerminalFolder, make_terminal
from support import make_card, run_sscard

pytestmark = pytest.mark.e2e


@pytest.fixture
def terminal(tmp_path: Path, pcscd) -> TerminalFolder:
    return make_terminal(tmp_path)


@pytest.fixture
def daemon(terminal: TerminalFolder) -> Iterator[DaemonProcess]:
    process = DaemonProcess(terminal)
    try:
        process.wait_notification("READY=1")
        process.wait_state("waiting_card")
        yield process
    finally:
        process.close()


def _verify(terminal: TerminalFolder, rows: int) -> None:
    done = run_sscard("journal", "verify", "--config", str(terminal.config))
    assert done.returncode == 0, done.stderr
    assert f"{rows} rows" in done.stdout


def test_a_card_left_on_the_reader_is_decided_once(
    daemon: DaemonProcess, terminal: TerminalFolder, cards
) -> None:
    cards.insert(make_card("ordinary-2.0", t0=True))
    assert daemon.wait_rows(1)[0][2:] == ("accept", "ok")
    daemon.wait_state("waiting_removal")
    time.sleep(1.5)  # pcscd polls the reader every 0.4 s: plenty of chances to decide it again
    assert len(terminal.rows()) == 1
    cards.remove_all()
    daemon.wait_state("waiting_card")
    cards.insert(make_card("elderly", t0=True))  # the next presentation is a new decision
    assert daemon.wait_rows(2)[1][2:] == ("accept", "ok")
    assert daemon.stop() == 0
    assert "STOPPING=1" in daemon.drain()
    assert daemon.shown() == ["ok", "ok"]  # the console indicator, after the journal
    assert daemon.notifications.count("WATCHDOG=1") >= 1
    _verify(terminal, 2)


def test_a_card_pulled_mid_read_is_one_card_removed_decision(
    daemon: DaemonProcess, terminal: TerminalFolder, cards
) -> None:
    cards.insert(make_card("ordinary-2.0", t0=True, tear_after=3), wait=False)
    rows = daemon.wait_rows(1)
    assert rows[0][2:] == ("refuse", "card_removed")
    cards.remove_all()
    daemon.wait_state("waiting_card")
    time.sleep(0.5)
    assert len(terminal.rows()) == 1
    assert daemon.stop() == 0
    assert daemon.shown() == ["card_removed"]
    _verify(terminal, 1)
