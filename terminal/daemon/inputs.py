"""The input threads: one per card reader (with its state machine) and one per code scanner.

A reader's thread goes round three states (DESIGN.md, "Daemon and host integration")::

    waiting_card ──card connected──► processing ──decided──► waiting_removal ──card left──┐
         ▲                                                                               │
         └───────────────────────────────────────────────────────────────────────────────┘

* A card left on the reader is decided once: after its decision the thread waits for it to
  leave, whatever the time.
* A card pulled and presented again is a new presentation even when the reader never looked
  empty to us: pcsc-lite's event count moved (:meth:`drivers.pcsc.PcscReader.presence`).
* A card pulled mid-read is decided once, by the pipeline, as ``card_removed`` ("tap again");
  the journal row is written whole or not at all (one transaction), never twice.
* pcscd stopped, or the reader unplugged: the state is ``down``, the operator hears it once
  (:class:`~terminal.daemon.supervisor.Health`), and the thread looks again every
  :data:`RETRY_S` seconds, with a new PC/SC context, so the next card after the device's return
  is taken within a poll of pcscd (0.4 s for vpcd) plus :data:`RETRY_S`.

With the host API served (a :class:`~terminal.host.desk.Desk`), the thread tells the desk each
card's arrival and departure, and a card waiting for removal is presented to the worker again
when the desk holds an action for it (a hotel check-in asked after the card was decided).

A scanner's thread opens its scanner (again every :data:`RETRY_S` while it is missing) and hands
each code to the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from apdu.errors import ReaderUnavailable
from drivers.pcsc import PcscConnection
from drivers.scanners import ScannerError
from terminal.daemon.devices import CardSlot, ReaderMissing, open_scanner
from terminal.daemon.supervisor import Health
from terminal.daemon.worker import CARD, CODE, Job
from terminal.host.desk import Desk

log = logging.getLogger(__name__)

POLL_S = 0.25  # a wait for a card or a removal, between looks at the stop flag
RETRY_S = 0.2  # a device that is down is looked for again this often
WAITING, PROCESSING, REMOVAL, DOWN, STOPPED = (
    "waiting_card", "processing", "waiting_removal", "down", "stopped",
)  # fmt: skip

Submit = Callable[[Job], None]


class _InputLoop:
    """What the thread of an input device (a card reader, a code scanner) has: its name in the
    health table, the worker it hands jobs to, the health and the daemon's stop flag.

    :param device: the device's name in the health table (``reader:…``, ``scanner:…``)
    :param submit: hands a job to the decision worker
    :param health: the devices' health
    :param stop: set when the daemon stops
    """

    def __init__(self, device: str, submit: Submit, health: Health, stop: threading.Event) -> None:
        self.device = device
        self.submit = submit
        self.health = health
        self.stop = stop

    def _hand_over(self, job: Job) -> None:
        """Hand a job to the decision worker and wait until it is decided (the worker always
        answers, even when the decision failed)."""
        self.submit(job)
        job.done.wait()


class ReaderLoop(_InputLoop):
    """One card reader's thread.

    :param wanted: the reader's name or a unique part of it
    :param exclude: parts of names never taken (the PSAM's reader)
    :param submit: hands a job to the decision worker
    :param health: the devices' health
    :param stop: set when the daemon stops
    :param on_state: called with the new state at every change (the metrics)
    :param desk: the host API's desk, or ``None`` when the API is not served
    """

    def __init__(
        self,
        wanted: str,
        exclude: tuple[str, ...],
        submit: Submit,
        *,
        health: Health,
        stop: threading.Event,
        on_state: Callable[[str], None] = lambda state: None,
        desk: Desk | None = None,
    ) -> None:
        super().__init__(f"reader:{wanted}", submit, health, stop)
        self.wanted = wanted
        self.exclude = exclude
        self.on_state = on_state
        self.desk = desk
        self.state = WAITING

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    def run(self) -> None:
        """The thread: watch the reader until the daemon stops."""
        slot = CardSlot(self.wanted, self.exclude)
        try:
            self._set(WAITING)
            while not self.stop.is_set():
                self._once(slot)
        finally:
            slot.close()
            self._set(STOPPED)

    def _once(self, slot: CardSlot) -> None:
        try:
            found = slot.wait_card(POLL_S)
        except ReaderUnavailable as exc:
            self._down(slot, exc)
            return
        self.health.up("pcscd")
        self.health.up(self.device)
        self._set(WAITING)
        if found is None:
            return
        connection, events = found
        name = slot.name or self.wanted
        if self.desk is not None:
            self.desk.inserted(name)
        try:
            self._decide(name, connection)
            self._set(REMOVAL)
            while not self.stop.is_set():
                if self.desk is not None and self.desk.wanted(name):
                    again = slot.wait_card(POLL_S)  # the same card, for the desk's action
                    if again is not None:
                        connection, events = again
                        self._decide(name, connection, for_desk=True)
                        self._set(REMOVAL)
                        continue
                if slot.wait_removed(events, POLL_S):
                    break
        except ReaderUnavailable as exc:
            self._down(slot, exc)  # the card is gone with the device: a new presentation
            return
        finally:
            if self.desk is not None:
                self.desk.removed(name)
        self._set(WAITING)

    def _decide(self, name: str, connection: PcscConnection, *, for_desk: bool = False) -> None:
        """Hand the card to the worker and wait for its decision; close the connection."""
        self._set(PROCESSING)
        job = Job(CARD, name, time.monotonic(), connection=connection, for_desk=for_desk)
        try:
            self._hand_over(job)
        finally:
            connection.close()

    def _down(self, slot: CardSlot, exc: ReaderUnavailable) -> None:
        self._set(DOWN)
        if isinstance(exc, ReaderMissing):
            self.health.up("pcscd")
            self.health.down(self.device, str(exc))
        else:
            self.health.down("pcscd", str(exc))
            self.health.down(self.device, "no PC/SC service")
        slot.close()  # a new context at the next look: the old one died with pcscd
        self.stop.wait(RETRY_S)


class ScannerLoop(_InputLoop):
    """One code scanner's thread.

    :param spec: the scanner (``serial:PORT[@BAUD]``, ``camera:N``, ``stdin``)
    :param submit: hands a job to the decision worker
    :param health: the devices' health
    :param stop: set when the daemon stops
    """

    def __init__(self, spec: str, submit: Submit, health: Health, stop: threading.Event) -> None:
        super().__init__(f"scanner:{spec}", submit, health, stop)
        self.spec = spec

    def run(self) -> None:
        """The thread: read codes until the daemon stops or the scanner's stream ends."""
        scanner = None
        try:
            while not self.stop.is_set():
                if scanner is None:
                    try:
                        scanner = open_scanner(self.spec)
                    except ScannerError as exc:
                        self.health.down(self.device, str(exc))
                        self.stop.wait(RETRY_S)
                        continue
                    self.health.up(self.device)
                try:
                    scan = scanner.read(timeout_s=POLL_S)
                except ScannerError as exc:
                    self.health.down(self.device, str(exc))
                    scanner.close()
                    scanner = None
                    continue
                if scan is None:
                    if scanner.exhausted:
                        log.info("event=scanner_ended scanner=%r", self.spec)
                        return
                    continue
                self._hand_over(Job(CODE, self.spec, scan.monotonic, text=scan.text))
        finally:
            if scanner is not None:
                scanner.close()
