"""A PSAM in a PC/SC reader slot as the terminal's security module (production mode).

The protocol lives in :mod:`apdu.psam`; this module only finds the PSAM's reader, connects
and wraps the connection in the T=0 chain (PSAMs are T=0 cards and answer ``61xx``).
"""

from __future__ import annotations

import logging

from apdu.errors import DriverError
from apdu.psam import PsamModule
from apdu.transport import t0_chain
from drivers.pcsc import PcscConnection, PcscReader

log = logging.getLogger(__name__)


class PcscPsamModule(PsamModule):
    """:class:`~apdu.psam.PsamModule` over a PC/SC connection it owns.

    :param connection: the PSAM's PC/SC connection
    """

    def __init__(self, connection: PcscConnection) -> None:
        super().__init__(t0_chain(connection))
        self.connection = connection
        self.reader = connection.reader

    def close(self) -> None:
        """Disconnect from the PSAM."""
        self.connection.close()


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
    return PcscPsamModule(connection)
