"""Benchmark: durable journal appends per second — hash chain, AES-GCM personal fields, a
``synchronous=FULL`` commit each — against a bare fsync'd sqlite3 WAL insert of the same rows.

The store appends a block of rows through :meth:`Journal.append` (each with two encrypted
personal fields, as a hotel registration keeps); the baseline then inserts exactly those rows,
read back from the store, into a table of the same schema (same columns, primary key, unique
uuid and index) in a bare sqlite3 database in WAL mode with ``synchronous = FULL``, one
autocommit ``INSERT`` per row. Blocks alternate so that a busy machine slows both alike. Issue
16's goal: the chain and the encryption cost ≤ 25 % over the bare insert. Nothing is asserted.

Run: ``.venv/bin/python bench/bench_journal.py [--rows N] [--blocks N]`` (files in a temporary
folder on the disk of ``TMPDIR``: on a tmpfs, fsync costs nothing and the ratio means little).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from shape import Row, print_rows, row

from offline_store import JournalEntry, Store

GOAL_PERCENT = 25.0
TOKEN = "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"
ENTRY = JournalEntry(
    "hotel",
    "0601",
    TOKEN,
    "accept",
    "ok",
    None,
    personal={"name": "测试姓名", "ssn": "110000199001011234"},  # synthetic
    terminal_id="T-BENCH-01",
)


def bare_table(store_path: Path, bare_path: Path) -> sqlite3.Connection:
    """A bare database with the journal table and its indexes as the store created them.

    :param store_path: the store file
    :param bare_path: the new database
    """
    with sqlite3.connect(store_path) as source:
        schema = [
            sql
            for (sql,) in source.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'journal' AND sql IS NOT NULL"
            )
        ]
    source.close()
    bare = sqlite3.connect(bare_path, isolation_level=None)  # autocommit: one commit per INSERT
    bare.execute("PRAGMA journal_mode = WAL")
    bare.execute("PRAGMA synchronous = FULL")
    for sql in schema:
        bare.execute(sql)
    return bare


def run(rows: int, blocks: int) -> dict[str, float]:
    """Seconds per row for the store and for the bare insert, alternating blocks.

    :param rows: rows per block
    :param blocks: blocks of each
    """
    work = Path(tempfile.mkdtemp(prefix="sscard-bench-journal-"))
    store_times: list[float] = []
    bare_times: list[float] = []
    try:
        with Store.open(work / "store.db", journal_key=os.urandom(32)) as store:
            bare = bare_table(work / "store.db", work / "bare.db")
            reader = sqlite3.connect(work / "store.db")
            try:
                for block in range(blocks):
                    started = time.perf_counter()
                    for _ in range(rows):
                        store.journal.append(ENTRY)
                    store_times.append((time.perf_counter() - started) / rows)
                    same = reader.execute(
                        "SELECT * FROM journal WHERE seq > ? ORDER BY seq", (block * rows,)
                    ).fetchall()
                    marks = ", ".join("?" * len(same[0]))
                    started = time.perf_counter()
                    for values in same:
                        bare.execute(f"INSERT INTO journal VALUES ({marks})", values)
                    bare_times.append((time.perf_counter() - started) / rows)
            finally:
                reader.close()
                bare.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    store_each, bare_each = statistics.median(store_times), statistics.median(bare_times)
    return {"store": store_each, "bare": bare_each, "cost": 100 * (store_each / bare_each - 1)}


def measure(quick: bool) -> list[Row]:
    """Appends/s of the journal and of the bare insert, and the journal's extra cost in %.

    :param quick: 3 blocks of 50 rows instead of 5 of 400
    """
    return report(50, 3) if quick else report(400, 5)


def report(rows: int, blocks: int) -> list[Row]:
    """The rows of :func:`measure`, for any block size and count.

    :param rows: rows per block
    :param blocks: blocks of each
    """
    result = run(rows, blocks)
    each = f"{result['store'] * 1e3:.2f} vs {result['bare'] * 1e3:.2f} ms/row"
    return [
        row(
            "journal",
            "journal append (chain + AES-GCM + fsync)",
            1 / result["store"],
            "rows/s",
            note=f"median of {blocks} blocks of {rows}",
        ),
        row(
            "journal",
            "bare fsync'd WAL insert, same rows (baseline)",
            1 / result["bare"],
            "rows/s",
            note="sqlite3 autocommit, synchronous=FULL",
        ),
        row(
            "journal",
            "journal cost over the bare insert",
            result["cost"],
            "%",
            goal=GOAL_PERCENT,
            note=each,
        ),
    ]


def main() -> None:
    """Print the two rates and the cost, as ``bench/run.py`` does."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400, help="rows per block")
    parser.add_argument("--blocks", type=int, default=5, help="blocks of each")
    args = parser.parse_args()
    print_rows(report(args.rows, args.blocks))


if __name__ == "__main__":
    main()
