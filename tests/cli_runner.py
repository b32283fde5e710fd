"""Run many ``sscard`` command lines fast: one child process imports the CLI once, then forks a
grandchild per command line, which runs ``terminal.cli.main`` exactly as the ``sscard`` console
script does (``sys.exit(main())``: an exception that escapes ``main`` prints its traceback and
exits 1, as the interpreter would).

A fresh ``sscard`` process spends about a second importing its libraries; forking after the
imports lets a test run a few hundred command lines in seconds while each still gets its own
process: its own file descriptors, environment, working folder, signal handlers and logging set-up.

Used as a script by :func:`run_many` (stdin: ``{"parallel": N, "runs": [...]}``; stdout: a JSON
list of results, in the order of the runs). A run is ``{"argv": [...], "env": {NAME: value or
null}, "cwd": path, "timeout": s, "stop_after": s or null, "stop_when": pattern or null}``: a
command that serves until stopped is sent SIGTERM once its stdout or stderr matches
``stop_when`` (a regular expression), or at the latest after ``stop_after`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: grandchildren running at once (the machine's CPUs are shared; most runs only wait)
PARALLEL = 4


@dataclass(frozen=True, slots=True)
class Result:
    """What one command line did.

    :param status: the exit status (``-N``: killed by signal N)
    :param stdout: standard output
    :param stderr: standard error
    :param timed_out: it was killed after its timeout
    :param elapsed_s: how long it ran, in seconds
    """

    status: int
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_s: float


def run_many(
    runs: Sequence[dict[str, Any]],
    *,
    parallel: int = PARALLEL,
    wrapper: Sequence[str] = (),
    timeout: float = 300,
    record: bool = True,
) -> list[Result]:
    """Run the command lines in one forking child process and return their results in order.

    :param runs: the runs (see the module docstring)
    :param parallel: how many run at once (1: one after the other, in order)
    :param wrapper: a command the child is started under (``unshare …``), or nothing
    :param timeout: seconds for the whole batch
    :param record: record the results in order as golden outputs (:mod:`golden`); a caller that
        runs batches in threads records them itself, in an order that does not depend on timing
    """
    command = [*wrapper, sys.executable, str(Path(__file__).resolve())]
    done = subprocess.run(
        command,
        input=json.dumps({"parallel": parallel, "runs": list(runs)}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cli_runner failed ({done.returncode}): {done.stderr[-2000:]}")
    results = [Result(**r) for r in json.loads(done.stdout)]
    if record:
        for run, result in zip(runs, results, strict=True):
            record_result(run, result)
    return results


def record_result(run: dict[str, Any], result: Result) -> None:
    """Record (or check) one run's result as a golden output (:mod:`golden`).

    :param run: the run
    :param result: what it did
    """
    import golden

    status = None if result.timed_out else result.status
    golden.record("fork", run["argv"], status, result.stdout, result.stderr)


def _child(run: dict[str, Any], out: int, err: int) -> None:
    """In the forked grandchild: set up, run ``main`` like the console script, exit."""
    status = 1
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir(run["cwd"])
        for name, value in run.get("env", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from terminal.cli import main

        try:
            code = main(run["argv"])
        except SystemExit as exc:
            code = exc.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            print(code, file=sys.stderr)
            status = 1
    except BaseException:  # what the interpreter does with an exception that escapes
        traceback.print_exc()
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # a closed pipe must not stop the exit
                stream.flush()
        os._exit(status)


@dataclass
class _Running:
    """A grandchild being waited for: which run, since when, its output files."""

    index: int
    started: float
    out: int
    err: int
    stopped: bool = False

    def printed(self) -> str:
        """What it wrote to stdout and stderr so far."""
        data = b"".join(os.pread(fd, 1 << 20, 0) for fd in (self.out, self.err))
        return data.decode("utf-8", "replace")

    def result(self, wait_status: int, timed_out: bool) -> dict[str, Any]:
        """Its result (the output files are closed)."""
        texts = [os.pread(fd, 1 << 24, 0).decode("utf-8", "replace") for fd in (self.out, self.err)]
        for fd in (self.out, self.err):
            os.close(fd)
        return {
            "status": os.waitstatus_to_exitcode(wait_status),
            "stdout": texts[0],
            "stderr": texts[1],
            "timed_out": timed_out,
            "elapsed_s": round(time.monotonic() - self.started, 3),
        }


def _time_to_stop(run: dict[str, Any], running: _Running) -> bool:
    """Whether a serving command has served (it printed ``stop_when``) or ran long enough."""
    stop_after = run.get("stop_after")
    if stop_after is None:
        return False
    if time.monotonic() - running.started > stop_after:
        return True
    pattern = run.get("stop_when")
    return bool(pattern) and re.search(pattern, running.printed(), re.M) is not None


#: what the commands import when they run (terminal.cli loads a command's libraries lazily):
#: imported once here, before the forks
WARM = (
    "terminal.cli",
    "terminal.compose",
    "terminal.reading",
    "terminal.modules",
    "terminal.ecard_flow",
    "terminal.demo",
    "drivers.scanners",
    "drivers.virtual.hsm_service",
    "drivers.virtual.vpcd",
    "sync.client",
    "platform_server.server",
    "platform_server.service",
    "segno",
    "tqdm",
)


def _serve(runs: list[dict[str, Any]], parallel: int) -> list[dict[str, Any]]:
    import importlib

    for name in WARM:
        importlib.import_module(name)

    results: list[dict[str, Any]] = [{} for _ in runs]
    pending = list(enumerate(runs))
    active: dict[int, _Running] = {}
    with tempfile.TemporaryDirectory(prefix="sscard-cli-runner-") as folder:
        while pending or active:
            while pending and len(active) < parallel:
                index, run = pending.pop(0)
                out, err = (
                    os.open(Path(folder) / f"{index}.{name}", os.O_RDWR | os.O_CREAT, 0o600)
                    for name in ("out", "err")
                )
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(run, out, err)
                active[pid] = _Running(index, time.monotonic(), out, err)
            time.sleep(0.01)
            for pid, running in list(active.items()):
                run = runs[running.index]
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                timed_out = False
                if done == 0:
                    if not running.stopped and _time_to_stop(run, running):
                        os.kill(pid, signal.SIGTERM)
                        running.stopped = True
                    if time.monotonic() - running.started <= run.get("timeout", 30):
                        continue
                    os.killpg(pid, signal.SIGKILL)
                    _, wait_status = os.waitpid(pid, 0)
                    timed_out = True
                results[running.index] = running.result(wait_status, timed_out)
                del active[pid]
    return results


if __name__ == "__main__":
    batch = json.load(sys.stdin)
    json.dump(_serve(batch["runs"], batch["parallel"]), sys.stdout)
