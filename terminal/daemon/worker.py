"""The decision worker: the one thread that runs the pipeline, one job after another.

Reader and scanner threads hand it a :class:`Job` (a connected card, or a scanned text) and
wait for it to be done; the worker decides it through the pipeline holding the daemon's
``store_lock`` (the pipeline journals with fsync before any indicator fires), so decisions never
interleave and an operator command through the admin socket waits for the decision in flight,
never the reverse. An exception in one job is logged with its source, counted, and the job
answered as failed; the worker carries on. A store that cannot journal (a disk full, a damaged
file) is the ``store`` device's alarm until a decision is journaled again. It is the only user
of the security module, so it also reopens a PSAM that was missing
(:meth:`DecisionWorker.ensure_module`).

When the daemon serves the host API it has a :class:`~terminal.host.desk.Desk`: the worker
tells it each decision (what ``GET /v1/card`` answers) and, for a card, first takes the desk's
waiting action (a hotel room, a hospital PIN) and decides the card with it; a PIN verification
asked through the API is sent to the card here too, not journaled (it decides nothing); a
medical settlement (``POST /v1/hospital/settle``) is settled here with the daemon's pipeline and
security module (:class:`~terminal.settlement.MedicalSettlement`, recovering a torn one within
``[payments] tear_window_s``), journaled under the store lock like any tap.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from apdu.atr import Atr
from apdu.errors import SscardError, WrongPin
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from drivers.pcsc import PcscConnection
from drivers.psam import open_psam
from offline_store import StoreError
from terminal.card_read import ScenarioRead
from terminal.daemon.parts import DaemonParts
from terminal.ecard_flow import CodeVerifier, process_code, verifier_from_settings
from terminal.host.desk import REGISTER, SETTLE, VERIFY_PIN, DeskAction
from terminal.outcomes import Failure, classify
from terminal.pipeline import Decision
from terminal.reasons import Reason
from terminal.settlement import MedicalSettlement

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.2
MODULE_RETRY_S = 1.0  # a missing PSAM is looked for again this often (and before each card)
CARD, CODE = "card", "code"
#: the device whose alarm says decisions cannot be journaled (a disk full, a damaged store)
STORE = "store"


@dataclass
class Job:
    """One presentation for the worker to decide.

    :param kind: ``card`` or ``code``
    :param source: the reader's or the scanner's name
    :param seen: :func:`time.monotonic` when the card or code was seen
    :param connection: the card's connection (``card``)
    :param text: the scanned text (``code``)
    :param for_desk: the card was decided already and is presented again for a desk action
    """

    kind: str
    source: str
    seen: float
    connection: PcscConnection | None = None
    text: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    decision: Decision | None = None
    error: str | None = None
    action: DeskAction | None = None
    for_desk: bool = False  # a card decided already, presented again for the desk's action


class CountingConnection:
    """A card connection that counts the APDUs sent through it (the metrics' APDUs per tap).

    :param inner: the connection
    """

    def __init__(self, inner: PcscConnection) -> None:
        self.inner = inner
        self.count = 0

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one APDU.

        :param apdu: the command
        :raises CardRemoved: the card left
        :raises ReaderUnavailable: the reader or pcscd went away
        """
        self.count += 1
        return self.inner.transmit(apdu)

    def close(self) -> None:
        """Close the connection."""
        self.inner.close()


class DecisionWorker:
    """Decide the jobs of every input, one at a time.

    :param daemon: the daemon's parts it uses (its terminal, store lock, metrics, health)
    """

    def __init__(self, daemon: DaemonParts) -> None:
        self.daemon = daemon
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.decided = 0
        self.failed = 0
        self._verifier: CodeVerifier | None = None
        self._module_checked = 0.0

    def submit(self, job: Job) -> None:
        """Queue a job; the caller waits on ``job.done``.

        :param job: the job
        """
        self.jobs.put(job)

    def stop(self) -> None:
        """Ask the worker to end once the jobs queued before are decided."""
        self.jobs.put(None)

    def run(self) -> None:
        """The worker thread: decide jobs until :meth:`stop`."""
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_POLL_S)
            except queue.Empty:
                self.ensure_module()
                continue
            if job is None:
                return
            try:
                self._decide(job)
                self.daemon.health.up(STORE)
            except StoreError as exc:  # the holder hears why; the operator, once
                self.daemon.terminal.pipeline.signal_unjournaled()
                self.failed += 1
                job.error = f"{type(exc).__name__}: {exc}"
                log.error("event=decision_not_journaled source=%r kind=%s error=%r",
                          job.source, job.kind, str(exc))  # fmt: skip
                self.daemon.health.down(STORE, f"decisions cannot be journaled: {exc}")
            except Exception as exc:  # one bad job must not stop the terminal: log, count, go on
                self.failed += 1
                job.error = f"{type(exc).__name__}: {exc}"
                log.error("event=decision_failed source=%r kind=%s error=%r",
                          job.source, job.kind, job.error, exc_info=True)  # fmt: skip
                if job.action is not None and self.daemon.desk is not None:
                    self.daemon.desk.decided(job.source, None, {}, None, action=job.action)
            finally:
                job.done.set()

    def _decide(self, job: Job) -> None:
        daemon = self.daemon
        read: ScenarioRead | None = None
        if job.kind == CARD:
            self.ensure_module(force=True)
            if daemon.desk is not None:
                job.action = daemon.desk.claim(job.source)
            if job.for_desk and job.action is None:
                return  # another reader's card took the action: this one stays decided once
            if job.action is not None and job.action.kind == VERIFY_PIN:
                self._verify_pin(job, job.action)
                return
            if job.action is not None and job.action.kind == SETTLE:
                self._settle(job, job.action)
                return
            if daemon.desk is not None and job.action is None and self._needs_request():
                # a hotel or hospital desk: the card waits on the reader for the clerk's
                # request (room, PIN) instead of being refused for the lack of it
                daemon.desk.decided(job.source, None, {}, None, action=None, waiting=True)
                return
        elif daemon.desk is not None:
            daemon.desk.events.publish("code.scanned", scanner=job.source)
        with daemon.store_lock:
            terminal = daemon.terminal
            if job.kind == CARD:
                assert job.connection is not None
                connection = CountingConnection(job.connection)
                decision, read = self._decide_card(connection, job.action)
                daemon.metrics.apdus.observe(connection.count)
            else:
                assert job.text is not None
                decision = process_code(terminal.pipeline, self.verifier(), job.text)
            elapsed = self._counted(job, decision)
        job.decision = decision
        if daemon.desk is not None:
            card, national = _shown(read, terminal.settings.device_number)
            daemon.desk.decided(job.source, decision, card, national, action=job.action)
        log.info("event=decided source=%r kind=%s outcome=%s reason=%s seq=%s latency_ms=%.1f",
                 job.source, job.kind, decision.outcome, decision.reason, decision.seq,
                 elapsed * 1000)  # fmt: skip
        if decision.reason == Reason.SECURITY_MODULE_ERROR and terminal.excluded_readers:
            daemon.health.down("psam", f"the PSAM failed during a tap ({decision.detail})")

    def _counted(self, job: Job, decision: Decision) -> float:
        """Count a journaled decision (the caller holds the store lock).

        :returns: seconds from the card or code seen to the decision journaled
        """
        elapsed = time.monotonic() - job.seen  # seen → journaled and shown
        metrics = self.daemon.metrics
        metrics.decisions.labels(decision.outcome, str(decision.reason)).inc()
        metrics.tap_latency.labels(job.kind).observe(elapsed)
        self.decided += 1
        self.daemon.after_decision()
        return elapsed

    def _settle(self, job: Job, action: DeskAction) -> None:
        """Settle the bill of a ``POST /v1/hospital/settle`` on the card (the PIN never
        logged): the daemon's pipeline and security module, the ``[payments]`` tearing window.
        Without a module the desk is answered with nothing settled (the API refuses)."""
        daemon = self.daemon
        desk, terminal = daemon.desk, daemon.terminal
        assert job.connection is not None and desk is not None
        if terminal.module is None:
            desk.decided(job.source, None, {}, None, action=action)
            return
        settlement = MedicalSettlement(
            terminal.pipeline, terminal.module, tear_window_s=terminal.settings.tear_window_s
        )
        connection = CountingConnection(job.connection)
        with daemon.store_lock:
            settled = settlement.settle(
                t0_chain(connection), action.pin or "", action.pay_info or ""
            )
            daemon.metrics.apdus.observe(connection.count)
            elapsed = self._counted(job, settled.decision)
        job.decision = settled.decision
        desk.decided(
            job.source, settled.decision, {}, None, action=action, settled=settled.to_json()
        )
        log.info("event=settled source=%r outcome=%s reason=%s seq=%s latency_ms=%.1f",
                 job.source, settled.decision.outcome, settled.decision.reason,
                 settled.decision.seq, elapsed * 1000)  # fmt: skip

    def _decide_card(
        self, connection: CountingConnection, action: DeskAction | None
    ) -> tuple[Decision, ScenarioRead | None]:
        terminal = self.daemon.terminal
        pipeline = terminal.pipeline
        assert isinstance(connection.inner, PcscConnection)
        try:
            historical = Atr.parse(connection.inner.atr).historical
        except SscardError as exc:  # a card whose ATR does not parse is decided, not skipped
            return pipeline.record(pipeline.read_failed(exc), None, ""), None
        read = ScenarioRead(t0_chain(connection), historical, terminal.profile, terminal.module)
        if action is None:
            return pipeline.process(read), read
        pin = action.pin if action.kind == REGISTER else None
        return pipeline.process(read, room=action.room, pin=pin), read

    def _needs_request(self) -> bool:
        """The scenario decides a card only with a desk's request: a room, or the PIN."""
        rules = self.daemon.terminal.pipeline.rules
        return rules.check_request(None, None) is not None or rules.needs_pin(None)

    def _verify_pin(self, job: Job, action: DeskAction) -> None:
        """Send the PIN of a ``POST /v1/card/pin/verify`` to the card (never logged)."""
        assert job.connection is not None and self.daemon.desk is not None
        tries_left: int | None = None
        failure: Failure | None
        try:
            historical = Atr.parse(job.connection.atr).historical
            SscSession(t0_chain(job.connection), historical).verify_pin(action.pin or "")
        except WrongPin as exc:
            failure, tries_left = classify(exc), exc.tries_left
        except SscardError as exc:
            failure = classify(exc)
        else:
            failure = None
        pin = {
            "code": 0 if failure is None else failure.code,
            "reason": "PIN verified" if failure is None else failure.reason,
            "tries_left": tries_left,
        }
        self.daemon.desk.decided(job.source, None, {}, None, action=action, pin=pin)

    def verifier(self) -> CodeVerifier:
        """The e-card code verifier, built from the settings at first use.

        :raises SscardError: the ``[ecard]`` settings cannot be used
        """
        if self._verifier is None:
            self._verifier = verifier_from_settings(self.daemon.terminal.settings)
        return self._verifier

    def reset_verifier(self) -> None:
        """Forget the verifier (the settings were reloaded)."""
        self._verifier = None

    def ensure_module(self, *, force: bool = False) -> None:
        """Open the PSAM the settings name when it was missing; at most once a second unless
        ``force``. Its state is the ``psam`` device's health.

        :param force: look now (a card is waiting)
        """
        terminal = self.daemon.terminal
        sam = terminal.excluded_readers[0] if terminal.excluded_readers else None
        if sam is None:
            return
        if terminal.module is not None:
            self.daemon.health.up("psam")
            return
        now = time.monotonic()
        if not force and now - self._module_checked < MODULE_RETRY_S:
            return
        self._module_checked = now
        module = open_psam(terminal.pcsc, sam, timeout=0.1)
        if module is None:
            self.daemon.health.down("psam", f"no PSAM in {sam!r}")
            return
        terminal.module = module
        terminal.adopt(module)
        self.daemon.health.up("psam")


def _shown(read: ScenarioRead | None, device_number: str) -> tuple[dict[str, Any], str | None]:
    """What the host API shows of a tap: the scenario's fields as read (base items, then the
    profile's personal fields, and the card number where the profile identifies the holder,
    as the vendor services and the iReadCardBas string do) and the ``iReadCardBas`` string when
    the tap read the SSN and the name; nothing for a card that could not be read."""
    facts = read.facts if read is not None else None
    if read is None or facts is None:
        return {}, None
    card: dict[str, Any] = {
        "region_code": facts.region_code,
        "category": facts.category,
        "expiry_date": facts.expiry_date.isoformat() if facts.expiry_date else None,
        "generation": facts.generation.value if facts.generation else None,
        "genuine": facts.genuine,
        **facts.personal,
    }
    if read.profile.holder_fields:  # a desk that identifies the holder names the card too
        card["card_number"] = facts.card_number
    try:
        national = read.national(facts.terminal_number, device_number)
    except ValueError:
        national = None
    return card, national
