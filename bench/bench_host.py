"""Benchmark: card on the reader → ``GET /v1/card`` answered by ``sscard run``, against the
in-process tap in the same run (issue 14).

In-process: the transit pipeline decides an emulated card over an in-process connection
(``bench_daemon.in_process``: the journal written with fsync). Through the daemon: ``sscard run``
with ``[host] enabled`` in a child process; a client waits in ``GET /v1/card?wait=S`` before
the card goes in through vpcd, and the time is taken from the insertion to the answer: pcscd's
presence poll (0.4 s for vpcd), the daemon's read, decision and journal, the desk and HTTP.

Run: ``.venv/bin/python bench/bench_host.py [--taps N]`` (starts its own pcscd if none runs).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from bench_daemon import READER, _card, _folder, in_process
from shape import Row, percentile, print_rows, row, unavailable

from apdu.errors import SscardError
from drivers.pcsc import PcscReader
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.vpcd import VpcdBridge

BENCH = "host"
START_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(base: str, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_S
    while True:
        try:
            requests.get(base + "/healthz", timeout=1)
            return
        except requests.ConnectionError:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SscardError("sscard run did not serve the host API") from None
            time.sleep(0.05)


def _wait_empty(base: str) -> None:
    deadline = time.monotonic() + START_S
    while any(
        r["card_present"] for r in requests.get(base + "/v1/readers", timeout=5).json()["readers"]
    ):
        if time.monotonic() > deadline:
            raise SscardError("the daemon still sees the card")
        time.sleep(0.02)


def _one_tap(base: str, latency_ms: float) -> float:
    """A client waits in ``GET /v1/card``, the card goes in: seconds to the answer."""
    answered: list[float] = []

    def ask() -> None:
        out = requests.get(base + "/v1/card", params={"wait": 20}, timeout=30)
        if out.status_code == 200:
            answered.append(time.perf_counter())

    client = threading.Thread(target=ask)
    client.start()
    time.sleep(0.05)  # the client waits in the desk before the card comes
    bridge = VpcdBridge(_card(latency_ms), slot=0)
    inserted = time.perf_counter()
    bridge.insert()
    client.join(30)
    bridge.remove()
    if not answered:
        raise SscardError("GET /v1/card got no card")
    return answered[0] - inserted


def through_api(taps: int, latency_ms: float) -> list[float]:
    """Seconds from the card's insertion to ``GET /v1/card``'s answer, one per tap."""
    with tempfile.TemporaryDirectory() as name:
        config = _folder(Path(name))
        port = _free_port()
        with config.open("a") as settings:
            settings.write(f"[host]\nenabled = true\nport = {port}\n")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "terminal.cli", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        samples: list[float] = []
        try:
            _wait_up(base, daemon)
            with PcscReader() as readers:
                for _ in range(taps):
                    samples.append(_one_tap(base, latency_ms))
                    readers.wait_for_removal(READER, timeout=3)
                    _wait_empty(base)  # the daemon saw it leave: the next answer is a new card
        finally:
            daemon.terminate()
            daemon.wait(30)
        return samples


def measure(quick: bool) -> list[Row]:
    """p50 and p99 of card → ``GET /v1/card`` answered, and the in-process tap beside it.

    :param quick: 5 taps per path instead of 30
    """
    taps = 5 if quick else 30
    pcscd = None
    try:
        if running_pid() is None:
            pcscd = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-bench-host-pcscd.log")
            pcscd.start()
        api = through_api(taps, 0.0)
    except (SscardError, OSError) as error:
        return [unavailable(BENCH, "card → GET /v1/card through sscard run", str(error))]
    finally:
        if pcscd is not None:
            pcscd.stop()
    local = in_process(taps, 0.0)
    base = statistics.median(local) * 1e3
    api50, api99 = statistics.median(api) * 1e3, percentile(api, 0.99) * 1e3
    note = f"{taps} taps; in-process tap p50 {base:.2f} ms"
    return [
        row(BENCH, "in-process tap (transit), p50", base, "ms", note=f"{taps} taps"),
        row(BENCH, "card → GET /v1/card via sscard run, p50", api50, "ms", note=note),
        row(BENCH, "card → GET /v1/card via sscard run, p99", api99, "ms", note=note),
        row(BENCH, "GET /v1/card p50 / in-process p50", api50 / base, "×", note=note),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 taps instead of 30")
    print_rows(measure(parser.parse_args().quick))


if __name__ == "__main__":
    main()
