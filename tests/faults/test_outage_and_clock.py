"""Fault campaign: the platform is down for a simulated day while the terminal's clock jumps,
then comes back behind a lossy proxy.

A terminal journals a day of taps (1,440 in the short form, one a minute; 86,400 under
``make faults``, one a second) on a simulated clock: the wall clock jumps back two hours in the
morning and forward three hours in the afternoon, while the monotonic clock only moves on.
Every four simulated hours a sync finds the platform down: the rows stay pending. The platform
then comes back behind :class:`proxies.ChaosProxy` (refused, delayed, cut and reset
connections): the day's backlog drains, every row exactly once (the platform's own chain walk
agrees). Through the clock jumps the rows keep their order — seq and the monotonic clock rise
together — and the chain verifies. A terminal clock off from the platform's by more than
``max_clock_offset_s`` raises the clock alarm, and a sync after it uploads nothing twice.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import seeded, size
from proxies import ChaosProxy
from store_support import Clock
from sync_support import (
    TERMINAL_ID,
    TOKEN,
    PlatformProcess,
    TerminalSetup,
    register,
    served_platform,
)

from offline_store import JournalEntry, Store
from sync.client import SyncClient
from sync.reports import StepStatus
from sync.transport import RetryPolicy

pytestmark = pytest.mark.e2e

TAPS = size(1_440, 86_400)
DAY_S = 86_400
JUMPS = {DAY_S // 3: -2 * 3600, 2 * DAY_S // 3: 3 * 3600}  # simulated second → wall-clock jump
SYNC_EVERY_S = 4 * 3600
ONE_TRY = RetryPolicy(attempts=1, base_s=0.05, cap_s=0.05)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[PlatformProcess]:
    with served_platform(tmp_path / "platform") as served:
        yield served


class SimulatedDay:
    """The terminal's clocks: a wall clock that jumps, a monotonic one that never does."""

    def __init__(self, start: float) -> None:
        self.wall = Clock(start)
        self.elapsed_ns = 0

    def monotonic(self) -> int:
        return 10**12 + self.elapsed_ns

    def advance(self, seconds: int) -> None:
        self.wall.now += seconds
        self.elapsed_ns += seconds * 10**9


def _journal_day(store: Store, client: SyncClient, day: SimulatedDay) -> int:
    """Journal the day's taps, trying a sync every four hours (it fails: the platform is down);
    the failed syncs."""
    entry = JournalEntry("transit", "0301", TOKEN, "accept", "ok", 200, terminal_id=TERMINAL_ID)
    step = DAY_S // TAPS
    failed = 0
    store._db.conn.execute("PRAGMA synchronous = OFF")  # the fill's durability is not tested here
    for second in range(0, DAY_S, step):
        day.advance(step)
        day.wall.now += JUMPS.get(second, 0)
        store.journal.append(entry)
        if second % SYNC_EVERY_S == 0:
            report = client.sync_once()
            failed += not report.ok
    store._db.conn.execute("PRAGMA synchronous = FULL")
    return failed


def test_a_day_offline_drains_exactly_once_through_a_lossy_proxy_across_clock_jumps(
    platform: PlatformProcess, tmp_path: Path
) -> None:
    terminal: TerminalSetup = register(platform, tmp_path / "terminal", TERMINAL_ID)
    day = SimulatedDay(time.time() - DAY_S)
    platform.kill()  # the outage starts before the day's first tap
    with Store.open(terminal.store_path, clock=day.wall, monotonic=day.monotonic) as store:
        down = SyncClient(terminal.config(), store, policy=ONE_TRY)
        assert _journal_day(store, down, day) == DAY_S // SYNC_EVERY_S
        assert store.journal.backlog().pending == TAPS
        rows = list(store.journal.rows())
        assert [row.seq for row in rows] == list(range(1, TAPS + 1))
        assert all(a.monotonic_ns < b.monotonic_ns for a, b in itertools.pairwise(rows))
        assert any(a.wall_time > b.wall_time for a, b in itertools.pairwise(rows))
        assert store.journal.verify_chain().ok

        platform.restart()
        seed, _ = seeded(2027)
        proxy = ChaosProxy(("127.0.0.1", platform.port), seed=seed)
        try:
            lossy = terminal.client(store, url=proxy.url, batch_rows=200, prune=False)
            report = lossy.upload()
        finally:
            proxy.close()
        assert (report.acked_seq, store.journal.backlog().pending) == (TAPS, 0)
        assert {"refuse", "cut_request", "cut_answer"} & set(proxy.fates), proxy.fates

        # the terminal's clock now runs 200 s ahead of the platform's: the alarm, and nothing
        # uploaded again
        ahead = terminal.client(store, prune=False)
        ahead.clock = ahead.transport.clock = lambda: time.time() + 200
        again = ahead.sync_once()
        time_step = again.step("time")
        assert time_step is not None and time_step.status is StepStatus.ALARM, again.steps
        upload = again.step("upload")
        assert upload is not None and "0 rows" in upload.detail, again.steps
        assert store.journal.verify_chain().ok
        expected = [(row.seq, row.hash) for row in store.journal.rows()]
    assert platform.journal(TERMINAL_ID) == expected
    count = len(expected)
    line = f"{TERMINAL_ID}: {count} rows (counted {count}), seq 1-{count}, ack {count}: ok"
    assert line in platform.verify()
