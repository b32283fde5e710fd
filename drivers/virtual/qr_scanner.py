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

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import serial

from drivers.scanners.lines import MAX_LINE
from drivers.scanners.serial import PORT_ERRORS

log = logging.getLogger(__name__)

GARBAGE = b"\xfe\xff#?!\x00\xc3("  # not UTF-8: what a wrong baud rate makes of a code
POLL_S = 0.05  # a read slice: how quickly stop(), a new code and a vanished port are noticed
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


class VirtualQrScanner:
    """Play a serial QR scanner on a serial port, on a background thread.

    :param port_path: the serial device the scanner writes to (e.g. a socat pty link)
    :param baudrate: the line speed
    :param max_line: the terminal's line cap, for :attr:`Fault.OVERLONG`
    :param reconnect_interval_s: how often to retry opening a port that is not there
    """

    def __init__(
        self,
        port_path: str | Path,
        baudrate: int = 9600,
        *,
        max_line: int = MAX_LINE,
        reconnect_interval_s: float = 0.05,
    ) -> None:
        self.port_path = str(port_path)
        self.baudrate = baudrate
        self.max_line = max_line
        self.reconnect_interval_s = reconnect_interval_s
        self._queue: deque[_Emission] = deque()
        self._sent: list[str] = []
        self._connections = 0
        # reentrant: wait_until's predicate reads the properties while the condition is held
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> VirtualQrScanner:
        """Start serving the port on a thread named ``virtual-qr-scanner-<port name>``.

        :raises RuntimeError: when it is running already
        """
        if self._thread is not None:
            raise RuntimeError("the virtual QR scanner is running already")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"virtual-qr-scanner-{Path(self.port_path).name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the port; harmless when called twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> VirtualQrScanner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    @property
    def connections(self) -> int:
        """How many times the scanner opened its port (1 after the first start)."""
        with self._lock:
            return self._connections

    def wait_until(self, predicate: Callable[[VirtualQrScanner], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (it is re-checked after every change).

        :param predicate: a condition on the scanner, e.g. ``lambda s: s.connections >= 2``
        :param timeout: seconds
        :returns: whether it held in time
        """
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # -- the device --------------------------------------------------------------------------

    def _run(self) -> None:
        port: serial.Serial | None = None
        try:
            while not self._stop.is_set():
                if port is None:
                    port = self._open()
                    continue
                with self._lock:
                    emission = self._queue[0] if self._queue else None
                try:
                    if emission is None:
                        # nothing to send: a read slice notices a hung-up port; input is dropped
                        port.read(max(1, port.in_waiting))
                        continue
                    self._send(port, emission)
                except PORT_ERRORS as exc:
                    log.info(
                        "event=virtual_scanner_port_lost port=%s error=%r", self.port_path, exc
                    )
                    with contextlib.suppress(*PORT_ERRORS):
                        port.close()
                    port = None  # the code stays queued and is sent whole after reopening
        finally:
            if port is not None:
                with contextlib.suppress(*PORT_ERRORS):
                    port.close()

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

    def _open(self) -> serial.Serial | None:
        try:
            port = serial.Serial(self.port_path, self.baudrate, timeout=POLL_S, exclusive=True)
        except PORT_ERRORS:
            self._stop.wait(self.reconnect_interval_s)
            return None
        with self._changed:
            self._connections += 1
            self._changed.notify_all()
        log.info("event=virtual_scanner_port_open port=%s", self.port_path)
        return port
