"""Benchmark: a tap through ``sscard run`` against the bare pipeline in-process, same run.

In-process: the transit pipeline decides an emulated card over an in-process connection (the
journal written with fsync, as always). Through the daemon: ``sscard run`` in a child process
takes the same card through a real pcscd and vpcd; its latency is what the daemon logs for
each decision (card connected → decision journaled and shown). Both with the card answering at
once and after 5 ms per APDU. Also: the daemon's start-up time to "ready for cards" and its
resident memory idle and after the taps.

Run: ``.venv/bin/python bench/bench_daemon.py [--taps N]`` (starts its own pcscd if none
runs; each tap through pcscd waits for its 0.4 s presence poll, so taps are not back to back).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from shape import Row, row

from apdu.atr import Atr
from apdu.transport import t0_chain
from config.settings import load_settings
from drivers.keyfile import load_root_keys, private_copy
from drivers.pcsc import PcscReader
from drivers.virtual import PERSONAS, TEST_KEYS
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.persona import load_persona
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.vpcd import VpcdBridge
from terminal.card_read import ScenarioRead
from terminal.compose import open_terminal
from terminal.profiles import load_profile

READER = "Virtual PCD 00 00"
GOAL_IDLE_MB = 60.0  # issue 16
GOAL_READY_S = 1.0
PERSONA = PERSONAS / "ordinary-2.0.toml"


def _folder(root: Path) -> Path:
    (root / "pepper").write_bytes(os.urandom(32))
    (root / "pepper").chmod(0o600)
    private_copy(TEST_KEYS / "test-roots.toml", root / "roots.toml")
    config = root / "terminal.toml"
    config.write_text(
        '[security]\nsoft_sam_keys = "roots.toml"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        f'[indicators]\nconsole = false\nvoice = false\n[daemon]\nreaders = ["{READER}"]\n'
        "sync_interval_s = 0\n"
    )
    return config


def _card(latency_ms: float) -> VirtualSscCard:
    roots = load_root_keys(TEST_KEYS / "test-roots.toml", require_private=False)
    return VirtualSscCard(load_persona(PERSONA), Behaviour(latency_ms=latency_ms), roots)


def in_process(taps: int, latency_ms: float) -> list[float]:
    with tempfile.TemporaryDirectory() as name:
        config = _folder(Path(name))
        profile = load_profile("transit")
        samples = []
        with open_terminal(load_settings(config), profile) as terminal:
            for _ in range(taps):
                card = _card(latency_ms)
                start = time.perf_counter()
                historical = Atr.parse(card.atr).historical
                chain = t0_chain(VirtualConnection(card))
                read = ScenarioRead(chain, historical, profile, terminal.module)
                assert terminal.pipeline.process(read).accepted
                samples.append(time.perf_counter() - start)
        return samples


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def through_daemon(taps: int, latency_ms: float) -> tuple[list[float], float, int, int]:
    with tempfile.TemporaryDirectory() as name:
        config = _folder(Path(name))
        started = time.perf_counter()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "terminal.cli", "-v", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert daemon.stderr is not None
        for line in daemon.stderr:
            if "event=daemon_ready" in line:
                break
        ready = time.perf_counter() - started
        idle = _rss_kb(daemon.pid)
        samples = []
        with PcscReader() as readers:
            for _ in range(taps):
                bridge = VpcdBridge(_card(latency_ms), slot=0)
                bridge.insert()
                for line in daemon.stderr:
                    if "event=decided" in line:
                        samples.append(float(json.loads(line)["latency_ms"]) / 1000)
                        break
                bridge.remove()
                readers.wait_for_removal(READER, timeout=3)
        after = _rss_kb(daemon.pid)
        daemon.terminate()
        daemon.wait(30)
        return samples, ready, idle, after


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@contextlib.contextmanager
def _pcscd() -> Iterator[None]:
    """A pcscd for the taps: the running one, else one of our own for the duration."""
    if running_pid() is not None:
        yield
        return
    pcscd = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-bench-pcscd.log")
    pcscd.start()
    try:
        yield
    finally:
        pcscd.stop()


def measure(quick: bool) -> list[Row]:
    """Tap latency through the daemon against in-process, the daemon's start-up time and its
    resident memory (issue 16: ≤ 60 MB idle, ready ≤ 1 s after start).

    Memory "after taps" is after the taps of this run, not after 10 k: each tap through pcscd
    waits for the daemon's 0.4 s presence poll, so 10 k taps would take over an hour.

    :param quick: 5 taps per path instead of 30, instant card only
    """
    taps = 5 if quick else 30
    rows: list[Row] = []
    with _pcscd():
        for latency in (0.0,) if quick else (0.0, 5.0):
            base = in_process(taps, latency)
            daemon, ready, idle, after = through_daemon(taps, latency)
            b50, d50 = statistics.median(base) * 1000, statistics.median(daemon) * 1000
            rows.append(row("daemon", f"tap in-process, {latency:g} ms/APDU (baseline) p50", b50,
                            "ms", note=f"p99 {_p(base, 0.99):.2f} ms, {taps} taps"))  # fmt: skip
            rows.append(row("daemon", f"tap through sscard run + pcscd, {latency:g} ms/APDU p50",
                            d50, "ms", note=f"{d50 / b50:.1f}× in-process; p99 "
                            f"{_p(daemon, 0.99):.2f} ms"))  # fmt: skip
        rows.append(row("daemon", "ready for cards after start", ready, "s", goal=GOAL_READY_S,
                        note="sscard run to event=daemon_ready"))  # fmt: skip
        rows.append(row("daemon", "resident memory idle", idle / 1024, "MB", goal=GOAL_IDLE_MB,
                        note="VmRSS once ready, no camera, no platform"))  # fmt: skip
        rows.append(row("daemon", f"resident memory after {len(daemon)} taps", after / 1024, "MB",
                        note=f"idle {idle / 1024:.1f} MB"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=30, help="taps per path (default: 30)")
    args = parser.parse_args()
    with _pcscd():
        print(f"{'path':<34} {'p50 ms':>8} {'p99 ms':>8} {'× in-process p50':>18}")
        for latency in (0.0, 5.0):
            base = in_process(args.taps, latency)
            daemon, ready, idle, after = through_daemon(args.taps, latency)
            b50 = statistics.median(base) * 1000
            print(f"{f'in-process, {latency:g} ms/APDU':<34} {b50:8.2f} {_p(base, 0.99):8.2f}"
                  f" {1.0:18.1f}")  # fmt: skip
            d50 = statistics.median(daemon) * 1000
            print(f"{f'sscard run via pcscd, {latency:g} ms/APDU':<34} {d50:8.2f} "
                  f"{_p(daemon, 0.99):8.2f} {d50 / b50:18.1f}")  # fmt: skip
            print(f"  start-up to ready {ready:.2f} s; RSS idle {idle / 1024:.1f} MB, after "
                  f"{len(daemon)} taps {after / 1024:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
