"""Benchmark: reading a social security card, in-process versus through a real pcscd.

Prints the time of one full basic-info read (SELECT, EF05 and EF06 records: 17 APDUs, more on
T=0) for each path, and the ratio against the in-process baseline measured in the same run.
The third row shows the vpcd TCP_QUICKACK trap (pcsc-feasibility §5): without QUICKACK every
APDU waits for a delayed ACK.

Run: ``.venv/bin/python bench/bench_read.py [--rounds N]`` (starts its own pcscd if none runs;
without pcscd or vpcd, the in-process row alone). It prints the rows ``bench/run.py`` prints.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from shape import Row, print_rows, rounds_option, row, timed, unavailable

from apdu.errors import SscardError
from drivers.pcsc import PcscReader
from drivers.virtual import PERSONAS
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.persona import load_persona
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.vpcd import VpcdBridge
from terminal.reading import read_and_classify

PERSONA = PERSONAS / "ordinary-2.0.toml"
READER = "Virtual PCD 00 00"


def in_process(t0: bool) -> Callable[[], None]:
    card = VirtualSscCard(load_persona(PERSONA), Behaviour(t0=t0))

    def run() -> None:
        assert read_and_classify(VirtualConnection(card), card.atr).ok

    return run


def through_pcscd(readers: PcscReader, t0: bool, quickack: bool, rounds: int) -> list[float]:
    card = VirtualSscCard(load_persona(PERSONA), Behaviour(t0=t0))
    bridge = VpcdBridge(card, slot=0, quickack=quickack)
    bridge.insert()
    try:
        connection = readers.wait_for_card(5, reader=READER)
        with connection:

            def run() -> None:
                assert read_and_classify(connection, connection.atr).ok

            return timed(run, rounds)
    finally:
        bridge.remove()
        readers.wait_for_removal(READER, 5)


def paths(rounds: int) -> list[tuple[str, list[float]]]:
    """Time every path; the pcscd ones only when a pcscd runs or can be started.

    :param rounds: reads per path
    :raises ReaderUnavailable: when pcscd or vpcd is missing
    """
    rows = [
        ("in-process, T=1 (baseline)", timed(in_process(False), rounds)),
        ("in-process, T=0", timed(in_process(True), rounds)),
    ]
    daemon = None
    if running_pid() is None:
        daemon = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-bench-pcscd.log")
        daemon.start()
    try:
        with PcscReader() as readers:
            rows.append(("pcscd+vpcd, T=1", through_pcscd(readers, False, True, rounds)))
            rows.append(("pcscd+vpcd, T=0", through_pcscd(readers, True, True, rounds)))
            few = max(2, rounds // 50)
            rows.append(("pcscd+vpcd, T=1, no QUICKACK", through_pcscd(readers, False, False, few)))
    finally:
        if daemon is not None:
            daemon.stop()
    return rows


def measure(quick: bool) -> list[Row]:
    """One basic-info read per path: median ms, and the ratio to the in-process read.

    :param quick: 10 reads per path instead of 200
    """
    return report(10 if quick else 200)


def report(rounds: int) -> list[Row]:
    """The rows of :func:`measure`, for any number of reads per path.

    :param rounds: reads per path
    """
    try:
        timings = paths(rounds)
    except SscardError as error:  # no pcscd or vpcd here: the in-process rows alone
        base = statistics.median(timed(in_process(False), rounds))
        return [
            row(
                "read", "basic-info read in-process, T=1", base * 1e3, "ms", note=f"{rounds} reads"
            ),
            unavailable("read", "basic-info read through pcscd+vpcd", str(error)),
        ]
    base = statistics.median(timings[0][1])
    found = []
    for name, samples in timings:
        median = statistics.median(samples)
        found.append(
            row(
                "read",
                f"basic-info read {name}",
                median * 1e3,
                "ms",
                note=f"{median / base:.1f}× in-process, {len(samples)} reads",
            )
        )
    return found


if __name__ == "__main__":
    print_rows(report(rounds_option(__doc__, 200, "reads per path")))
