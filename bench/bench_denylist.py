"""Benchmark: a 10-million-entry deny-list snapshot — signed import and lookups — against
baselines measured in the same run.

Import is compared with a bare ``executemany`` of the same rows into a plain table of a
database with the same settings (WAL, ``synchronous=FULL``): the floor for getting rows from
Python into SQLite, with no file to parse, no signature, no checks and no index. Lookups are
compared with a Python ``dict`` holding every hash in memory. A 10 000-entry delta and a
rollback are timed too. Nothing is asserted: this prints numbers.

Run: ``.venv/bin/python bench/bench_denylist.py [--entries N] [--lookups N] [--dir DIR]``
(10 M entries need about 1 GB for the file and 2 GB for the databases, in a temporary folder
removed at the end unless ``--dir`` names one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from shape import Row, percentile, row

from offline_store import Store, ed25519_verifier

T = TypeVar("T")
REASONS = ("lost", "cancelled", "replaced", "fraud")
DAY = dt.date(2027, 1, 1)  # after every effective date of the generated list
DELTA_ENTRIES = 100_000  # issue 16: a 100 k delta in ≤ 2 s


def card_hash(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


def rows(count: int) -> Iterator[tuple[bytes, str, int]]:
    for n in range(count):
        yield card_hash(n), REASONS[n % 4], 20260101 + n % 28


def write_snapshot(path: Path, count: int) -> None:
    with path.open("w", encoding="ascii") as out:
        out.write(
            '{"format": "sscard-deny/1", "kind": "snapshot", "version": 1, '
            f'"created": "2026-11-29T08:00:00+08:00", "entries": {count}}}\n'
        )
        for digest, reason, effective in rows(count):
            day = f"2026-01-{effective % 100:02d}"
            out.write(f'{{"hash": "{digest.hex()}", "reason": "{reason}", "effective": "{day}"}}\n')


def write_delta(path: Path, count: int) -> None:
    half = min(DELTA_ENTRIES, count) // 2
    with path.open("w", encoding="ascii") as out:
        out.write(
            '{"format": "sscard-deny/1", "kind": "delta", "version": 2, "base_version": 1, '
            f'"created": "2026-11-30T08:00:00+08:00", "entries": {2 * half}}}\n'
        )
        for n in range(half):
            out.write(f'{{"op": "remove", "hash": "{card_hash(n * 2).hex()}"}}\n')
        for n in range(count, count + half):
            out.write(
                f'{{"op": "add", "hash": "{card_hash(n).hex()}", "reason": "fraud", '
                '"effective": "2026-11-29"}\n'
            )


def sign(path: Path, key: Ed25519PrivateKey) -> None:
    path.with_name(path.name + ".sig").write_bytes(key.sign(path.read_bytes()))


def bare_insert(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (card_hash BLOB, reason TEXT, effective INTEGER)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows(count))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def measure_store(work: Path, count: int, lookups: int) -> dict[str, float]:
    """Write, sign and import the lists, then time lookups; returns the timings."""
    snapshot, delta = work / "deny-1.jsonl", work / "deny-2.jsonl"
    times: dict[str, float] = {}
    times["generate"], _ = timed(lambda: write_snapshot(snapshot, count))
    write_delta(delta, count)
    key = Ed25519PrivateKey.generate()
    times["sign"], _ = timed(lambda: sign(snapshot, key))
    sign(delta, key)
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    verify = ed25519_verifier(pem)
    signature = snapshot.with_name(snapshot.name + ".sig").read_bytes()
    times["verify"], _ = timed(lambda: verify(snapshot.read_bytes(), signature))
    times["file_mb"] = snapshot.stat().st_size / 1e6
    with Store.open(work / "store.db") as store:
        times["import"], result = timed(lambda: store.deny.import_file(snapshot, verify))
        assert result.listed == count
        times["delta"], applied = timed(lambda: store.deny.import_file(delta, verify))
        assert applied.listed == count
        times["rollback"], _ = timed(store.deny.rollback)
        times["db_mb"] = (work / "store.db").stat().st_size / 1e6
        rng = random.Random(7)
        probes = [card_hash(rng.randrange(2 * count)).hex() for _ in range(lookups)]
        hits, each = 0, []
        lookup, clock = store.deny.lookup, time.perf_counter
        for digest in probes:
            started = clock()
            hits += lookup(digest, DAY) is not None
            each.append(clock() - started)
        times["lookup"] = sum(each)
        times["lookup_p50"], times["lookup_p99"] = percentile(each, 0.5), percentile(each, 0.99)
    times["dict_build"], table = timed(lambda: {d: (r, e) for d, r, e in rows(count)})
    started = time.perf_counter()
    dict_hits = sum(bytes.fromhex(digest) in table for digest in probes)
    times["dict"] = time.perf_counter() - started
    assert dict_hits == hits, (dict_hits, hits)
    return times


def report(times: dict[str, float], count: int, lookups: int) -> None:
    """Print the table, with ratios against the baselines of the same run."""
    print(
        f"{count} entries: file {times['file_mb']:.0f} MB, written in {times['generate']:.1f} s, "
        f"signed in {times['sign']:.1f} s, verified alone in {times['verify']:.1f} s; "
        f"store file {times['db_mb']:.0f} MB"
    )
    print(f"{'import':<46} {'seconds':>9} {'rows/s':>12} {'ratio':>8}")
    base = times["bare"]
    for name, seconds in (
        ("baseline: bare executemany, no index", base),
        ("store: signed snapshot import", times["import"]),
    ):
        print(f"{name:<46} {seconds:>9.1f} {count / seconds:>12,.0f} {seconds / base:>7.1f}x")
    print(f"{'store: delta of 100k (50k add, 50k remove)':<46} {times['delta']:>9.2f}")
    print(f"{'store: rollback of that delta':<46} {times['rollback']:>9.2f}")
    print(f"{f'lookups ({lookups}, about half listed)':<46} {'µs each':>9} {'lookups/s':>12}")
    base = times["dict"]
    for name, seconds in (
        (f"baseline: dict in memory (built in {times['dict_build']:.0f} s)", base),
        ("store: deny.lookup", times["lookup"]),
    ):
        each = seconds / lookups
        print(f"{name:<46} {each * 1e6:>9.2f} {1 / each:>12,.0f} {seconds / base:>7.1f}x")


def run(count: int, lookups: int) -> dict[str, float]:
    """The baseline and the store's timings, in a temporary folder removed at the end.

    :param count: snapshot entries
    :param lookups: lookups to time
    """
    work = Path(tempfile.mkdtemp(prefix="sscard-bench-deny-"))
    try:
        base = bare_insert(work / "bare.db", count)
        return measure_store(work, count, lookups) | {"bare": base}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(quick: bool) -> list[Row]:
    """The deny list against issue 16's goals: lookup p99 ≤ 50 µs, import ≤ 1.2× a bare
    ``executemany``, a 100 k delta ≤ 2 s.

    :param quick: 200 k entries and 20 k lookups instead of 10 M and 200 k
    """
    count, lookups = (200_000, 20_000) if quick else (10_000_000, 200_000)
    times = run(count, lookups)
    size = f"{count:,} entries"
    return [
        row(
            "denylist",
            f"lookup p50, {size}",
            times["lookup_p50"] * 1e6,
            "µs",
            note=f"dict in memory: {times['dict'] / lookups * 1e6:.2f} µs mean",
        ),
        row(
            "denylist",
            f"lookup p99, {size}",
            times["lookup_p99"] * 1e6,
            "µs",
            goal=50.0,
            note=f"{lookups:,} lookups, about half listed",
        ),
        row(
            "denylist",
            f"signed snapshot import ÷ bare executemany, {size}",
            times["import"] / times["bare"],
            "×",
            goal=1.2,
            note=f"import {times['import']:.1f} s, executemany {times['bare']:.1f} s",
        ),
        row(
            "denylist",
            "100 k delta (50 k add, 50 k remove)",
            times["delta"],
            "s",
            goal=2.0,
            note=f"rollback {times['rollback']:.2f} s",
        ),
        row(
            "denylist",
            f"store file, {size}",
            times["db_mb"],
            "MB",
            note=f"list file {times['file_mb']:.0f} MB",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000, help="snapshot entries")
    parser.add_argument("--lookups", type=int, default=200_000, help="lookups to time")
    parser.add_argument("--dir", help="work folder (kept); default: a temporary one")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sscard-bench-deny-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        base = bare_insert(work / "bare.db", args.entries)
        times = measure_store(work, args.entries, args.lookups)
        times["bare"] = base
        report(times, args.entries, args.lookups)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
