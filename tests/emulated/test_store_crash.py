"""Crash safety of the journal: a child process appends rows and prints each seq only after
``append()`` returned; it is killed with SIGKILL at random moments, 100 times. After each kill
the store must open, its chain must verify, every printed (acknowledged) seq must be there, and
the seqs must run without gap or repeat.

Every tenth round kills a child that is still starting — importing, opening a fresh file,
migrating it — and the file must then open as a complete store. Every 25th round the parent
acknowledges and prunes, so later rounds also chain from a prune anchor.

The random delays come from a seeded generator; the seed is in the failure message.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_support import KEY

from offline_store import Store

pytestmark = pytest.mark.emulated

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 100
KILL_AFTER_S = (0.005, 0.080)  # once the child is appending
KILL_STARTING_S = (0.0, 0.300)  # from spawn: import, open, migrate, first appends

CHILD = """
import sys
from offline_store import JournalEntry, Store

store = Store.open(sys.argv[1], journal_key=bytes.fromhex(sys.argv[2]))
sys.stdout.write("ready\\n")
sys.stdout.flush()
token = "ab" * 32
n = 0
while True:
    n += 1
    personal = {"name": "crash test"} if n % 3 == 0 else {}
    row = store.journal.append(
        JournalEntry("transit", "0301", token, "accept", "ok", n, personal, "T-CRASH")
    )
    sys.stdout.write(f"{row.seq}\\n")
    sys.stdout.flush()
"""


def spawn(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), KEY.hex()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def kill(child: subprocess.Popen[bytes], delay: float) -> list[int]:
    """SIGKILL the child after ``delay`` seconds; return the seqs it printed."""
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
    return [int(word) for word in out.split() if word != b"ready"]


def test_sigkill_at_random_moments_loses_no_acknowledged_row(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = tmp_path / "journal.db"
    started = time.monotonic()
    appended = killed_while_starting = pruned_upto = 0
    for round_no in range(ROUNDS):
        where = f"seed {seed}, round {round_no}"
        if round_no % 10 == 9:
            fresh = tmp_path / f"starting-{round_no}.db"
            kill(spawn(fresh), rng.uniform(*KILL_STARTING_S))
            killed_while_starting += 1
            with Store.open(fresh, journal_key=KEY) as store:
                report = store.journal.verify_chain()
                held = [row.seq for row in store.journal.rows()]
            assert report.ok, f"{where}: {report}"
            assert held == list(range(1, len(held) + 1)), where
            continue
        child = spawn(path)
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready == b"ready\n", (
            f"{where}: {ready!r} {child.stderr.read() if child.stderr else ''}"
        )
        printed = kill(child, rng.uniform(*KILL_AFTER_S))
        appended += len(printed)
        with Store.open(path, journal_key=KEY) as store:
            journal = store.journal
            report = journal.verify_chain()
            assert report.ok, f"{where}: {report}"
            held = [row.seq for row in journal.rows()]
            expected = list(range(pruned_upto + 1, pruned_upto + 1 + len(held)))
            assert held == expected, f"{where}: seqs with a gap or a repeat"
            missing = sorted(set(printed) - set(held))
            assert not missing, f"{where}: acknowledged seqs lost: {missing[:10]}"
            if printed:
                assert printed == list(range(printed[0], printed[-1] + 1)), where
                # at most the row committed between the last print and the kill is unprinted
                assert held[-1] - printed[-1] in (0, 1), f"{where}: {held[-1]} vs {printed[-1]}"
            if round_no % 25 == 24 and held:
                journal.acknowledge(held[-1])
                journal.prune()
                pruned_upto = held[-1]
                assert journal.verify_chain().ok, where
    elapsed = time.monotonic() - started
    print(
        f"\ncrash test: {ROUNDS} SIGKILLs ({killed_while_starting} while starting), "
        f"{appended} acknowledged rows, {elapsed:.1f} s, seed {seed}"
    )
    assert appended > ROUNDS, f"seed {seed}: the children hardly appended ({appended} rows)"
