"""PIN commands of the social security card (spec doc §5; S3-P5 §6.3, §6.14).

* VERIFY ``00 20 00 00 Lc PIN``: the PIN as BCD digits, the last nibble padded with ``F``
  (Lc 02–08: 4–16 digits); ``63Cx`` = wrong, x tries left;
  ``6983`` = blocked. With Lc = 0 the card reports the state without counting a try.
* CHANGE PIN ``80 5E 01 00 Lc old‖FF‖new``: the holder changes the PIN in plain text.

The PIN passes through these functions only: it is never logged, stored or put in an
exception message.
"""

from __future__ import annotations

from apdu.command import CommandApdu
from apdu.errors import ApduError, SscardError, card_state_error
from apdu.transport import Connection, send

INS_VERIFY = 0x20
INS_CHANGE_PIN = 0x5E
PIN_SEPARATOR = b"\xff"
MIN_PIN_DIGITS = 4
MAX_PIN_DIGITS = 16  # VERIFY Lc ≤ 08; CHANGE PIN 8 + 1 + 8 = Lc 11h (S3-P5 §6.3)


class PinFormatError(SscardError):
    """A PIN that is not 4–16 decimal digits (national code -33)."""


def encode_pin(pin: str) -> bytes:
    """Encode a PIN as BCD, padding an odd last nibble with ``F``.

    :param pin: 4–16 decimal digits
    :raises PinFormatError: for anything else (the PIN itself is not in the message)
    """
    if not (pin.isascii() and pin.isdigit()) or not MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS:
        raise PinFormatError(f"a PIN is {MIN_PIN_DIGITS}-{MAX_PIN_DIGITS} decimal digits")
    digits = pin if len(pin) % 2 == 0 else pin + "F"
    return bytes.fromhex(digits)


def decode_pin(raw: bytes) -> str:
    """Decode a BCD PIN (the emulator's side of :func:`encode_pin`).

    :param raw: the BCD bytes
    :raises PinFormatError: when the bytes are not BCD with optional ``F`` padding
    """
    digits = raw.hex().upper()
    if digits.endswith("F"):
        digits = digits[:-1]
    if not digits.isdigit():
        raise PinFormatError("PIN bytes are not BCD")
    return digits


def _send_pin_command(connection: Connection, command: CommandApdu) -> None:
    try:
        send(connection, command)
    except ApduError as exc:
        state = card_state_error(exc.sw)
        # the command bytes hold the PIN: do not let them travel in the exception
        exc.command = exc.command[:4]
        exc.args = (f"SW {exc.sw:04X}",)
        if state is not None:
            raise state from None
        raise


def verify_pin(connection: Connection, pin: str) -> None:
    """VERIFY the holder's PIN.

    :param connection: the card, application selected
    :param pin: 4–16 digits
    :raises PinFormatError: a malformed PIN (nothing is sent)
    :raises WrongPin: ``63Cx``, with ``tries_left``
    :raises PinBlocked: ``6983``
    :raises ApplicationLocked: ``9303``
    :raises CardBlocked: ``6A81``
    """
    _send_pin_command(connection, CommandApdu(0x00, INS_VERIFY, 0x00, 0x00, encode_pin(pin)))


def pin_tries_left(connection: Connection) -> int | None:
    """Ask for the PIN state without spending a try (VERIFY with no data).

    Case 1 ``00 20 00 00`` is used: a 5-byte ``… 00`` APDU can be taken for case 2 by some
    readers on T=0 (spec doc §8 note 8).

    :param connection: the card, application selected
    :returns: tries left, or ``None`` when the card reports no PIN state (``9000``)
    :raises PinBlocked: ``6983``
    """
    try:
        send(connection, CommandApdu(0x00, INS_VERIFY, 0x00, 0x00))
    except ApduError as exc:
        state = card_state_error(exc.sw)
        if state is None:
            raise
        if exc.sw & 0xFFF0 == 0x63C0:
            return exc.sw & 0x0F
        raise state from exc
    return None


def change_pin(connection: Connection, old: str, new: str) -> None:
    """CHANGE PIN ``80 5E 01 00 Lc old‖FF‖new``; success resets the try counter.

    :param connection: the card, application selected
    :param old: the current PIN
    :param new: the new PIN
    :raises PinFormatError: a malformed PIN (nothing is sent)
    :raises WrongPin: ``63Cx``, the old PIN was wrong
    :raises PinBlocked: ``6983``
    """
    data = encode_pin(old) + PIN_SEPARATOR + encode_pin(new)
    _send_pin_command(connection, CommandApdu(0x80, INS_CHANGE_PIN, 0x01, 0x00, data))
