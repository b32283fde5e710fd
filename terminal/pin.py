"""PIN operations on the holder's card, for the CLI and (later) the local API.

The PIN goes from the caller straight to the card: it is never logged or stored.
"""

from __future__ import annotations

from apdu.ssc import SscSession
from apdu.transport import Connection


def pin_operation(connection: Connection, action: str, pins: list[str]) -> None:
    """Select the social-security application, then verify or change the PIN.

    :param connection: the card, with the T=0 chain
    :param action: ``verify`` (one PIN) or ``change`` (current PIN, new PIN)
    :param pins: the PIN(s) the holder entered
    :raises WrongPin: wrong PIN, with ``tries_left``
    :raises PinBlocked: the PIN is blocked
    :raises ApplicationLocked: ``9303``
    :raises CardBlocked: ``6A81``
    :raises PinFormatError: a PIN that is not 4–16 digits
    """
    session = SscSession(connection)
    if action == "verify":
        session.verify_pin(pins[0])
    else:
        session.change_pin(pins[0], pins[1])
