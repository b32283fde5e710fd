"""An emulated serial QR code scanner, for tests and demos: the twin of
:class:`drivers.scanners.serial.SerialScanner` on the device side.

It sends codes as lines on a real serial device — in tests the far end of a ``socat`` pty pair
— with the end of line a given model uses (CR LF, CR or LF), and can misbehave on demand: send
a line in several writes with pauses between (a slow UART, USB packets), send a line of
non-UTF-8 bytes (line noise, a wrong baud rate) or an overlong line before the code. Like a
real scanner it comes back by itself when its port disappears and reappears (the pty pair
restarted, the cable replugged), and it ignores whatever the host sends it.

Like the virtual gate, it owns a thread: it plays the device, not the terminal.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import serial

from drivers.scanners.lines import MAX_LINE
from drivers.virtual.serial_device import VirtualSerialDevice

log = logging.getLogger(__name__)

GARBAGE = b"\xfe\xff#?!\x00\xc3("  # not UTF-8: what a wrong baud rate makes of a code
SPLIT_PAUSE_S = 0.05  # between the writes of a split line


class Terminator(StrEnum):
    """The end of line a scanner model is set up to send."""

    CRLF = "\r\n"
    CR = "\r"
    LF = "\n"


class Fault(StrEnum):
    """How the emulated scanner misbehaves for one code."""

    SPLIT = "split"  # the line in four writes, the end of line split from the text
    GARBAGE = "garbage"  # a line of non-UTF-8 bytes first, then the code
    OVERLONG = "overlong"  # a line of max_line + 100 bytes first, then the code


@dataclass(frozen=True, slots=True)
class _Emission:
    text: str
    writes: tuple[bytes, ...]  # written in order, SPLIT_PAUSE_S apart


class VirtualQrScanner(VirtualSerialDevice):
    """Play a serial QR scanner on a serial port, on a background thread.

    :param port_path: the serial device the scanner writes to (e.g. a socat pty link)
    :param baudrate: the line speed
    :param max_line: the terminal's line cap, for :attr:`Fault.OVERLONG`
    :param reconnect_interval_s: how often to retry opening a port that is not there
    """

    kind = "virtual-qr-scanner"

    def __init__(
        self,
        port_path: str | Path,
        baudrate: int = 9600,
        *,
        max_line: int = MAX_LINE,
        reconnect_interval_s: float = 0.05,
    ) -> None:
        super().__init__(port_path, baudrate, reconnect_interval_s)
        self.max_line = max_line
        self._queue: deque[_Emission] = deque()
        self._sent: list[str] = []

    # -- codes -------------------------------------------------------------------------------

    def scan(
        self, text: str, *, terminator: Terminator = Terminator.CRLF, fault: Fault | None = None
    ) -> None:
        """Send ``text`` as one line, as if a code had been held up to the scanner.

        Codes are sent in the order given; this returns at once (see :meth:`wait_sent`).

        :param text: the code's text
        :param terminator: the end of line
        :param fault: how to misbehave while sending it, if at all
        """
        line = text.encode("utf-8") + terminator.encode("ascii")
        writes: tuple[bytes, ...] = (line,)
        if fault is Fault.SPLIT:
            body, end = line[: -len(terminator)], line[-len(terminator) :]
            third = max(len(body) // 3, 1)
            writes = (body[:third], body[third : 2 * third], body[2 * third :], end[:1], end[1:])
        elif fault is Fault.GARBAGE:
            writes = (GARBAGE + terminator.encode("ascii"), line)
        elif fault is Fault.OVERLONG:
            writes = (b"9" * (self.max_line + 100) + terminator.encode("ascii"), line)
        with self._changed:
            self._queue.append(_Emission(text, tuple(w for w in writes if w)))
            self._changed.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        """Wait until every code given to :meth:`scan` was written.

        :param timeout: seconds
        :returns: whether they were in time
        """
        return self.wait_until(lambda s: not s._queue, timeout)

    @property
    def sent(self) -> list[str]:
        """The texts written so far, in order."""
        with self._lock:
            return list(self._sent)

    # -- the device --------------------------------------------------------------------------

    def _step(self, port: serial.Serial) -> None:
        with self._lock:
            emission = self._queue[0] if self._queue else None
        if emission is None:
            # nothing to send: a read slice notices a hung-up port; input is dropped
            port.read(max(1, port.in_waiting))
            return
        # a port lost during a send leaves the code queued: it is sent whole after reopening
        self._send(port, emission)

    def _send(self, port: serial.Serial, emission: _Emission) -> None:
        for index, chunk in enumerate(emission.writes):
            if index and self._stop.wait(SPLIT_PAUSE_S):
                return
            port.write(chunk)
            port.flush()
        with self._changed:
            self._queue.popleft()
            self._sent.append(emission.text)
            self._changed.notify_all()
