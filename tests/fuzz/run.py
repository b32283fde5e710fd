"""``make fuzz``: coverage-guided fuzzing of every target in tests/fuzz/targets.py with atheris
(libFuzzer), each for a fixed time, one child process per target.

Each child instruments the project's packages, starts from the target's seeds plus the corpus
kept from earlier runs in ``build/fuzz/corpus/NAME``, and stops after ``--seconds``, or at the
first input that raises anything but the project's own errors, takes longer than ``--timeout``
seconds (a hang) or grows past ``--rss-mb`` (unbounded memory); libFuzzer writes that input to
``build/fuzz/crash-NAME-…``. The summary — inputs tried, corpus size and findings per target —
is printed and written to ``build/fuzz/summary.json``; the exit status is 1 when any target
found something.

Run: ``.venv/bin/python tests/fuzz/run.py [--seconds 60] [--only NAME …]`` (needs the ``fuzz``
extra: ``pip install -e '.[fuzz]'``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
OUT = ROOT / "build" / "fuzz"
PACKAGES = ["apdu", "ecard", "drivers", "offline_store", "sync", "terminal", "config"]
sys.path.insert(0, str(TESTS))


def child(name: str, seconds: int, timeout: int, rss_mb: int) -> None:
    """Fuzz one target in this process (libFuzzer exits the process at the end).

    :param name: the target
    :param seconds: how long
    :param timeout: seconds one input may take
    :param rss_mb: the memory limit
    """
    import atheris

    with atheris.instrument_imports(include=PACKAGES):
        from fuzz import targets

    target = targets.TARGETS[name]
    corpus = OUT / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(target.seeds()):
        (corpus / f"seed-{number}").write_bytes(seed)

    def one_input(data: bytes) -> None:
        targets.check(name, data)

    options = []
    if target.tokens:  # libFuzzer's dictionary format: one quoted word a line, \xNN escapes
        words = OUT / f"{name}.dict"
        words.write_text("".join(f'"{_escape(token)}"\n' for token in target.tokens))
        options.append(f"-dict={words}")
    atheris.Setup(
        [sys.argv[0], str(corpus), *options, f"-max_total_time={seconds}", f"-timeout={timeout}",
         f"-rss_limit_mb={rss_mb}", "-print_final_stats=1", "-max_len=4096",
         f"-artifact_prefix={OUT}/crash-{name}-"],
        one_input,
    )  # fmt: skip
    atheris.Fuzz()


def _escape(token: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02X}" for b in token)


def fuzz(name: str, seconds: int, timeout: int, rss_mb: int) -> dict[str, object]:
    """Run one target in a child process and read its final statistics.

    :param name: the target
    :param seconds: how long
    :param timeout: seconds one input may take
    :param rss_mb: the memory limit
    """
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--seconds", str(seconds),
         "--timeout", str(timeout), "--rss-mb", str(rss_mb)],
        capture_output=True, text=True, errors="replace", cwd=ROOT, check=False,
        timeout=seconds + 120,
    )  # fmt: skip
    log = done.stdout + done.stderr
    (OUT / f"{name}.log").write_text(log)
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    corpus = OUT / "corpus" / name
    finding = ""
    if done.returncode != 0:
        found = re.search(r"(Uncaught Python exception: .*|ERROR: libFuzzer: .*)", log)
        finding = found.group(1) if found else f"exit status {done.returncode}"
    return {
        "target": name,
        "inputs": int(runs.group(1)) if runs else None,
        "seconds": round(time.monotonic() - started, 1),
        "corpus": sum(1 for _ in corpus.iterdir()) if corpus.is_dir() else 0,
        "finding": finding,
    }


def main() -> int:
    """Fuzz the chosen targets one after another; print and write the summary."""
    if sys.argv[1:2] == ["--child"]:  # before anything imports the project uninstrumented
        name, seconds, timeout, rss_mb = sys.argv[2], *map(int, sys.argv[4:9:2])
        child(name, seconds, timeout, rss_mb)
        return 0
    from fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--rss-mb", type=int, default=2048, help="memory limit per target")
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), metavar="NAME")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    print(f"{'target':<18} {'inputs':>10} {'corpus':>7} {'seconds':>8}  finding", flush=True)
    for name in args.only or list(TARGETS):
        result = fuzz(name, args.seconds, args.timeout, args.rss_mb)
        results.append(result)
        print(f"{name:<18} {result['inputs'] or '—':>10} {result['corpus']:>7} "
              f"{result['seconds']:>8}  {result['finding'] or 'none'}", flush=True)  # fmt: skip
    (OUT / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    return 1 if any(result["finding"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
