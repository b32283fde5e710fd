"""A QR code scanner on a serial line (pyserial): USB-CDC and RS-232 scanners in their usual mode
of sending each code as one line of text.

Lines end in CR, LF or CR LF; they are stripped, empty ones dropped, overlong or non-UTF-8 ones
discarded with a warning (the rules are in :mod:`drivers.scanners.lines`). When the port fails
(USB cable pulled, the far end of a pty gone) the base class reopens it once within the read;
an unfinished line from before is forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import serial

from drivers.scanners.base import DEDUP_S, Scanner, ScannerDisconnected, ScannerError
from drivers.scanners.lines import MAX_LINE, LineBuffer
from drivers.serial_port import BAUDRATE, OPEN_ERRORS, PORT_ERRORS, SerialBackend

log = logging.getLogger(__name__)


class SerialScanner(SerialBackend, Scanner):
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

    def __init__(
        self,
        port: str,
        baudrate: int = BAUDRATE,
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
            self._open_port(0)
        except OPEN_ERRORS as exc:
            raise ScannerError(f"{self.source}: cannot open the scanner port: {exc}") from exc
        log.info("event=scanner_port_open kind=serial port=%s", self.port)

    def _forget(self) -> None:
        self.lines.clear()
