"""A QR code scanner on a serial line (pyserial): USB-CDC and RS-232 scanners in their usual mode
of sending each code as one line of text.

Lines end in CR, LF or CR LF; they are stripped, empty ones dropped, overlong or non-UTF-8 ones
discarded with a warning (the rules are in :mod:`drivers.scanners.lines`). When the port fails
(USB cable pulled, the far end of a pty gone) the base class reopens it once within the read;
an unfinished line from before is forgotten.
"""

from __future__ import annotations

import contextlib
import logging
import termios
import time
from collections.abc import Sequence

import serial

from drivers.scanners.base import DEDUP_S, Scanner, ScannerDisconnected, ScannerError
from drivers.scanners.lines import MAX_LINE, LineBuffer

log = logging.getLogger(__name__)

# SerialException is an OSError; a hung-up tty can also raise a bare termios.error
PORT_ERRORS = (OSError, termios.error)


class SerialScanner(Scanner):
    """Read codes, one per line, from a scanner on a serial port.

    The port is opened exclusively at construction, 8N1 without flow control: most scanners
    ignore the line settings on USB-CDC and use them on RS-232.

    :param port: the device, e.g. ``/dev/ttyACM0``
    :param baudrate: the line speed
    :param dedup_s: see :class:`~drivers.scanners.base.Scanner`
    :param max_line: the longest line kept, in bytes; longer ones are discarded whole
    :raises ValueError: a negative ``dedup_s`` or a ``max_line`` below 1
    :raises ScannerError: when the port cannot be opened
    """

    kind = "serial"

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        *,
        dedup_s: float = DEDUP_S,
        max_line: int = MAX_LINE,
    ) -> None:
        super().__init__(f"serial:{port}", dedup_s=dedup_s)
        self.port = port
        self.baudrate = baudrate
        self.lines = LineBuffer(self.source, max_line)
        self._serial: serial.Serial | None = None
        self._open()

    # -- primitives ----------------------------------------------------------------------------

    def _poll(self, timeout_s: float) -> Sequence[str]:
        port = self._serial
        if port is None:
            raise ScannerDisconnected(f"{self.source}: the port is not open")
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            try:
                port.timeout = remaining
                # whatever is there, at least one byte, never more than a line's worth
                size = min(max(1, port.in_waiting), self.lines.max_line)
                chunk = port.read(size)
            except PORT_ERRORS as exc:
                self._drop()
                raise ScannerDisconnected(f"{self.source}: the port failed: {exc}") from exc
            texts = self.lines.feed(chunk)
            if texts or remaining == 0:
                return texts

    def _reconnect(self) -> None:
        self._drop()
        self._open()

    def _release(self) -> None:
        self._drop()

    # -- port --------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            # exclusive: a second reader on the same scanner would take half of the codes
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0, exclusive=True)
        # ValueError: a baud rate or setting the device does not take
        except (*PORT_ERRORS, ValueError) as exc:
            raise ScannerError(f"{self.source}: cannot open the scanner port: {exc}") from exc
        self.lines.clear()
        log.info("event=scanner_port_open kind=serial port=%s", self.port)

    def _drop(self) -> None:
        port, self._serial = self._serial, None
        self.lines.clear()
        if port is not None:
            with contextlib.suppress(*PORT_ERRORS):
                port.close()
