"""The daemon's access to its devices: card readers (PC/SC) and code scanners.

Everything the daemon's threads do with a reader goes through :class:`CardSlot`, and with a
scanner through :func:`open_scanner`, so that a different reader back-end is one change here.
Each slot owns its own PC/SC context (the monitoring waits of one reader never share a context
with another reader's, anchors-terminal.md §1.7), re-established after pcscd restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from apdu.errors import ReaderTimeout, ReaderUnavailable
from drivers.pcsc import PcscConnection, PcscReader
from drivers.scanners import Scanner
from drivers.scanners.serial import SerialScanner
from drivers.scanners.stdin import StdinScanner

log = logging.getLogger(__name__)

SERIAL_BAUD = 9600  # what serial code scanners ship set to


class ReaderMissing(ReaderUnavailable):
    """pcscd runs, but the configured reader is not plugged in (or not unique)."""


def match_reader(names: Sequence[str], wanted: str, exclude: Sequence[str]) -> str:
    """The one reader ``wanted`` names: the exact name, else the one name containing it.

    :param names: the readers pcscd knows
    :param wanted: a reader name or a unique part of it
    :param exclude: parts of names never taken (the PSAM's reader)
    :raises ReaderMissing: none or several match
    """
    usable = [n for n in names if not any(part and part in n for part in exclude)]
    if wanted in usable:
        return wanted
    found = [n for n in usable if wanted in n]
    if len(found) != 1:
        problem = "not connected" if not found else f"ambiguous: {found}"
        raise ReaderMissing(f"reader {wanted!r} {problem}")
    return found[0]


class CardSlot:
    """One card reader, watched by one thread: wait for a card, connect, wait for it to leave.

    :param wanted: the reader's name or a unique part of it
    :param exclude: parts of names never taken (the PSAM's reader)
    """

    def __init__(self, wanted: str, exclude: Sequence[str] = ()) -> None:
        self.wanted = wanted
        self.exclude = tuple(exclude)
        self.name: str | None = None
        self._pcsc = PcscReader()

    def check(self) -> str:
        """Find the reader now (pcscd up, reader plugged in).

        :returns: its full name
        :raises ReaderUnavailable: pcscd is not running (:class:`ReaderMissing`: the reader
            is not there)
        """
        self.name = match_reader(self._pcsc.list_readers(), self.wanted, self.exclude)
        return self.name

    def wait_card(self, timeout: float) -> tuple[PcscConnection, int] | None:
        """Wait up to ``timeout`` seconds for a card and connect to it.

        :returns: the connection and the reader's event count at that moment, or ``None``
        :raises ReaderUnavailable: pcscd or the reader is gone
        """
        name = self.check()
        try:
            connection = self._pcsc.wait_for_card(timeout, reader=name)
        except ReaderTimeout:
            return None
        try:
            events = self._pcsc.presence(name).events
        except ReaderUnavailable:
            connection.close()
            raise
        return connection, events

    def wait_removed(self, events: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the card to leave.

        :param events: the event count when the card was connected
        :returns: True when the card left, or left and a card is there again (a new
            presentation: the event count moved)
        :raises ReaderUnavailable: pcscd or the reader is gone
        """
        name = self.name or self.check()
        now = self._pcsc.presence(name, since=events, timeout=timeout)
        return not now.present or now.events != events

    def close(self) -> None:
        """Release the PC/SC context; harmless twice."""
        self._pcsc.close()


def open_scanner(spec: str) -> Scanner:
    """Open a code scanner from its ``[daemon] scanners`` entry.

    :param spec: ``serial:PORT``, ``serial:PORT@BAUD``, ``camera:N`` or ``stdin``
    :raises ScannerError: the device cannot be opened
    """
    kind, _, where = spec.partition(":")
    if kind == "serial":
        port, _, baud = where.partition("@")
        return SerialScanner(port, int(baud) if baud else SERIAL_BAUD)
    if kind == "camera":  # OpenCV is loaded only here: a terminal without a camera never pays
        from drivers.scanners.camera import CameraScanner  # noqa: PLC0415 - loads OpenCV

        return CameraScanner(int(where))
    return StdinScanner()
