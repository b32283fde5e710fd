"""End to end: ``sscard run`` as a child process, a real pcscd with vpcd, emulated cards.

The daemon is watched from outside only: its systemd notifications (``READY=1``), its metrics
port, its console indicator on stderr and its store file (read-only). Presentations are made
with the vpcd bridge; ``cards.remove_all()`` waits until pcscd sees the reader empty.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import DaemonProcess, TerminalFolder, journal_verify, make_terminal
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


def test_after_a_pcscd_restart_the_next_tap_is_decided_within_2_s(
    daemon: DaemonProcess, terminal: TerminalFolder, cards, pcscd
) -> None:
    pcscd.stop(crash=True)
    deadline = time.monotonic() + 5
    while daemon.metrics().get('sscard_device_up{device="pcscd"}') != 0.0:
        assert time.monotonic() < deadline, daemon.err()[-2000:]
        time.sleep(0.05)
    assert "sscard: ALARM: pcscd is down" in daemon.err()  # the operator's alarm, meanwhile
    pcscd.start()
    back = time.monotonic()
    cards.insert(make_card("ordinary-2.0", t0=True), wait=False)
    assert daemon.wait_rows(1, timeout=5)[0][2:] == ("accept", "ok")
    assert time.monotonic() - back <= 2.0
    assert "sscard: device back: pcscd" in daemon.err()
    assert daemon.metrics()['sscard_device_up{device="pcscd"}'] == 1.0
    assert daemon.stop() == 0


def test_sigterm_during_a_tap_journals_it_and_exits_0(
    daemon: DaemonProcess, terminal: TerminalFolder, cards
) -> None:
    cards.insert(make_card("ordinary-2.0", t0=True, latency_ms=60), wait=False)
    daemon.wait_state("processing")
    daemon.signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=20) == 0
    assert [row[2:] for row in terminal.rows()] == [("accept", "ok")]
    assert daemon.shown() == ["ok"]
    _verify(terminal, 1)


def test_sighup_reloads_and_a_broken_file_leaves_the_old_settings(
    daemon: DaemonProcess, terminal: TerminalFolder, cards
) -> None:
    terminal.config.write_text("[daemon\nscenario = ")
    daemon.signal(signal.SIGHUP)
    _wait_for(daemon, "sscard: reload refused, the old settings stay: ")
    assert "terminal.toml" in daemon.err().split("reload refused")[1]  # the reason names it
    cards.insert(make_card("ordinary-2.0", t0=True))
    assert daemon.wait_rows(1)[0][1:] == ("transit", "accept", "ok")
    cards.remove_all()
    daemon.wait_state("waiting_card")
    terminal.write(scenario="gate")
    daemon.signal(signal.SIGHUP)
    _wait_for(daemon, "event=reloaded scenario=gate")
    cards.insert(make_card("ordinary-2.0", t0=True))
    assert daemon.wait_rows(2)[1][1:] == ("gate", "accept", "ok")
    assert daemon.stop() == 0


def _wait_for(daemon: DaemonProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in daemon.err():
        assert time.monotonic() < deadline, daemon.err()[-2000:]
        time.sleep(0.05)


def test_sigkill_during_taps_loses_no_decision_an_indicator_showed(
    terminal: TerminalFolder, cards
) -> None:
    rng = random.Random()
    for _ in range(4):
        before = len(terminal.rows())
        daemon = DaemonProcess(terminal)
        try:
            daemon.wait_notification("READY=1")
            cards.insert(make_card("ordinary-2.0", t0=True, latency_ms=25), wait=False)
            time.sleep(rng.uniform(0.3, 1.0))  # pcscd sees the card after 0.2-0.4 s
            daemon.process.kill()
            daemon.process.wait()
            cards.remove_all()
            shown = daemon.shown()
        finally:
            daemon.close()
        added = [row[3] for row in terminal.rows()[before:]]
        assert len(added) <= 1
        assert shown == added[: len(shown)]  # journaled before shown, never the reverse
    assert journal_verify(terminal.config) == len(terminal.rows())
    daemon = DaemonProcess(terminal)  # the store's lock died with the process
    try:
        daemon.wait_notification("READY=1")
        assert daemon.stop() == 0
    finally:
        daemon.close()
