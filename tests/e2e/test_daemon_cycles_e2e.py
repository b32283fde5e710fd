"""End to end: presentations of random length to ``sscard run``, some shorter than pcscd's poll.

Each cycle inserts a card, leaves it for a random dwell, pulls it, waits until pcscd sees the
reader empty and the daemon's reader is waiting for a card again, then looks at the journal. A
presentation long enough to read (:data:`LONG_S`: pcscd sees a card within 0.4 s, a read takes
tens of ms) is decided exactly once, and accepted; a shorter one at most once, accepted or as a
clean ``card_removed``. The console indicator showed exactly the journal's rows, and the
journal verifies. ``$SSCARD_DAEMON_CYCLES`` sets the count (``make faults``: 1,000);
``$SSCARD_DAEMON_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from daemon_support import DaemonProcess, journal_verify, make_terminal
from support import make_card

pytestmark = pytest.mark.e2e

CYCLES = int(os.environ.get("SSCARD_DAEMON_CYCLES", "24"))
LONG_S = 0.55
SHORT = (0.005, 0.35)  # some far below pcscd's 0.4 s poll, some around it
LONG = (LONG_S, 0.7)


def test_random_presentations_are_each_decided_at_most_once_long_ones_exactly_once(
    tmp_path: Path, pcscd, cards
) -> None:
    seed = int(os.environ.get("SSCARD_DAEMON_SEED", str(time.time_ns())))
    rng = random.Random(seed)
    terminal = make_terminal(tmp_path)
    daemon = DaemonProcess(terminal)
    tally = {"long": 0, "short_decided": 0, "short_unseen": 0, "short_removed": 0}
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
        for cycle in range(CYCLES):
            long = rng.random() < 0.6
            dwell = rng.uniform(*(LONG if long else SHORT))
            before = len(terminal.rows())
            cards.insert(make_card("ordinary-2.0", t0=True), wait=False)
            time.sleep(dwell)
            cards.remove_all()  # waits until pcscd sees the reader empty
            daemon.wait_state("waiting_card")
            added = terminal.rows()[before:]
            where = f"seed {seed} cycle {cycle} dwell {dwell:.3f} s: {added}"
            if long:
                assert [row[2:] for row in added] == [("accept", "ok")], where
                tally["long"] += 1
            else:
                assert len(added) <= 1, where
                assert all(row[3] in ("ok", "card_removed") for row in added), where
                if not added:
                    tally["short_unseen"] += 1
                elif added[0][3] == "card_removed":
                    tally["short_removed"] += 1
                else:
                    tally["short_decided"] += 1
        assert daemon.stop() == 0
        rows = terminal.rows()
        assert daemon.shown() == [row[3] for row in rows]  # every decision shown once, in order
        print(f"seed {seed}: {CYCLES} presentations, {len(rows)} decisions, {tally}")
    finally:
        daemon.close()
    assert journal_verify(terminal.config) == len(rows)
