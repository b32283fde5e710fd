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

from apdu.errors import SscardError, WrongPin
from apdu.transport import t0_chain
from drivers.pcsc import PcscReader
from offline_store.audit import AuditLog
from terminal.outcomes import Failure, classify
from terminal.pin import pin_operation
from terminal.reading import (
    ReadResult,
    card_fields,
    national_string,
    read_and_classify,
    result_json,
)

Event = dict[str, Any]
PRESENT_NOW_S = 0.3
# the card's items that identify its holder: a read returning any of them is audited
PERSONAL_FIELDS = ("ssn", "name", "card_number", "birth_date", "birthplace", "sex", "ethnicity")


class EventHub:
    """A thread-safe fan-out: every subscriber gets every event published after it joined."""

    def __init__(self, depth: int = 256) -> None:
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[Event]] = []
        self._depth = depth
        self._seq = 0

    def subscribe(self) -> queue.Queue[Event]:
        """A new queue receiving the events published from now on."""
        q: queue.Queue[Event] = queue.Queue(self._depth)
        with self._lock:
            self._queues.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[Event]) -> None:
        """Stop delivering to ``q``."""
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

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

    def healthz(self) -> dict[str, Any]:
        """``ok`` and what is up."""
        ...

    def metrics(self) -> str:
        """Prometheus text exposition."""
        ...


class PcscHostService:
    """:class:`HostService` over pcscd directly, one card operation at a time.

    :param audit: the offline store's access audit: every read of personal data is recorded
        there with the client's origin
    :param terminal_id: this terminal's id, for the audit
    :param device_number: 终端设备号 for the ``iReadCardBas`` string
    """

    def __init__(self, audit: AuditLog, terminal_id: str, device_number: str = "") -> None:
        self._audit = audit
        self._terminal_id = terminal_id
        self.events = EventHub()
        self._device_number = device_number
        self._lock = threading.Lock()
        self._pcsc = PcscReader()
        self._counts: dict[str, int] = {"reads_ok": 0, "reads_failed": 0}
        self._started = time.monotonic()
        self._last_presence: dict[str, bool] = {}

    def close(self) -> None:
        """Release the PC/SC context."""
        with self._lock:
            self._pcsc.__exit__(None, None, None)

    def _presence(self) -> dict[str, bool]:
        presence = self._pcsc.presence()
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
                connection = self._pcsc.wait_for_card(max(wait_s, PRESENT_NOW_S), reader=reader)
            except SscardError as exc:
                result = ReadResult(None, classify(exc))
            else:
                with connection:
                    result = read_and_classify(
                        connection, connection.atr, connection.reader, connection.protocol_name
                    )
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
                connection = self._pcsc.wait_for_card(max(wait_s, PRESENT_NOW_S), reader=reader)
                with connection:
                    pin_operation(t0_chain(connection), "verify", [pin])
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
