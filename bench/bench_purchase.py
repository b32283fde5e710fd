"""Benchmark: the software overhead of a transit purchase, and its APDUs against the minimum.

A purchase runs the card's transit session and the transit PSAM, both emulated in-process,
with 0 ms and 5 ms per APDU. Every APDU goes through a timing link that records the time spent
inside the emulators — the bare APDU exchange, what a reader and a card would cost anyway —
so the same run gives the purchase's own cost: wall time minus the exchange. The table shows
p50 and p99 of each, and the APDUs per purchase against the fewest the flow can send:

* card, T=1: SELECT, READ BINARY (the MAC1 factors), INITIALIZE, DEBIT — 4; on T=0 three more
  GET RESPONSE (the FCI, the INITIALIZE and DEBIT answers);
* PSAM: ``80 70`` and ``80 72`` — 2, plus GET RESPONSE for MAC1 (T=0, as PSAMs are); the
  purchase DF is selected once per PSAM, not per fare.

The terminal's fare step (:class:`terminal.payments.TransitPayments`: SELECT and EF 0015, the
open-purchase lookup, the fare rules, the purchase and its two journal rows, each committed
with ``synchronous=FULL`` on a real store file) is timed the same way: its overhead over the
bare exchange in-process, and its whole time at 5 ms per APDU through a real pcscd with the
card in vpcd slot 0 and the transit PSAM in slot 1 (goal: under 300 ms; an ``unavailable``
row where pcscd or vpcd is missing).

No assertion on time: it prints. Run: ``.venv/bin/python bench/bench_purchase.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from shape import Row, row, unavailable

from apdu.errors import SscardError
from apdu.payment import Charge
from apdu.purchase import Purchase
from apdu.transit import TransitPurseSession
from apdu.transit_psam import TransitPsamModule
from apdu.transport import Connection, t0_chain
from drivers.keyfile import load_root_keys
from drivers.pcsc import PcscReader
from drivers.virtual import PERSONAS, TEST_KEYS
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.persona import load_persona
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.transit_psam import VirtualTransitPsam, load_transit_psam
from drivers.virtual.vpcd import VpcdBridge
from offline_store import Store
from terminal.card_read import ScenarioRead
from terminal.fares import PurseRules
from terminal.payments import TransitPayments
from terminal.pipeline import ACCEPT, Decision, Pipeline
from terminal.profiles import load_profile
from terminal.reasons import Reason

PERSONA = PERSONAS / "ordinary-2.0.toml"
ROOTS = TEST_KEYS / "test-roots.toml"
PSAM = TEST_KEYS / "transit-psam.toml"
WHEN = dt.datetime(2026, 11, 29, 7, 58, 3)
MINIMUM = {False: 4 + 2 + 1, True: 7 + 2 + 1}  # card + PSAM (+ its GET RESPONSE), per T=0


class TimedLink:
    """A connection that hands every APDU on and adds up the time spent below it.

    :param inner: the emulator's connection
    """

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.spent = 0.0
        self.count = 0

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Forward ``apdu`` and time the exchange.

        :param apdu: the command bytes
        """
        started = time.perf_counter()
        try:
            return self.inner.transmit(apdu)
        finally:
            self.spent += time.perf_counter() - started
            self.count += 1

    def close(self) -> None:
        """Close the emulator's connection."""
        self.inner.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def run(latency_ms: float, t0: bool, rounds: int) -> dict[str, float]:
    roots = load_root_keys(ROOTS, require_private=False)
    persona = load_persona(PERSONA)
    psam = VirtualTransitPsam(load_transit_psam(PSAM), Behaviour(t0=True, latency_ms=latency_ms))
    psam_link = TimedLink(VirtualConnection(psam))
    module = TransitPsamModule(t0_chain(psam_link))
    module.terminal_number()  # once at start-up
    walls, bare, counts = [], [], []
    for _ in range(rounds):
        card = VirtualSscCard(persona, Behaviour(t0=t0, latency_ms=latency_ms), roots)
        card_link = TimedLink(VirtualConnection(card))
        psam_link.spent, psam_link.count = 0.0, 0
        started = time.perf_counter()
        Purchase(TransitPurseSession(t0_chain(card_link)), module, Charge(200), WHEN).run()
        walls.append(time.perf_counter() - started)
        bare.append(card_link.spent + psam_link.spent)
        counts.append(card_link.count + psam_link.count)
    overhead = [w - b for w, b in zip(walls, bare, strict=True)]
    return {
        "wall50": pct(walls, 0.5),
        "wall99": pct(walls, 0.99),
        "bare50": pct(bare, 0.5),
        "over50": pct(overhead, 0.5),
        "over99": pct(overhead, 0.99),
        "apdus": statistics.mean(counts[1:] or counts),  # the first pays the DF SELECT
        "minimum": MINIMUM[t0],
    }


CARD_READER, PSAM_READER = "Virtual PCD 00 00", "Virtual PCD 00 01"
FARE_GOAL_MS = 300.0  # issue 15: a whole purchase at 5 ms per APDU through pcscd


@contextmanager
def fare_step(module: TransitPsamModule) -> Iterator[tuple[Pipeline, TransitPayments]]:
    """A transit pipeline on a fresh store file with its fare step."""
    with (
        tempfile.TemporaryDirectory() as folder,
        Store.open(Path(folder) / "store.db", journal_key=os.urandom(32)) as store,
    ):
        pipeline = Pipeline(load_profile("transit"), store, terminal_id="BENCH")
        yield pipeline, TransitPayments(store, module, PurseRules(), tear_window_s=300)


def take_fare(pipeline: Pipeline, payments: TransitPayments, card: Connection) -> None:
    """One fare on the card (an accepted tap's purchase step)."""
    read = ScenarioRead(card, b"", pipeline.profile, None)
    decision = Decision(ACCEPT, Reason.OK, {"fare_fen": 200})
    paid = payments(pipeline, decision, read, "")
    assert pipeline.record(paid, None, "").reason == Reason.OK  # the done row


def terminal_fares(latency_ms: float, rounds: int) -> dict[str, float]:
    """The fare step in-process: wall time and its overhead over the bare exchange."""
    roots = load_root_keys(ROOTS, require_private=False)
    persona = load_persona(PERSONA)
    psam = VirtualTransitPsam(load_transit_psam(PSAM), Behaviour(t0=True, latency_ms=latency_ms))
    psam_link = TimedLink(VirtualConnection(psam))
    module = TransitPsamModule(t0_chain(psam_link))
    module.terminal_number()
    walls, overhead, counts = [], [], []
    with fare_step(module) as (pipeline, payments):
        for _ in range(rounds):
            card = VirtualSscCard(persona, Behaviour(latency_ms=latency_ms), roots)
            link = TimedLink(VirtualConnection(card))
            psam_link.spent, psam_link.count = 0.0, 0
            started = time.perf_counter()
            take_fare(pipeline, payments, t0_chain(link))
            walls.append(time.perf_counter() - started)
            overhead.append(walls[-1] - link.spent - psam_link.spent)
            counts.append(link.count + psam_link.count)
    return {
        "wall50": pct(walls, 0.5),
        "over50": pct(overhead, 0.5),
        "over99": pct(overhead, 0.99),
        "apdus": statistics.mean(counts[1:] or counts),  # the first pays the DF SELECT
    }


def pcscd_fares(rounds: int) -> list[float]:
    """The fare step through a real pcscd at 5 ms per APDU (card slot 0, PSAM slot 1), ms.

    :raises SscardError: no pcscd or vpcd here
    """
    roots = load_root_keys(ROOTS, require_private=False)
    persona = load_persona(PERSONA)
    with ExitStack() as stack:
        if running_pid() is None:
            daemon = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-bench-pcscd.log")
            daemon.start()
            stack.callback(daemon.stop)
        readers = stack.enter_context(PcscReader())
        psam = VirtualTransitPsam(load_transit_psam(PSAM), Behaviour(t0=True, latency_ms=5))
        psam_bridge = VpcdBridge(psam, slot=1)
        psam_bridge.insert()
        stack.callback(psam_bridge.remove)
        psam_connection = stack.enter_context(readers.wait_for_card(5, reader=PSAM_READER))
        module = TransitPsamModule(t0_chain(psam_connection))
        module.terminal_number()
        pipeline, payments = stack.enter_context(fare_step(module))
        times = []
        for _ in range(rounds):
            bridge = VpcdBridge(VirtualSscCard(persona, Behaviour(latency_ms=5), roots), slot=0)
            bridge.insert()
            try:
                with readers.wait_for_card(5, reader=CARD_READER) as connection:
                    started = time.perf_counter()
                    take_fare(pipeline, payments, t0_chain(connection))
                    times.append((time.perf_counter() - started) * 1000)
            finally:
                bridge.remove()
                readers.wait_for_removal(CARD_READER, 5)
        return times


def fare_rows(quick: bool) -> list[Row]:
    """The terminal's fare step: overhead in-process, whole time through pcscd."""
    fares = terminal_fares(0.0, 20 if quick else 200)
    found = [
        row(
            "purchase",
            "fare step software cost (2 synced journal rows), 0 ms/APDU",
            fares["over50"],
            "ms",
            note=f"p99 {fares['over99']:.2f} ms over the bare exchange",
        ),
        row(
            "purchase",
            "APDUs per fare step, T=1 (card + PSAM)",
            fares["apdus"],
            "APDUs",
            goal=MINIMUM[False],
            comparison="==",
            note="the purchase's minimum: the step adds no command",
        ),
    ]
    try:
        times = pcscd_fares(5 if quick else 30)
    except SscardError as error:
        return [*found, unavailable("purchase", "whole fare through pcscd, 5 ms/APDU", str(error))]
    found.append(
        row(
            "purchase",
            "whole fare through pcscd, 5 ms/APDU (card + PSAM slots)",
            statistics.median(times),
            "ms",
            goal=FARE_GOAL_MS,
            comparison="<=",
            note=f"p99 {pct([t / 1000 for t in times], 0.99):.1f} ms, {len(times)} fares",
        )
    )
    return found


def measure(quick: bool) -> list[Row]:
    """The purchase's own cost at 5 ms per APDU against the 2 % goal, and its APDUs.

    :param quick: 20 and 5 purchases instead of 200 and 20
    """
    found = []
    for t0 in (False, True):
        card = "T=0" if t0 else "T=1"
        bare = run(0.0, t0, 20 if quick else 200)
        found.append(
            row(
                "purchase",
                f"purchase software cost, 0 ms/APDU, {card}",
                bare["over50"],
                "ms",
                note=f"p99 {bare['over99']:.2f} ms",
            )
        )
        slow = run(5.0, t0, 5 if quick else 20)
        found.append(
            row(
                "purchase",
                f"tap software overhead at 5 ms/APDU, {card}",
                100 * slow["over50"] / slow["wall50"],
                "%",
                goal=2.0,
                note=f"{slow['over50']:.2f} ms of a {slow['wall50']:.1f} ms purchase (p50)",
            )
        )
        found.append(
            row(
                "purchase",
                f"APDUs per purchase, {card} (card + PSAM)",
                bare["apdus"],
                "APDUs",
                goal=bare["minimum"],
                comparison="==",
                note="minimum: see the module docstring",
            )
        )
    return found + fare_rows(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(
        f"{'latency':>8} {'card':>5} {'wall p50':>9} {'wall p99':>9} {'bare p50':>9} "
        f"{'ovh p50':>8} {'ovh p99':>8} {'APDUs':>6} {'min':>4}"
    )
    for latency in (0.0, 5.0):
        rounds = args.rounds if latency == 0 else max(20, args.rounds // 10)
        for t0 in (False, True):
            r = run(latency, t0, rounds)
            print(
                f"{latency:>6.0f}ms {'T=0' if t0 else 'T=1':>5} {r['wall50']:>7.2f}ms "
                f"{r['wall99']:>7.2f}ms {r['bare50']:>7.2f}ms {r['over50']:>6.2f}ms "
                f"{r['over99']:>6.2f}ms {r['apdus']:>6.1f} {r['minimum']:>4}"
            )


if __name__ == "__main__":
    main()
