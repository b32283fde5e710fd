"""Base45 (RFC 9285), strict: the text form of a QR code in alphanumeric mode.

Two bytes ``a, b`` become ``n = a·256 + b = c + d·45 + e·45²`` written as the three characters
``c d e`` of the alphabet; a last odd byte ``n = c + d·45`` becomes two characters. Decoding
refuses every text that an encoder cannot have produced: a character outside the 45-character
alphabet (lower case included), a length of ``3k + 1``, a triple worth more than 65535
(RFC 9285 §4) or a final pair worth more than 255.
"""

from __future__ import annotations

from ecard.errors import Base45Error

__all__ = ["ALPHABET", "b45decode", "b45encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"  # RFC 9285 §4, Table 1
_VALUE = {char: value for value, char in enumerate(ALPHABET)}
_BASE = 45
_BASE2 = _BASE * _BASE


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text.

    :param data: any bytes
    :raises TypeError: ``data`` is not bytes-like
    """
    data = bytes(data)
    out: list[str] = []
    full = len(data) - len(data) % 2
    for i in range(0, full, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, _BASE2)
        d, c = divmod(rest, _BASE)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if full < len(data):
        d, c = divmod(data[-1], _BASE)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode strict Base45 text.

    :param text: Base45 characters only (no whitespace, upper case)
    :raises Base45Error: a character outside the alphabet (its position is named), a length of
        ``3k + 1``, a triple above 65535 or a final pair above 255
    """
    if not isinstance(text, str):
        raise Base45Error("Base45 input must be text")
    if len(text) % 3 == 1:
        raise Base45Error(f"Base45 text of {len(text)} characters: a length of 3k+1 is invalid")
    try:
        values = [_VALUE[char] for char in text]
    except KeyError:
        position = next(i for i, char in enumerate(text) if char not in _VALUE)
        raise Base45Error(
            f"character {position} (U+{ord(text[position]):04X}) is not in the Base45 alphabet"
        ) from None
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        n = values[i] + values[i + 1] * _BASE + values[i + 2] * _BASE2
        if n > 0xFFFF:
            raise Base45Error(f"Base45 triple at character {i} is worth {n} (> 65535)")
        out += n.to_bytes(2, "big")
    if full < len(values):
        n = values[full] + values[full + 1] * _BASE
        if n > 0xFF:
            raise Base45Error(f"final Base45 pair is worth {n} (> 255)")
        out.append(n)
    return bytes(out)
