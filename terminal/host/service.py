"""What the host API needs from a running terminal, and one implementation over pcscd.

:class:`HostService` is the seam between the API and the terminal: the daemon (``sscard run``)
will provide it; :class:`PcscHostService` provides it now over the existing pieces (the PC/SC
driver and :mod:`terminal.reading`), one operation at a time under its own lock.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any, Protocol

from apdu.atr import Atr
from apdu.errors import SscardError, WrongPin
from apdu.identity import mask_name, mask_ssn
from apdu.sam import NoSecurityModule, SecurityModule
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from config.settings_file import DEFAULT_TEAR_WINDOW_S
from drivers.pcsc import PcscReader
from drivers.psam import PcscPsamModule
from offline_store.audit import check_field_name
from offline_store.errors import StoreError
from offline_store.store import Store
from terminal.card_read import ScenarioRead
from terminal.compose import profile_dir_of
from terminal.outcomes import Failure, classify
from terminal.pipeline import Decision, Pipeline
from terminal.profiles import load_profile
from terminal.reading import (
    ReadResult,
    card_fields,
    national_string,
    read_card,
    result_json,
)
from terminal.settlement import MedicalSettlement

Event = dict[str, Any]
PRESENT_NOW_S = 0.3
# the card's items that identify its holder: a read returning any of them is audited
PERSONAL_FIELDS = ("ssn", "name", "card_number", "birth_date", "birthplace", "sex", "ethnicity")


def check_field_name_ok(name: str) -> bool:
    """True when ``name`` can go into the audit as a field name."""
    try:
        check_field_name(name)
    except StoreError:
        return False
    return True


class EventHub:
    """A thread-safe fan-out: every subscriber gets every event published after it joined."""

    def __init__(self, depth: int = 256) -> None:
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[Event | None]] = []
        self._depth = depth
        self._seq = 0

    def subscribe(self) -> queue.Queue[Event | None]:
        """A new queue receiving the events published from now on; ``None`` in it ends the
        stream (:meth:`hang_up`)."""
        q: queue.Queue[Event | None] = queue.Queue(self._depth)
        with self._lock:
            self._queues.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[Event | None]) -> None:
        """Stop delivering to ``q``."""
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def hang_up(self) -> None:
        """End every stream subscribed now (the server stops: an event stream would otherwise
        hold its worker thread until the next event or keep-alive); later subscribers are
        served as ever."""
        with self._lock:
            for q in self._queues:
                with contextlib.suppress(queue.Empty):
                    if q.full():
                        q.get_nowait()
                with contextlib.suppress(queue.Full):
                    q.put_nowait(None)

    def publish(self, kind: str, **data: Any) -> Event:
        """Send an event to every subscriber; a subscriber whose queue is full loses it.

        :param kind: ``card.inserted``, ``card.removed``, ``card.read``, ``device.up`` …
        :param data: the event's items, never personal data
        """
        with self._lock:
            self._seq += 1
            event = {"seq": self._seq, "type": kind, "at": time.time(), **data}
            for q in self._queues:
                with contextlib.suppress(queue.Full):
                    q.put_nowait(event)
        return event


def action_json(decision: Decision, room: str | None) -> dict[str, Any]:
    """A scenario action's answer: the decision's JSON, and what a desk clerk may see of the
    registration record (name and SSN masked) under ``shown``."""
    out = decision.to_json()
    record = decision.record
    if record:
        out["shown"] = {
            "room": record.get("room", room),
            "name": mask_name(record.get("name")),
            "ssn": mask_ssn(record.get("ssn")),
            "region_code": record.get("region_code"),
        }
    return out


class HostService(Protocol):
    """What the host API needs from a running terminal."""

    events: EventHub

    def readers(self) -> list[dict[str, Any]]:
        """Each reader: ``name``, ``card_present``, ``state``."""
        ...

    def read_card(self, reader: str | None, wait_s: float, client: str) -> dict[str, Any]:
        """Read the card in ``reader`` for ``client`` (its origin): the ``sscard read`` JSON."""
        ...

    def ireadcardbas(self, reader: str | None, wait_s: float, client: str) -> tuple[str, int]:
        """The ``iReadCardBas`` string (empty on failure) and the national code."""
        ...

    def verify_pin(self, reader: str | None, pin: str, wait_s: float) -> dict[str, Any]:
        """Verify the holder's PIN: ``code`` (0 when right), ``reason``, ``tries_left``."""
        ...

    def hotel_checkin(
        self, room: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """A hotel registration for ``room``: the decision (``Decision.to_json``)."""
        ...

    def hospital_register(
        self, pin: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """A hospital registration with the holder's PIN: the decision (``Decision.to_json``)."""
        ...

    def healthz(self) -> dict[str, Any]:
        """``ok`` and what is up."""
        ...

    def metrics(self) -> str:
        """Prometheus text exposition."""
        ...


class PcscHostService:
    """:class:`HostService` over pcscd directly, one card operation at a time.

    :param store: the offline store: its access audit records every read of personal data with
        the client's origin; the scenario pipelines decide and journal in it
    :param terminal_id: this terminal's id, for the audit and the journal
    :param device_number: 终端设备号 for the ``iReadCardBas`` string
    :param region: the terminal's 6-digit region code (catalogue checks), or ``None``
    :param pcsc: the PC/SC readers (a new context by default)
    :param module: the security module (``open_module``), or ``None``; its reader is never
        taken for a holder's card
    :param authenticate: reads run the national flow with ``module`` (spec §4.3)
    :param tear_window_s: ``[payments] tear_window_s``: how long a torn settlement waits for
        its card
    """

    def __init__(
        self,
        store: Store,
        terminal_id: str,
        device_number: str = "",
        region: str | None = None,
        *,
        pcsc: PcscReader | None = None,
        module: SecurityModule | None = None,
        authenticate: bool = False,
        tear_window_s: float = DEFAULT_TEAR_WINDOW_S,
    ) -> None:
        self._module = module
        self._tear_window_s = tear_window_s
        self._authenticate = authenticate
        self._exclude = [module.reader] if isinstance(module, PcscPsamModule) else []
        self._store = store
        self._audit = store.audit
        self._terminal_id = terminal_id
        self._region = region
        self.events = EventHub()
        self._device_number = device_number
        self._lock = threading.Lock()
        self._pcsc = pcsc if pcsc is not None else PcscReader()
        self._counts: dict[str, int] = {"reads_ok": 0, "reads_failed": 0}
        self._started = time.monotonic()
        self._last_presence: dict[str, bool] = {}

    def close(self) -> None:
        """Release the PC/SC context."""
        with self._lock:
            if self._module is not None:
                self._module.close()
            self._pcsc.__exit__(None, None, None)

    def _presence(self) -> dict[str, bool]:
        presence = self._pcsc.cards_present()
        for name, present in presence.items():
            if self._last_presence.get(name, False) != present:
                kind = "card.inserted" if present else "card.removed"
                self.events.publish(kind, reader=name)
        self._last_presence = presence
        return presence

    def readers(self) -> list[dict[str, Any]]:
        """Each reader pcscd knows: ``name``, ``card_present``, ``state``."""
        with self._lock:
            presence = self._presence()
        return [
            {"name": n, "card_present": p, "state": "card" if p else "empty"}
            for n, p in presence.items()
        ]

    def _read(self, reader: str | None, wait_s: float, client: str, purpose: str) -> ReadResult:
        with self._lock:
            try:
                self._presence()
                # wait=0 reads the card present now: pcscd needs one poll to report it
                connection = self._pcsc.wait_for_card(
                    max(wait_s, PRESENT_NOW_S), reader=reader, exclude=self._exclude
                )
            except SscardError as exc:
                result = ReadResult(None, classify(exc))
            else:
                result = read_card(connection, authenticate=self._authenticate, module=self._module)
        self._counts["reads_ok" if result.ok else "reads_failed"] += 1
        if result.contents is not None:
            card = card_fields(result.contents)
            personal = [name for name in PERSONAL_FIELDS if card.get(name) is not None]
            if personal:
                who = f"host-api {client}"
                self._audit.record(who, self._terminal_id, "host-api", personal, purpose)
        self.events.publish("card.read", reader=result.reader, ok=result.ok, code=result.code)
        return result

    def read_card(self, reader: str | None, wait_s: float, client: str) -> dict[str, Any]:
        """Wait up to ``wait_s`` for a card and read it (the ``sscard read`` JSON object)."""
        return result_json(self._read(reader, wait_s, client, "GET /v1/card"))

    def ireadcardbas(self, reader: str | None, wait_s: float, client: str) -> tuple[str, int]:
        """The ``iReadCardBas`` string (empty on failure) and the national code."""
        result = self._read(reader, wait_s, client, "GET /v1/card/ireadcardbas")
        if not result.ok:
            return "", result.code
        return national_string(result, self._device_number), 0

    def verify_pin(self, reader: str | None, pin: str, wait_s: float) -> dict[str, Any]:
        """Verify the holder's PIN on the card (the PIN goes to the card only, never logged).

        :returns: ``code`` (0 when right), ``reason`` and ``tries_left`` (after a wrong PIN)
        """
        tries_left: int | None = None
        failure: Failure | None
        with self._lock:
            try:
                self._presence()
                connection = self._pcsc.wait_for_card(
                    max(wait_s, PRESENT_NOW_S), reader=reader, exclude=self._exclude
                )
                with connection:
                    chain = t0_chain(connection)
                    SscSession(chain).verify_pin(pin)
            except WrongPin as exc:
                failure = classify(exc)
                tries_left = exc.tries_left
            except SscardError as exc:
                failure = classify(exc)
            else:
                failure = None
        code = 0 if failure is None else failure.code
        self.events.publish("pin.verified", ok=failure is None, code=code)
        reason = "PIN verified" if failure is None else failure.reason
        return {"code": code, "reason": reason, "tries_left": tries_left}

    def hotel_checkin(
        self, room: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Register the holder of the card presented for ``room`` (the hotel profile's
        pipeline: checks, decision, journal), like ``sscard tap --scenario hotel --room``.

        :returns: the decision's JSON, with the lodging record when accepted
        """
        purpose = "POST /v1/hotel/checkin"
        return self._scenario_action("hotel", reader, wait_s, client, purpose, room=room)

    def hospital_register(
        self, pin: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Register the patient holding the card presented, with the holder's PIN (the
        hospital profile's pipeline), like ``sscard tap --scenario hospital --pin``."""
        purpose = "POST /v1/hospital/register"
        return self._scenario_action("hospital", reader, wait_s, client, purpose, pin=pin)

    def _scenario_action(
        self,
        scenario: str,
        reader: str | None,
        wait_s: float,
        client: str,
        purpose: str,
        *,
        room: str | None = None,
        pin: str | None = None,
    ) -> dict[str, Any]:
        pipeline = self._pipeline(scenario)
        profile = pipeline.profile
        with self._lock:
            self._presence()
            connection = self._pcsc.wait_for_card(
                max(wait_s, PRESENT_NOW_S), reader=reader, exclude=self._exclude
            )
            with connection:
                read = ScenarioRead(
                    t0_chain(connection),
                    Atr.parse(connection.atr).historical,
                    profile,
                    self._module,
                )
                decision = pipeline.process(read, room=room, pin=pin)
        if decision.record:
            fields = [name for name in decision.record if check_field_name_ok(name)]
            self._audit.record(f"host-api {client}", self._terminal_id, scenario, fields, purpose)
        self.events.publish(
            "decision", scenario=scenario, outcome=decision.outcome, reason=str(decision.reason)
        )
        return action_json(decision, room)

    def _pipeline(self, scenario: str) -> Pipeline:
        return Pipeline(
            load_profile(scenario),
            self._store,
            terminal_id=self._terminal_id,
            profile_dir=profile_dir_of(scenario),
            region=self._region,
        )

    def hospital_settle(
        self, pin: str, pay_info: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Settle a medical bill on the card presented (:mod:`terminal.settlement`), journaled
        by the hospital profile's pipeline.

        :returns: ``code`` (0 when debited), ``result`` (the ``iDoDebit`` output), ``decision``
        :raises NoSecurityModule: no SSC PSAM to settle with
        """
        if self._module is None:
            raise NoSecurityModule("a settlement needs the SSC PSAM (--sam-reader)")
        settlement = MedicalSettlement(
            self._pipeline("hospital"), self._module, tear_window_s=self._tear_window_s
        )
        with self._lock:
            self._presence()
            connection = self._pcsc.wait_for_card(
                max(wait_s, PRESENT_NOW_S), reader=reader, exclude=self._exclude
            )
            with connection:
                settled = settlement.settle(t0_chain(connection), pin, pay_info)
        decision = settled.decision
        self.events.publish(
            "decision", scenario="hospital", outcome=decision.outcome, reason=str(decision.reason)
        )
        return settled.to_json()

    def healthz(self) -> dict[str, Any]:
        """``ok`` when pcscd answers."""
        try:
            count = len(self.readers())
        except SscardError as exc:
            return {"ok": False, "pcsc": False, "reason": classify(exc).reason}
        return {"ok": True, "pcsc": True, "readers": count}

    def metrics(self) -> str:
        """Counters in the Prometheus text format."""
        lines = [
            "# TYPE sscard_host_reads_total counter",
            f'sscard_host_reads_total{{ok="true"}} {self._counts["reads_ok"]}',
            f'sscard_host_reads_total{{ok="false"}} {self._counts["reads_failed"]}',
            "# TYPE sscard_host_uptime_seconds gauge",
            f"sscard_host_uptime_seconds {time.monotonic() - self._started:.1f}",
        ]
        return "\n".join(lines) + "\n"
