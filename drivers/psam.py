"""A PSAM in a PC/SC reader slot as the terminal's security module (production mode).

The protocol lives in :mod:`apdu.psam`; this module only finds the PSAM's reader, connects
and wraps the connection in the T=0 chain (PSAMs are T=0 cards and answer ``61xx``).

A PSAM can be reset by another program (the slot is shared), pulled, or replaced by another
PSAM while the module lives (a daemon runs for months). The module's PC/SC handle then answers
"removed" or "reset" for good, and what it learnt about the old PSAM (each key's number of
levels, the terminal number) may be wrong for the new one. So the connection is renewed on the
next command, and the module forgets that state before it talks to the PSAM now in the slot.
An operation that starts afresh on the PSAM (the card check, a MAC1, the terminal number) is
tried once more on the new connection; one that needs the state an earlier command left in the
PSAM (the authentication after the check, MAC2) fails with :class:`PsamLost`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apdu.errors import DriverError
from apdu.psam import PsamModule
from apdu.purse import PurchaseMac1, PurchaseRequest
from apdu.sam import CardIdentity, NoSecurityModule, SecurityModuleUnavailable
from apdu.transport import t0_chain
from drivers.pcsc import PcscConnection, PcscReader

log = logging.getLogger(__name__)

RECONNECT_TIMEOUT = 1.0  # seconds a renewed connection waits for a PSAM in the slot


class PsamLost(SecurityModuleUnavailable):
    """The PSAM stopped answering during an operation (reset, removed or replaced)."""


class PsamLink:
    """The PSAM's PC/SC connection, renewed after the PSAM was reset, removed or replaced.

    :param readers: the PC/SC access object, to connect again
    :param connection: the first connection
    :param renewed: called when a new connection replaces a lost one, before it is used
    :param timeout: how long a renewal waits for a PSAM in the slot
    """

    def __init__(
        self,
        readers: PcscReader,
        connection: PcscConnection,
        renewed: Callable[[], None],
        timeout: float = RECONNECT_TIMEOUT,
    ) -> None:
        self.readers = readers
        self.reader = connection.reader
        self.current: PcscConnection | None = connection
        self.renewed = renewed
        self.timeout = timeout

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one APDU to the PSAM now in the slot.

        :param apdu: the command bytes
        :raises PsamLost: the connection broke during this command
        :raises NoSecurityModule: the slot holds no PSAM (``-2201``)
        """
        connection = self.current or self._renew()
        try:
            return connection.transmit(apdu)
        except DriverError as exc:
            connection.close()
            self.current = None
            log.warning("event=psam_lost reader=%r detail=%r", self.reader, str(exc))
            raise PsamLost(f"the PSAM in {self.reader!r} stopped answering: {exc}") from exc

    def _renew(self) -> PcscConnection:
        try:
            connection = self.readers.wait_for_card(self.timeout, reader=self.reader)
        except DriverError as exc:
            raise NoSecurityModule(f"no PSAM in {self.reader!r} any more: {exc}") from exc
        self.renewed()
        self.current = connection
        log.info("event=psam_reconnected reader=%r", self.reader)
        return connection

    def close(self) -> None:
        """Disconnect from the PSAM; harmless when called twice."""
        if self.current is not None:
            self.current.close()
            self.current = None


class PcscPsamModule(PsamModule):
    """:class:`~apdu.psam.PsamModule` over a PC/SC connection it owns and renews.

    :param readers: the PC/SC access object (for renewing the connection)
    :param connection: the PSAM's PC/SC connection
    :param timeout: how long a renewal waits for a PSAM in the slot
    """

    def __init__(
        self, readers: PcscReader, connection: PcscConnection, timeout: float = RECONNECT_TIMEOUT
    ) -> None:
        self.link = PsamLink(readers, connection, self.forget, timeout)
        super().__init__(t0_chain(self.link))
        self.reader = connection.reader

    def check(self, card: CardIdentity) -> None:
        """:meth:`PsamModule.check`, once more on a renewed connection if the PSAM was lost.

        :param card: the card identity
        """
        try:
            super().check(card)
        except PsamLost:
            super().check(card)

    def purchase_mac1(self, request: PurchaseRequest) -> PurchaseMac1:
        """:meth:`PsamModule.purchase_mac1`, once more on a renewed connection if the PSAM was
        lost (the card has not seen MAC1 yet, so a second one is harmless).

        :param request: the card's purchase data
        """
        try:
            return super().purchase_mac1(request)
        except PsamLost:
            return super().purchase_mac1(request)

    def terminal_number(self) -> str:
        """:meth:`PsamModule.terminal_number`, once more on a renewed connection if lost."""
        try:
            return super().terminal_number()
        except PsamLost:
            return super().terminal_number()

    def close(self) -> None:
        """Disconnect from the PSAM."""
        self.link.close()


def open_psam(readers: PcscReader, reader: str, timeout: float = 1.0) -> PcscPsamModule | None:
    """Connect to the PSAM in ``reader``.

    :param readers: the PC/SC access object
    :param reader: the PSAM reader's name (or a unique part of it)
    :param timeout: how long to wait for the PSAM to be seen
    :returns: the module, or ``None`` when the slot holds no PSAM (the national ``-2201``)
    """
    try:
        connection = readers.wait_for_card(timeout, reader=reader)
    except DriverError as exc:
        log.warning("event=psam_missing reader=%r detail=%r", reader, str(exc))
        return None
    log.info(
        "event=psam_connected reader=%r protocol=%s", connection.reader, connection.protocol_name
    )
    return PcscPsamModule(readers, connection, timeout)
