"""``make soak`` (not in CI): ``sscard run`` taking a tap a second for an hour.

One tap a second (at most: pcscd's 0.4 s poll makes a presentation last about a second)
through a real pcscd, for ``$SSCARD_SOAK_SECONDS`` (``make soak``: 3,600; ``SOAK_SECONDS``
shortens it). Every minute the daemon's resident memory (``VmRSS``) and open descriptors are
printed. At the end every tap is journaled once, the journal verifies, and the open
descriptors did not grow after the first minute (a leak of one per tap would show in
minutes); the memory is printed for the README, not judged here (``bench/`` owns the goals).
Without ``$SSCARD_SOAK_SECONDS`` the test is skipped: ``make test`` does not run it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from daemon_support import DaemonProcess, journal_verify, make_terminal
from support import make_card

pytestmark = pytest.mark.e2e

SECONDS = int(os.environ.get("SSCARD_SOAK_SECONDS", "0"))
REPORT_EVERY_S = 60
FD_SLACK = 4  # a reconnect may hold a socket or two for a while


def _resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not SECONDS, reason="make soak runs it ($SSCARD_SOAK_SECONDS unset)")
def test_an_hour_at_a_tap_a_second(tmp_path: Path, pcscd, cards) -> None:
    terminal = make_terminal(tmp_path)
    daemon = DaemonProcess(terminal)
    pid = daemon.process.pid
    samples: list[tuple[int, int, float, int]] = []  # (second, taps, MB, open files)
    taps = 0
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
        start = time.monotonic()
        samples.append((0, 0, _resident_mb(pid), _open_files(pid)))
        print(f"\nsoak t=0s taps=0 rss={samples[0][2]:.1f} MB open_files={samples[0][3]}")
        next_report = start + REPORT_EVERY_S
        while (now := time.monotonic()) - start < SECONDS:
            cards.insert(make_card("ordinary-2.0", t0=True), wait=False)
            daemon.wait_rows(taps + 1, timeout=20)
            taps += 1
            cards.remove_all()
            daemon.wait_state("waiting_card", timeout=20)
            if time.monotonic() >= next_report:
                sample = (round(time.monotonic() - start), taps, _resident_mb(pid),
                          _open_files(pid))  # fmt: skip
                samples.append(sample)
                print(f"soak t={sample[0]}s taps={taps} rss={sample[2]:.1f} MB "
                      f"open_files={sample[3]}", flush=True)  # fmt: skip
                next_report += REPORT_EVERY_S
            time.sleep(max(0.0, now + 1.0 - time.monotonic()))
        assert daemon.stop() == 0
    finally:
        daemon.close()
    assert len(terminal.rows()) == taps
    assert journal_verify(terminal.config) == taps
    settled = [files for _, _, _, files in samples[1:]] or [samples[0][3]]
    assert max(settled) - min(settled) <= FD_SLACK, samples
    peak = max(mb for _, _, mb, _ in samples)
    print(f"soak done: {taps} taps in {SECONDS} s, rss {samples[0][2]:.1f} → "
          f"{samples[-1][2]:.1f} MB (peak {peak:.1f}), open files {samples[0][3]} → "
          f"{samples[-1][3]}")  # fmt: skip
