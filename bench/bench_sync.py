"""Benchmark: draining a journal backlog to the reference platform on loopback, in batches,
against one request per row measured in the same run.

A platform is initialised in a temporary folder and served by ``sscard platform serve`` (a
child process, as in production); a terminal is registered on it. The batched drain uploads
``--rows`` journal rows (100 000 by default: a day offline) with ``SyncClient.upload`` and the
configured batch size; the baseline uploads ``--single-rows`` rows of a second terminal with
``batch_rows = 1``, and its rate is extrapolated to the whole backlog. Both stores are filled
before the clock starts. Nothing is asserted: this prints numbers (goal: ≥ 20 000 rows/s
batched).

Run: ``.venv/bin/python bench/bench_sync.py [--rows N] [--single-rows N] [--batch-rows N]``
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from shape import Row, row

from offline_store import JournalEntry, Store
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.transport import Credentials

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"
GOAL_ROWS_PER_S = 20_000  # issue 16 (issue 9 asked for 10 000)


def platform_cli(*args: str) -> list[str]:
    """The argv of ``sscard platform ARGS…`` ."""
    return [sys.executable, "-m", "terminal.cli", "platform", *args]


def register(folder: Path, db: Path, terminal_id: str) -> Credentials:
    """``platform terminal add`` and the credentials it printed and wrote."""
    key_file = folder / f"{terminal_id}.key"
    done = subprocess.run(
        platform_cli(
            "terminal", "add", terminal_id, "--key-out", str(key_file), "--db", str(db)
        ),
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    key_id = re.search(r'key_id = "([^"]+)"', done.stdout)
    assert key_id, done.stdout
    return Credentials(terminal_id, key_id.group(1), bytes.fromhex(key_file.read_text().strip()))


def fill(path: Path, rows: int, terminal_id: str) -> None:
    """Append rows through the store's API (``synchronous = OFF`` for the fill only)."""
    entry = JournalEntry("transit", "0301", TOKEN, "accept", "ok", 200, terminal_id=terminal_id)
    with Store.open(path) as store:
        store._db.conn.execute("PRAGMA synchronous = OFF")
        for _ in range(rows):
            store.journal.append(entry)
        store._db.checkpoint()


def serve(db: Path, keys: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the platform on a free loopback port; return the process and its URL."""
    process = subprocess.Popen(
        platform_cli("serve", "--db", str(db), "--keys", str(keys), "--port", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(url + "v1/health", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the platform did not start")
        time.sleep(0.05)


def drain(path: Path, url: str, credentials: Credentials, batch_rows: int) -> tuple[int, float]:
    """Upload the store's backlog; return (rows acknowledged, seconds)."""
    config = SyncConfig(url=url, credentials=credentials, batch_rows=batch_rows, prune=False)
    with Store.open(path) as store, SyncClient(config, store) as client:
        started = time.perf_counter()
        report = client.upload()
        seconds = time.perf_counter() - started
        assert store.journal.backlog().pending == 0
    return report.acknowledged, seconds


def run(rows: int, single_rows: int, batch_rows: int, say: bool = True) -> tuple[float, float]:
    """Drain a batched backlog and a one-row-per-request one; returns both rates, rows/s.

    :param rows: the batched backlog
    :param single_rows: the rows sent one per request
    :param batch_rows: rows per batch
    :param say: print progress and the rates
    """
    folder = Path(tempfile.mkdtemp(prefix="sscard-bench-sync-"))
    process = None
    try:
        db, keys = folder / "platform.db", folder / "keys"
        subprocess.run(
            platform_cli("init", "--db", str(db), "--keys", str(keys), "--test-keys"),
            capture_output=True, check=True, cwd=ROOT,
        )  # fmt: skip
        batched_id, single_id = "BENCH-BATCHED", "BENCH-SINGLE"
        batched, single = register(folder, db, batched_id), register(folder, db, single_id)
        if say:
            print(f"filling {rows} + {single_rows} journal rows …", flush=True)
        fill(folder / "batched.db", rows, batched_id)
        fill(folder / "single.db", single_rows, single_id)
        process, url = serve(db, keys)
        done, seconds = drain(folder / "batched.db", url, batched, batch_rows)
        batched_rate = done / seconds
        if say:
            print(
                f"batched ({batch_rows} rows/request): {done} rows in {seconds:.2f} s = "
                f"{batched_rate:,.0f} rows/s"
            )
        done, seconds = drain(folder / "single.db", url, single, 1)
        single_rate = done / seconds
        if say:
            print(
                f"one request per row: {done} rows in {seconds:.2f} s = {single_rate:,.0f} rows/s "
                f"(extrapolated: {rows / single_rate:.0f} s for {rows} rows)"
            )
        return batched_rate, single_rate
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


def measure(quick: bool) -> list[Row]:
    """Backlog drain rate against issue 16's ≥ 20 000 rows/s, and against one row per request.

    :param quick: 5 000 and 100 rows instead of 100 000 and 500
    """
    rows, single_rows = (5_000, 100) if quick else (100_000, 500)
    batched, single = run(rows, single_rows, 2000, say=False)
    return [
        row(
            "sync",
            f"backlog drain, {rows:,} rows in batches of 2000",
            batched,
            "rows/s",
            goal=GOAL_ROWS_PER_S,
            comparison=">=",
            note="platform on loopback, SQLite",
        ),
        row(
            "sync",
            "backlog drain, one request per row (baseline)",
            single,
            "rows/s",
            note=f"{single_rows} rows",
        ),
        row("sync", "batched ÷ one request per row", batched / single, "×"),
    ]


def main() -> None:
    """Run the benchmark and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="backlog rows (default 100000)")
    parser.add_argument(
        "--single-rows", type=int, default=500, help="rows sent one per request (default 500)"
    )
    parser.add_argument("--batch-rows", type=int, default=2000, help="rows per batch (2000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    batched_rate, single_rate = run(args.rows, args.single_rows, args.batch_rows)
    verdict = "meets" if batched_rate >= GOAL_ROWS_PER_S else "misses"
    print(
        f"ratio: batched is {batched_rate / single_rate:.0f}× one request per row; "
        f"{verdict} the goal of {GOAL_ROWS_PER_S:,} rows/s"
    )


if __name__ == "__main__":
    main()
