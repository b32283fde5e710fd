"""Fault campaign: ``sscard run`` killed with SIGKILL during taps, and pcscd restarted under it.

Taps follow each other on one reader; at every eighth, the daemon is killed at a random
moment while the card is being read (the card answers each APDU 25 ms late, so the kill lands
before, during or just after the read) and started again; every :data:`PCSCD_EVERY` taps
pcscd itself crashes and comes back. Throughout: every tap is journaled at most once, a tap
the daemon lived through exactly once and accepted; a killed daemon showed only what it had
journaled, in order (never an indicator before its row); each daemon starts on the store its
killed predecessor left (the owner lock dies with the process); and the whole journal
verifies at the end. The short form makes 16 taps, two kills, one pcscd restart (pcscd
polls its readers every 0.4 s, so a tap takes about a second); the long one, under
``make faults``, 10,000.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from daemon_support import DaemonProcess, TerminalFolder, journal_verify, make_terminal
from fault_support import seeded, size
from support import make_card

pytestmark = pytest.mark.e2e

TAPS = size(16, 10_000)
KILL_ONE_IN = 8
PCSCD_EVERY = size(12, 500)


def _start(terminal: TerminalFolder) -> DaemonProcess:
    daemon = DaemonProcess(terminal)
    daemon.wait_notification("READY=1")
    daemon.wait_state("waiting_card", timeout=20)
    return daemon


def test_sigkill_and_pcscd_restarts_during_taps_lose_and_double_nothing(
    tmp_path: Path, pcscd, cards
) -> None:
    terminal = make_terminal(tmp_path)
    seed, rng = seeded()
    daemon = _start(terminal)
    born = 0  # journal rows when this daemon started
    tally = {"lived": 0, "killed": 0, "killed_journaled": 0, "pcscd_restarts": 0}
    try:
        for tap in range(TAPS):
            where = f"seed {seed} tap {tap}"
            before = len(terminal.rows())
            if tap and tap % PCSCD_EVERY == 0:
                pcscd.stop(crash=True)
                pcscd.start()
                tally["pcscd_restarts"] += 1
                daemon.wait_state("waiting_card", timeout=20)
            if tap % KILL_ONE_IN == KILL_ONE_IN - 1:
                cards.insert(make_card("ordinary-2.0", t0=True, latency_ms=25), wait=False)
                time.sleep(rng.uniform(0.2, 0.9))  # pcscd sees the card after 0.2-0.4 s
                daemon.process.kill()
                daemon.process.wait()
                cards.remove_all()
                shown = daemon.shown()
                daemon.close()
                lived = [row[3] for row in terminal.rows()[born:]]
                assert len(lived) - len(shown) in (0, 1), where  # journaled, then shown
                assert shown == lived[: len(shown)], where
                added = terminal.rows()[before:]
                assert len(added) <= 1, where
                tally["killed"] += 1
                tally["killed_journaled"] += len(added)
                born = len(terminal.rows())
                daemon = _start(terminal)
                continue
            cards.insert(make_card("ordinary-2.0", t0=True), wait=False)
            assert daemon.wait_rows(before + 1, timeout=20)[-1][2:] == ("accept", "ok"), where
            cards.remove_all()
            daemon.wait_state("waiting_card", timeout=20)
            assert len(terminal.rows()) == before + 1, where
            tally["lived"] += 1
        assert daemon.stop() == 0
        rows = terminal.rows()
        assert daemon.shown() == [row[3] for row in rows[born:]]
        assert "Traceback" not in daemon.err()
    finally:
        daemon.close()
    assert len(rows) == tally["lived"] + tally["killed_journaled"]
    assert journal_verify(terminal.config) == len(rows)
    print(f"seed {seed}: {TAPS} taps, {tally}")
