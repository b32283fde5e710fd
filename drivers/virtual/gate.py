"""An emulated indicator board (gate relay, LEDs, buzzer) on a serial port, for tests and demos.

It plays the board side of ``docs/indicator-protocol.md`` on a real serial device — in tests the
far end of a ``socat`` pty pair — records what it was told to do, and can misbehave on demand:
stay silent, answer ``ERR``, answer late, or answer garbage. Like a real board it comes back
by itself when its port disappears and reappears (the pty pair restarted, the cable replugged).

Like the vpcd bridge, it owns a thread: it plays the device, not the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import serial

from drivers.indicators.protocol import (
    EOL,
    GATE_MS_MAX,
    GATE_MS_MIN,
    LED_MS_MAX,
    LED_MS_MIN,
    MAX_LINE,
    NOTICE_TAG,
    PING,
    Beep,
    Led,
    LineFormatError,
    decode_command,
    encode_answer,
)
from drivers.indicators.serial_board import PORT_ERRORS

log = logging.getLogger(__name__)

GARBAGE = b"\xfe\xff#?!\x00" + EOL  # what a board with a wrong baud rate might send
POLL_S = 0.05  # a read slice: how quickly stop() and a vanished port are noticed
LED_COLOURS = frozenset(Led) - {Led.OFF}
BEEPS = frozenset(Beep)


class Fault(StrEnum):
    """How the emulated board misbehaves for a command."""

    SILENT = "silent"  # no answer at all; the command is not carried out
    ERR = "err"  # ``<tag> ERR fault injected``; not carried out
    SLOW = "slow"  # carried out, answered after ``delay_s``
    GARBAGE = "garbage"  # a line of non-ASCII bytes instead of the answer; not carried out


@dataclass(slots=True)
class _Scheduled:
    fault: Fault
    remaining: int | None  # None: until cleared
    prefix: str
    delay_s: float


@dataclass(slots=True)
class GateRecord:
    """What the board did, in order.

    :param gate_opens: the ``GATE OPEN`` durations carried out, in ms
    :param leds: ``(colour, ms)`` of each ``LED`` command carried out
    :param beeps: the ``BEEP`` patterns carried out
    :param commands: every command line received (tag removed), carried out or not
    :param pings: ``PING`` commands answered
    """

    gate_opens: list[int] = field(default_factory=list)
    leds: list[tuple[str, int]] = field(default_factory=list)
    beeps: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    pings: int = 0


class VirtualGate:
    """Play an indicator board on a serial port, on a background thread.

    :param port_path: the serial device the board listens on (e.g. a socat pty link)
    :param baudrate: the line speed
    :param reconnect_interval_s: how often to retry opening a port that is not there
    """

    def __init__(
        self, port_path: str | Path, baudrate: int = 9600, reconnect_interval_s: float = 0.05
    ) -> None:
        self.port_path = str(port_path)
        self.baudrate = baudrate
        self.reconnect_interval_s = reconnect_interval_s
        self._record = GateRecord()
        self._faults: list[_Scheduled] = []
        # reentrant: wait_until's predicate reads the properties while the condition is held
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connections = 0
        self._changed = threading.Condition(self._lock)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> VirtualGate:
        """Start serving the port on a thread named ``virtual-gate-<port name>``.

        :raises RuntimeError: when it is running already
        """
        if self._thread is not None:
            raise RuntimeError("the virtual gate is running already")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"virtual-gate-{Path(self.port_path).name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the port; harmless when called twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> VirtualGate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and records ------------------------------------------------------------------

    def inject(
        self, fault: Fault, *, times: int | None = 1, command: str = "", delay_s: float = 1.0
    ) -> None:
        """Misbehave for the next ``times`` commands that start with ``command``.

        Faults are queued: each command takes the first queued fault that matches it.

        :param fault: what to do
        :param times: how many commands it applies to, ``None`` until :meth:`clear_faults`
        :param command: a command prefix, e.g. ``BEEP``; empty matches every command
        :param delay_s: the delay of :attr:`Fault.SLOW`
        """
        with self._lock:
            self._faults.append(_Scheduled(fault, times, command, delay_s))

    def clear_faults(self) -> None:
        """Behave again."""
        with self._lock:
            self._faults.clear()

    @property
    def record(self) -> GateRecord:
        """A copy of what the board did so far."""
        with self._lock:
            r = self._record
            return GateRecord(
                list(r.gate_opens), list(r.leds), list(r.beeps), list(r.commands), r.pings
            )

    @property
    def connections(self) -> int:
        """How many times the board opened its port (1 after the first start)."""
        with self._lock:
            return self._connections

    def wait_until(self, predicate: Callable[[VirtualGate], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (it is re-checked after every change).

        :param predicate: a condition on the board, e.g. ``lambda g: g.connections >= 2``
        :param timeout: seconds
        :returns: whether it held in time
        """
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # -- the board ---------------------------------------------------------------------------

    def _run(self) -> None:
        port: serial.Serial | None = None
        buffer = bytearray()
        try:
            while not self._stop.is_set():
                if port is None:
                    port = self._open()
                    buffer.clear()
                    continue
                try:
                    chunk = port.read(max(1, port.in_waiting))
                    buffer += chunk
                    while (end := buffer.find(b"\n")) >= 0:
                        line = bytes(buffer[:end]).rstrip(b"\r")
                        del buffer[: end + 1]
                        self._serve(port, line)
                    if len(buffer) > MAX_LINE:
                        self._answer(port, encode_answer(NOTICE_TAG, "line too long"))
                        buffer.clear()
                except PORT_ERRORS as exc:
                    log.info("event=virtual_gate_port_lost port=%s error=%r", self.port_path, exc)
                    with contextlib.suppress(*PORT_ERRORS):
                        port.close()
                    port = None
        finally:
            if port is not None:
                with contextlib.suppress(*PORT_ERRORS):
                    port.close()

    def _open(self) -> serial.Serial | None:
        try:
            port = serial.Serial(self.port_path, self.baudrate, timeout=POLL_S, exclusive=True)
        except PORT_ERRORS:
            self._stop.wait(self.reconnect_interval_s)
            return None
        with self._changed:
            self._connections += 1
            self._changed.notify_all()
        log.info("event=virtual_gate_port_open port=%s", self.port_path)
        return port

    def _serve(self, port: serial.Serial, line: bytes) -> None:
        try:
            tag, command = decode_command(line)
        except LineFormatError as exc:
            self._answer(port, encode_answer(NOTICE_TAG, f"bad line: {exc}"))
            return
        with self._changed:
            self._record.commands.append(command)
            fault = self._take_fault(command)
            self._changed.notify_all()
        if fault is None or fault.fault is Fault.SLOW:
            if fault is not None and self._stop.wait(fault.delay_s):
                return
            self._answer(port, encode_answer(tag, self._carry_out(command)))
        elif fault.fault is Fault.ERR:
            self._answer(port, encode_answer(tag, "fault injected"))
        elif fault.fault is Fault.GARBAGE:
            self._answer(port, GARBAGE)
        # Fault.SILENT: nothing at all

    def _take_fault(self, command: str) -> _Scheduled | None:
        for scheduled in self._faults:
            if command.startswith(scheduled.prefix):
                if scheduled.remaining is not None:
                    scheduled.remaining -= 1
                    if scheduled.remaining <= 0:
                        self._faults.remove(scheduled)
                return scheduled
        return None

    def _carry_out(self, command: str) -> str | None:
        """Do what a command says; the ERR text, or ``None`` for OK."""
        verb, *args = command.split(" ")
        record = self._record
        with self._changed:
            self._changed.notify_all()  # waiters wake once the lock is released: after the change
            if verb == PING and not args:
                record.pings += 1
                return None
            if verb == "LED" and args == [Led.OFF]:
                record.leds.append((Led.OFF, 0))
                return None
            if len(args) == 2 and verb == "GATE" and args[0] == "OPEN":
                if (ms := _ms(args[1], GATE_MS_MIN, GATE_MS_MAX)) is None:
                    return "bad argument"
                record.gate_opens.append(ms)
                return None
            if len(args) == 2 and verb == "LED" and args[0] in LED_COLOURS:
                if (ms := _ms(args[1], LED_MS_MIN, LED_MS_MAX)) is None:
                    return "bad argument"
                record.leds.append((args[0], ms))
                return None
            if len(args) == 1 and verb == "BEEP" and args[0] in BEEPS:
                record.beeps.append(args[0])
                return None
        return "bad argument" if verb in {PING, "GATE", "LED", "BEEP"} else "unknown command"

    def _answer(self, port: serial.Serial, data: bytes) -> None:
        port.write(data)
        port.flush()


def _ms(text: str, low: int, high: int) -> int | None:
    return int(text) if text.isdigit() and low <= int(text) <= high else None
