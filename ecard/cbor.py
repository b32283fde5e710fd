"""Strict CBOR for the e-card format (docs/qr-format.md §3).

Every CBOR item of the format is the deterministic encoding of RFC 8949 §4.2.1 and uses only
unsigned and negative integers, byte strings, text strings, arrays and maps of definite length:
no tags, no floats, no simple values, no indefinite lengths, at most :data:`MAX_DEPTH` levels.
:func:`loads` checks this on the raw bytes first (without recursion, so a deep or truncated
item cannot exhaust the stack), decodes with ``cbor2``, and finally re-encodes the value and
requires the very same bytes: that also refuses unsorted and duplicate map keys. One value thus
has exactly one encoding, which the signatures and the replay key rely on.
"""

from __future__ import annotations

from typing import Any

import cbor2

from ecard.errors import FormatError

__all__ = ["MAX_DEPTH", "dumps", "loads"]

MAX_DEPTH = 8  # the deepest item of the format is 4 levels down; room for later versions

_MAJOR_UINT, _MAJOR_NINT, _MAJOR_BSTR, _MAJOR_TSTR, _MAJOR_ARRAY, _MAJOR_MAP = range(6)
_MAJOR_NAMES = {6: "a tag", 7: "a float or simple value"}
_AI_1BYTE, _AI_8BYTES = 24, 27


def dumps(value: Any) -> bytes:
    """Encode a value deterministically (RFC 8949 §4.2.1: shortest forms, sorted map keys).

    :param value: ints, bytes, str, lists/tuples and dicts of them
    :raises FormatError: a value outside that subset
    """
    try:
        return cbor2.dumps(value, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise FormatError(f"cannot encode as CBOR: {exc}") from exc


def loads(data: bytes, what: str) -> Any:
    """Decode one strict, deterministically encoded CBOR item that fills ``data`` exactly.

    :param data: the encoded item
    :param what: the structure's name, for messages ("the envelope", "the claims")
    :raises FormatError: malformed, truncated, trailing bytes, a forbidden type, too deep, or not
        the deterministic encoding
    """
    _check_subset(data, what)
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise FormatError(f"{what}: CBOR does not decode ({exc})") from exc
    if cbor2.dumps(value, canonical=True) != data:
        raise FormatError(
            f"{what}: not the deterministic CBOR encoding (map keys unsorted or repeated)"
        )
    return value


def _check_subset(data: bytes, what: str) -> None:
    """Walk the item headers: definite lengths, shortest arguments, allowed majors, depth."""
    size = len(data)
    pos = 0
    remaining = [1]  # items still to read at each open level
    while remaining:
        if remaining[-1] == 0:
            remaining.pop()
            continue
        remaining[-1] -= 1
        if pos >= size:
            raise FormatError(f"{what}: CBOR truncated at byte {pos}")
        major = data[pos] >> 5
        if major in _MAJOR_NAMES:
            raise FormatError(f"{what}: {_MAJOR_NAMES[major]} at byte {pos} is not allowed")
        argument, pos = _argument(data, pos, what)
        if major in (_MAJOR_BSTR, _MAJOR_TSTR):
            if argument > size - pos:
                raise FormatError(f"{what}: CBOR string runs past the end at byte {pos}")
            pos += argument
        elif major in (_MAJOR_ARRAY, _MAJOR_MAP):
            if len(remaining) > MAX_DEPTH:
                raise FormatError(f"{what}: CBOR nested deeper than {MAX_DEPTH} levels")
            count = argument * (2 if major == _MAJOR_MAP else 1)
            if count > size - pos:  # every item takes at least one byte
                raise FormatError(f"{what}: CBOR truncated: {count} items announced at byte {pos}")
            remaining.append(count)
    if pos != size:
        raise FormatError(f"{what}: {size - pos} bytes after the CBOR item")


def _argument(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """The argument of the header at ``pos`` (RFC 8949 §3), shortest form only, and where the
    item's content starts."""
    info = data[pos] & 0x1F
    if info < _AI_1BYTE:
        return info, pos + 1
    if info > _AI_8BYTES:
        raise FormatError(f"{what}: indefinite length or reserved CBOR header at byte {pos}")
    width = 1 << (info - _AI_1BYTE)
    if pos + 1 + width > len(data):
        raise FormatError(f"{what}: CBOR truncated at byte {pos + 1}")
    argument = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
    smallest = _AI_1BYTE if width == 1 else 1 << (4 * width)
    if argument < smallest:
        raise FormatError(f"{what}: non-shortest CBOR argument at byte {pos}")
    return argument, pos + 1 + width
