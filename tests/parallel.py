"""Run the suite as two pytest processes side by side: the end-to-end tests, and the rest.

The end-to-end tests spend most of their time waiting on pcscd, vpcd and child processes, and
they share one pcscd, so they run in one process, with the fault campaigns' short forms
(``tests/faults``, which start pcscd too); everything else (unit, emulated, sync, fuzz) runs
beside them in a second, with the few modules of those folders that start no pcscd (the second
half has time to spare). No test of the second half starts pcscd, so the two never meet.
pytest-xdist would do this more finely, but its ``loadgroup`` scheduling does not run on pytest 9
(it sets ``item._nodeid``, which pytest 9 no longer reads), so the split is made here.

The end-to-end output streams as it comes; the other process's output is kept and printed
after, so neither garbles the other. The exit status is the first non-zero one of the two.

Usage: ``python tests/parallel.py [pytest options]`` (``make test`` calls it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
E2E = "tests/e2e"
FAULTS = "tests/faults"  # the fault campaigns' short forms start pcscd too: with the e2e half
# modules in those two folders that start no pcscd: they run in the other half, which has time to
# spare (the session's ``pcscd`` fixture fails there, so one that starts pcscd is caught)
NO_PCSCD = (
    "tests/e2e/test_qr_e2e.py",
    "tests/e2e/test_qr_hardening_e2e.py",
    "tests/faults/test_outage_and_clock.py",
    "tests/faults/test_torn_deny_import.py",
)


def main(argv: list[str]) -> int:
    """Start both halves, wait for both, print the kept output, return the combined status."""
    command = [sys.executable, "-m", "pytest", *argv]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as kept:
        rest = subprocess.Popen(
            [*command, "tests", f"--ignore={E2E}", f"--ignore={FAULTS}", *NO_PCSCD],
            cwd=ROOT,
            stdout=kept,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PY_COLORS": os.environ.get("PY_COLORS", "0"),
                "SSCARD_TEST_HALF": "rest",
            },
        )
        ignored = [f"--ignore={path}" for path in NO_PCSCD]
        e2e = subprocess.Popen([*command, E2E, FAULTS, *ignored], cwd=ROOT)
        try:
            e2e_status = e2e.wait()
            rest_status = rest.wait()
        except KeyboardInterrupt:
            for child in (e2e, rest):
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
            e2e.wait()
            rest.wait()
            return 130
        kept.seek(0)
        print(f"\n===== tests outside {E2E} (ran beside it) =====", flush=True)
        sys.stdout.write(kept.read())
    print(f"\n===== {E2E}: exit {e2e_status}; the rest: exit {rest_status} =====")
    return e2e_status or rest_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
