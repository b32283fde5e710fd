"""Fault campaign: the disk under the journal fills up, then space comes back.

The store lives on a tmpfs of 8 MB (:class:`fault_support.SmallDisk`); ``sscard run`` decides
taps on it through a real pcscd. When a filler file takes the last byte, a tap cannot be
journaled: the terminal refuses it (``journal_unavailable`` on the indicator, the gate shut),
the operator hears one alarm, and nothing journaled before is lost. Once the filler is gone the
next tap is journaled again and the alarm clears. The short form fills the disk once; the long
one (``make faults``) ten times. A store that has not the room even to start is refused with a
one-line reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_support import DaemonProcess, journal_verify, make_terminal
from fault_support import SmallDisk, need_root, size
from support import make_card

pytestmark = pytest.mark.e2e

ROUNDS = size(1, 10)
ALARM = "sscard: ALARM: store is down: decisions cannot be journaled"


def _tap(daemon: DaemonProcess, cards, shown: int) -> str:
    """Present a card, wait for its decision on the indicator, take the card away."""
    cards.insert(make_card("ordinary-2.0", t0=True))
    decided = daemon.wait_shown(shown)[-1]
    cards.remove_all()
    daemon.wait_state("waiting_card")
    return decided


def test_a_full_disk_refuses_what_it_cannot_journal_and_recovers(
    tmp_path: Path, pcscd, cards
) -> None:
    need_root()
    terminal = make_terminal(tmp_path)
    disk = SmallDisk(tmp_path / "disk", 8, seed=(tmp_path / "store.db",))
    store = tmp_path / "disk" / "store.db"
    config_text = terminal.settings().replace('database = "store.db"', 'database = "disk/store.db"')
    terminal.config.write_text(config_text)
    daemon = DaemonProcess(terminal, prefix=disk.prefix)
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
        journaled = 0
        for round_ in range(ROUNDS):
            assert _tap(daemon, cards, 3 * round_ + 1) == "ok"
            journaled += 1
            assert len(disk.rows(store)) == journaled
            disk.fill()
            assert _tap(daemon, cards, 3 * round_ + 2) == "journal_unavailable"
            assert len(disk.rows(store)) == journaled  # nothing lost, none added
            daemon.wait_said(ALARM)
            assert daemon.err().count(ALARM) == round_ + 1  # once per outage
            assert daemon.metrics()['sscard_device_up{device="store"}'] == 0.0
            disk.free()
            assert _tap(daemon, cards, 3 * round_ + 3) == "ok"
            journaled += 1
            daemon.wait_said("sscard: device back: store")
            assert daemon.metrics()['sscard_device_up{device="store"}'] == 1.0
        rows = disk.rows(store)
        assert [row[2:] for row in rows] == [("accept", "ok")] * journaled
        assert "Traceback" not in daemon.err()
        assert daemon.stop() == 0
    finally:
        daemon.close()
        try:
            assert journal_verify(terminal.config, disk.prefix) == journaled
        finally:
            disk.close()


def test_a_store_on_a_full_disk_is_refused_at_start_with_one_line(tmp_path: Path, pcscd) -> None:
    need_root()
    terminal = make_terminal(tmp_path)
    disk = SmallDisk(tmp_path / "disk", 1)
    try:
        disk.fill()
        config_text = terminal.settings().replace(
            'database = "store.db"', 'database = "disk/store.db"'
        )
        terminal.config.write_text(config_text)
        daemon = DaemonProcess(terminal, prefix=disk.prefix)
        try:
            assert daemon.process.wait(timeout=30) != 0
            err = daemon.err()
            assert "Traceback" not in err
            assert "sscard: " in err and "store.db" in err, err[-2000:]
        finally:
            daemon.close()
    finally:
        disk.close()
