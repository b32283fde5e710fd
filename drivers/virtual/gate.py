"""An emulated indicator board (gate relay, LEDs, buzzer) on a serial port, for tests and demos.

It plays the board side of ``docs/indicator-protocol.md`` on a real serial device — in tests the
far end of a ``socat`` pty pair — records what it was told to do, and can misbehave on demand:
stay silent, answer ``ERR``, answer late, or answer garbage. Like a real board it comes back
by itself when its port disappears and reappears (the pty pair restarted, the cable replugged).

Like the vpcd bridge, it owns a thread: it plays the device, not the terminal.
"""

from __future__ import annotations

import logging
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
from drivers.virtual.serial_device import VirtualSerialDevice

log = logging.getLogger(__name__)

GARBAGE = b"\xfe\xff#?!\x00" + EOL  # what a board with a wrong baud rate might send
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


class VirtualGate(VirtualSerialDevice):
    """Play an indicator board on a serial port, on a background thread.

    :param port_path: the serial device the board listens on (e.g. a socat pty link)
    :param baudrate: the line speed
    :param reconnect_interval_s: how often to retry opening a port that is not there
    """

    kind = "virtual-gate"

    def __init__(
        self, port_path: str | Path, baudrate: int = 9600, reconnect_interval_s: float = 0.05
    ) -> None:
        super().__init__(port_path, baudrate, reconnect_interval_s)
        self._record = GateRecord()
        self._faults: list[_Scheduled] = []
        self._buffer = bytearray()

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

    # -- the board ---------------------------------------------------------------------------

    def _opened(self) -> None:
        self._buffer.clear()  # half a line from before the port went away is not a command

    def _step(self, port: serial.Serial) -> None:
        self._buffer += port.read(max(1, port.in_waiting))
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            self._serve(port, line)
        if len(self._buffer) > MAX_LINE:
            self._answer(port, encode_answer(NOTICE_TAG, "line too long"))
            self._buffer.clear()

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
    # ASCII digits only: "²" passes isdigit() and int() refuses it; a 5000-digit text too
    if not (0 < len(text) <= len(str(high)) and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= high else None
