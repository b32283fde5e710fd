"""The PIN of the social security card: its encoding (spec doc §5; S3-P5 §6.3, §6.14).

The commands are :class:`apdu.ssc.SscSession` methods (``verify_pin``, ``change_pin``,
``pin_tries_left``):

* VERIFY ``00 20 00 00 Lc PIN``: the PIN as BCD digits, the last nibble padded with ``F``
  (Lc 02–08: 4–16 digits); ``63Cx`` = wrong, x tries left;
  ``6983`` = blocked. With Lc = 0 the card reports the state without counting a try.
* CHANGE PIN ``80 5E 01 00 Lc old‖FF‖new``: the holder changes the PIN in plain text.

The PIN passes through the session's methods and these functions only: it is never logged,
stored or put in an exception message.
"""

from __future__ import annotations

from apdu.errors import SscardError

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
