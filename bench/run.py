"""Run every benchmark in ``bench/`` and print one table, each row beside its goal (issue 16).

Run: ``.venv/bin/python bench/run.py [--quick] [--only NAME …] [--skip NAME …] [--json FILE]
[--markdown]`` — ``make bench`` runs it in full, ``make bench-quick`` with ``--quick``. NAME is
a module's short name (``read`` for ``bench_read.py``). A bench that cannot run here (no pcscd,
no native backend, no module) reports an "unavailable" row; one that fails reports its error as
such a row and the exit status is 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from shape import Row, Verdict, markdown, table, unavailable  # noqa: E402

# the order of the table: the card, the code, the stores, the platform, the daemon
BENCHES = ("read", "purchase", "apdus", "qr", "qr_decode", "sm2", "denylist", "journal", "sync",
           "daemon", "host")  # fmt: skip
log = logging.getLogger("bench.run")


def run_one(name: str, quick: bool) -> tuple[list[Row], bool]:
    """The rows of one bench, and whether it failed.

    :param name: the short name
    :param quick: the short form
    """
    try:
        module = importlib.import_module(f"bench_{name}")
    except ModuleNotFoundError as error:
        return [unavailable(name, f"bench_{name}.py", f"not importable here: {error}")], False
    measure = getattr(module, "measure", None)
    if measure is None:
        return [unavailable(name, f"bench_{name}.py", "has no measure(quick)")], False
    try:
        rows: list[Row] = measure(quick)
    except Exception as error:  # one failing bench must not hide the others' rows
        log.exception("event=bench_failed bench=%s", name)
        why = f"failed: {type(error).__name__}: {error}"
        return [unavailable(name, f"bench_{name}.py", why)], True
    return rows, False


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benches and print the table; returns the exit status.

    :param argv: the arguments (default: the command line)
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short form (seconds per bench)")
    parser.add_argument("--only", nargs="+", choices=BENCHES, metavar="NAME", help="run these")
    parser.add_argument("--skip", nargs="+", choices=BENCHES, metavar="NAME", default=[])
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the rows as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the benches' own warnings are expected here
    chosen = [name for name in (args.only or BENCHES) if name not in args.skip]
    rows: list[Row] = []
    failed = False
    started = time.monotonic()
    for name in chosen:
        print(f"… {name}", file=sys.stderr, flush=True)
        found, broke = run_one(name, args.quick)
        rows += found
        failed |= broke
    about = machine() | {"quick": args.quick, "seconds": round(time.monotonic() - started, 1)}
    print(f"{about['date']} · {about['machine']} · Python {about['python']} · "
          f"load {about['load']:.1f} · {'quick' if args.quick else 'full'} run")  # fmt: skip
    for line in table(rows):
        print(line)
    missed = sum(item.verdict is Verdict.MISSED for item in rows)
    print(f"{len(rows)} rows, {missed} missed their goal, in {about['seconds']} s")
    if args.markdown:
        print()
        for line in markdown(rows):
            print(line)
    if args.json:
        document = about | {"rows": [item.to_dict() for item in rows]}
        args.json.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
