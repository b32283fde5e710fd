"""What the serial back-ends (the indicator board, the code scanner) share: a pyserial port
opened exclusively at the usual line speed, the errors a port that went away raises, and a
close that does not care whether it is still there.

Only the serial back-ends import this module (the registries load them by name), so pyserial
is needed only where a serial device is configured.
"""

from __future__ import annotations

import contextlib
import termios
from abc import ABC, abstractmethod
from typing import ClassVar

import serial

__all__ = ["BAUDRATE", "OPEN_ERRORS", "PORT_ERRORS", "SerialBackend", "close_quietly", "open_port"]

BAUDRATE = 9600  # what boards and scanners ship set to
# what pyserial lets through from a port that went away: SerialException is an OSError, but
# tcflush/tcdrain on a hung-up tty raise a bare termios.error
PORT_ERRORS = (OSError, termios.error)
# and at opening, ValueError: a baud rate or port setting the device does not take
OPEN_ERRORS = (*PORT_ERRORS, ValueError)


def open_port(port: str, baudrate: int, timeout_s: float) -> serial.Serial:
    """Open a serial port, 8N1 without flow control, exclusively: a second process on the same
    device would take half of what it sends.

    :param port: the device, e.g. ``/dev/ttyUSB0``
    :param baudrate: the line speed
    :param timeout_s: the read timeout (0: return what is there)
    :raises OSError: (or another of :data:`OPEN_ERRORS`) the port cannot be opened
    """
    return serial.Serial(port, baudrate, timeout=timeout_s, exclusive=True)


def close_quietly(port: serial.Serial | None) -> None:
    """Close a port, saying nothing when it has gone away already.

    :param port: the open port, or ``None`` (nothing to close)
    :raises: nothing
    """
    if port is not None:
        with contextlib.suppress(*PORT_ERRORS):
            port.close()


class SerialBackend(ABC):
    """The port of a serial back-end, mixed in before its device kind's base class: the port's
    name and line speed, the open port, opening it afresh and dropping it.

    A back-end sets :attr:`port`, :attr:`baudrate` and ``_serial`` (``None`` while closed) and
    says what it forgets of a port it opens or drops (:meth:`_forget`).
    """

    kind: ClassVar[str] = "serial"
    port: str
    baudrate: int
    _serial: serial.Serial | None

    @abstractmethod
    def _forget(self) -> None:
        """Forget what was read from the port so far (an unfinished line is of no use on a
        port opened afresh)."""

    def _open_port(self, timeout_s: float) -> None:
        """Open the port (:func:`open_port`), nothing read from it yet.

        :param timeout_s: the read timeout
        :raises OSError: (or another of :data:`OPEN_ERRORS`) the port cannot be opened
        """
        self._serial = open_port(self.port, self.baudrate, timeout_s)
        self._forget()

    def _drop(self) -> None:
        """Close the port when it is open (quietly: it may be gone) and forget what was read."""
        port, self._serial = self._serial, None
        self._forget()
        close_quietly(port)
