"""SIMPLE-TLV and BER-TLV codecs (ISO/IEC 7816-4 §5.2).

SIMPLE-TLV (§5.2.1) carries the social security card's records: each record of EF05
发卡机构数据 and EF06 持卡人基本信息 holds one object whose tag is the record identifier
(spec §2.4). BER-TLV (§5.2.2, the ISO/IEC 8825-1 = X.690 subset) carries the FCI that SELECT
returns (spec §2.2, a real 3.0 card)::

    6F 1C                                   FCI template (constructed)
       84 0F 7378312E73682EC9E7BBE1B1A3D5CF DF name "sx1.sh.社会保障"
       A5 09                                FCI proprietary template (constructed)
          88 01 1E                          SFI of the DIR file
          9F0C 03 860103                    primitive; its value holds 86 01 03 (03 = SM4)

A BER-TLV tag is kept as the integer of its raw bytes (``0x6F``, ``0x9F0C``), the way the
specs write it. Parsers are strict and raise :class:`~apdu.errors.TlvError`, never
``IndexError``; their messages name tags, offsets and lengths but never a value, which may be
personal data. Encoders raise ``ValueError`` for arguments no valid object can carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from apdu.errors import TlvError

# ISO/IEC 7816-4 §5.2.1: SIMPLE-TLV tags are 01..FE; '00' and 'FF' are invalid.
SIMPLE_TAG_MIN = 0x01
SIMPLE_TAG_MAX = 0xFE
# A length byte 00..FE is the length; 'FF' introduces two more bytes, big-endian.
SIMPLE_LENGTH_LONG = 0xFF
SIMPLE_SHORT_MAX = 0xFE
SIMPLE_LENGTH_MAX = 0xFFFF

# ISO/IEC 7816-4 §5.2.2: '00' or 'FF' may pad before, between and after BER-TLV objects.
PADDING = frozenset({0x00, 0xFF})
# First tag byte: bit 6 = constructed; low five bits all 1 = subsequent tag bytes follow.
TAG_CONSTRUCTED = 0x20
TAG_NUMBER_MASK = 0x1F
TAG_MORE = 0x80  # in a subsequent tag byte: another byte follows
TAG_MAX_BYTES = 3  # ISO/IEC 7816-4 supports tag fields of one, two and three bytes
LENGTH_LONG = 0x80  # '8x': x length bytes follow; '80' alone is the indefinite form
LENGTH_MAX_BYTES = 4  # '81'..'84'


def encode_simple(tag: int, value: bytes) -> bytes:
    """Encode one SIMPLE-TLV object, with the one-byte length whenever the value allows.

    :param tag: the tag, 01..FE
    :param value: the value, at most 65535 bytes
    :raises ValueError: the tag is 00, FF or out of range, or the value is too long
    """
    if not SIMPLE_TAG_MIN <= tag <= SIMPLE_TAG_MAX:
        raise ValueError(f"SIMPLE-TLV tag must be 01..FE, not {tag}")
    n = len(value)
    if n <= SIMPLE_SHORT_MAX:
        return bytes((tag, n)) + value
    if n <= SIMPLE_LENGTH_MAX:
        return bytes((tag, SIMPLE_LENGTH_LONG)) + n.to_bytes(2, "big") + value
    raise ValueError(f"SIMPLE-TLV value of {n} bytes exceeds the maximum of {SIMPLE_LENGTH_MAX}")


def _read_simple(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """Read the SIMPLE-TLV object at ``pos``; return its tag, value and the offset after it.

    :param data: the encoded objects
    :param pos: offset of the tag byte, less than ``len(data)``
    :raises TlvError: the object is malformed or runs past ``data``
    """
    tag = data[pos]
    if tag not in range(SIMPLE_TAG_MIN, SIMPLE_TAG_MAX + 1):
        raise TlvError(
            f"SIMPLE-TLV tag {tag:02X} at offset {pos} is invalid (00 and FF are not tags)"
        )
    if pos + 1 >= len(data):
        raise TlvError(f"SIMPLE-TLV tag {tag:02X} at offset {pos}: the length byte is missing")
    if data[pos + 1] == SIMPLE_LENGTH_LONG:
        start = pos + 4
        if start > len(data):
            raise TlvError(
                f"SIMPLE-TLV tag {tag:02X} at offset {pos}: length FF needs 2 more bytes, "
                f"{len(data) - pos - 2} available"
            )
        length = int.from_bytes(data[pos + 2 : start], "big")
    else:
        start = pos + 2
        length = data[pos + 1]
    end = start + length
    if end > len(data):
        raise TlvError(
            f"SIMPLE-TLV tag {tag:02X} at offset {pos} declares length {length} "
            f"but only {len(data) - start} bytes are available"
        )
    return tag, bytes(data[start:end]), end


def parse_simple(data: bytes) -> list[tuple[int, bytes]]:
    """Parse a sequence of SIMPLE-TLV objects into ``(tag, value)`` pairs.

    Non-minimal lengths (``FF 00 05``) are accepted. No padding is skipped: ``00`` and ``FF``
    are invalid tags.

    :param data: the encoded objects; empty data gives an empty list
    :raises TlvError: a tag is 00 or FF, or a length is truncated or runs past the data
    """
    objects: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        tag, value, pos = _read_simple(data, pos)
        objects.append((tag, value))
    return objects


def parse_simple_one(data: bytes) -> tuple[int, bytes]:
    """Parse exactly one SIMPLE-TLV object that fills ``data`` to the last byte.

    :param data: the encoded object, e.g. one record of EF05
    :raises TlvError: the data is empty, malformed, or has bytes after the object
    """
    if not data:
        raise TlvError("expected one SIMPLE-TLV object, got no data")
    tag, value, end = _read_simple(data, 0)
    if end != len(data):
        raise TlvError(
            f"{len(data) - end} trailing bytes after SIMPLE-TLV tag {tag:02X} "
            f"(object ends at offset {end})"
        )
    return tag, value


def _tag_size(tag: int) -> int:
    """Return the number of bytes of a BER-TLV tag kept as an integer.

    :param tag: the tag, positive
    """
    return max(1, (tag.bit_length() + 7) // 8)


def _tag_hex(tag: int) -> str:
    """Format a BER-TLV tag as upper-case hex of its raw bytes, e.g. ``9F0C``.

    :param tag: the tag
    """
    return f"{tag:0{2 * _tag_size(tag)}X}"


def encode_tag(tag: int) -> bytes:
    """Encode a BER-TLV tag given as the integer of its raw bytes (``0x9F0C`` → ``9F 0C``).

    :param tag: the tag, one to three bytes
    :raises ValueError: the bytes are not a valid tag: a first byte of 00 or FF, a one-byte tag
        whose low five bits are all 1, a multi-byte tag whose first byte does not announce
        subsequent bytes or whose bit 8 chain is broken, or more than three bytes
    """
    if tag <= 0:
        raise ValueError(f"BER-TLV tag must be positive, not {tag}")
    size = _tag_size(tag)
    if size > TAG_MAX_BYTES:
        raise ValueError(f"BER-TLV tag {_tag_hex(tag)} is longer than {TAG_MAX_BYTES} bytes")
    raw = tag.to_bytes(size, "big")
    if raw[0] in PADDING:
        raise ValueError(f"BER-TLV tag {_tag_hex(tag)} starts with padding byte {raw[0]:02X}")
    multi = raw[0] & TAG_NUMBER_MASK == TAG_NUMBER_MASK
    if size == 1 and multi:
        raise ValueError(f"BER-TLV tag {raw[0]:02X} announces subsequent tag bytes but has none")
    if size > 1:
        if not multi:
            raise ValueError(
                f"BER-TLV tag {_tag_hex(tag)}: a multi-byte tag's first byte must end in 11111"
            )
        if any(not b & TAG_MORE for b in raw[1:-1]) or raw[-1] & TAG_MORE:
            raise ValueError(
                f"BER-TLV tag {_tag_hex(tag)}: subsequent bytes must have bit 8 set, "
                "except the last"
            )
    return raw


def encode_length(n: int) -> bytes:
    """Encode a BER-TLV definite length in its minimal form (``7F``, ``81 80``, ``82 0100`` …).

    :param n: the length, 0..2**32-1
    :raises ValueError: the length is negative or needs more than four bytes
    """
    if n < 0:
        raise ValueError(f"BER-TLV length must not be negative, not {n}")
    if n < LENGTH_LONG:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    if size > LENGTH_MAX_BYTES:
        raise ValueError(f"BER-TLV length {n} needs more than {LENGTH_MAX_BYTES} bytes")
    return bytes((LENGTH_LONG | size,)) + n.to_bytes(size, "big")


def encode_ber(tag: int, value: bytes) -> bytes:
    """Encode one BER-TLV object with a minimal length.

    :param tag: the tag as the integer of its raw bytes
    :param value: the value; for a constructed tag, the encoded children
    :raises ValueError: the tag is invalid or the value is too long
    """
    return encode_tag(tag) + encode_length(len(value)) + value


@dataclass(frozen=True, slots=True, repr=False)
class BerTlv:
    """One BER-TLV data object.

    :param tag: the tag as the integer of its raw bytes, e.g. ``0x6F``, ``0x9F0C``
    :param value: the value bytes; for a constructed object, its encoded children
    :raises ValueError: the tag is not a valid BER-TLV tag
    """

    tag: int
    value: bytes

    def __post_init__(self) -> None:
        """Check the tag up front, so that a bad one fails where the object is made.

        :raises ValueError: the tag is not a valid BER-TLV tag
        """
        encode_tag(self.tag)

    def __repr__(self) -> str:
        """Show the tag in hex, as the specs write it."""
        return f"BerTlv(tag=0x{_tag_hex(self.tag)}, value=bytes.fromhex({self.value.hex()!r}))"

    @property
    def constructed(self) -> bool:
        """Whether bit 6 of the first tag byte marks the value as a sequence of objects."""
        first = self.tag >> (8 * (_tag_size(self.tag) - 1))
        return bool(first & TAG_CONSTRUCTED)

    def children(self) -> list[BerTlv]:
        """Parse the value of a constructed object into its children, skipping padding.

        :raises TlvError: the object is primitive, or its value does not parse
        """
        if not self.constructed:
            raise TlvError(f"BER-TLV tag {_tag_hex(self.tag)} is primitive and has no children")
        return parse_ber(self.value)

    def find(self, tag: int) -> BerTlv | None:
        """Find the first descendant with ``tag``, depth first, through constructed objects only.

        The object itself is not a candidate, and primitive values are never parsed: the SSC
        FCI's ``86`` sits inside the primitive ``9F0C``, so ``find(0x9F0C)`` then
        :func:`parse_ber_one` on its value reaches it.

        :param tag: the tag to look for
        :raises TlvError: a constructed value on the way does not parse
        """
        # An explicit stack, not recursion: hostile input may nest thousands of levels.
        stack = list(reversed(self.children())) if self.constructed else []
        while stack:
            node = stack.pop()
            if node.tag == tag:
                return node
            if node.constructed:
                stack.extend(reversed(node.children()))
        return None

    def to_bytes(self) -> bytes:
        """Encode the object with a minimal length.

        :raises ValueError: the value is longer than 2**32-1 bytes
        """
        return encode_ber(self.tag, self.value)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    """Read the BER-TLV tag at ``pos``; return it and the offset after it.

    :param data: the encoded objects
    :param pos: offset of the first tag byte, less than ``len(data)``
    :raises TlvError: the tag is truncated or longer than three bytes
    """
    end = pos + 1
    if data[pos] & TAG_NUMBER_MASK == TAG_NUMBER_MASK:
        while True:
            if end >= len(data):
                raise TlvError(
                    f"BER-TLV tag at offset {pos} is truncated: "
                    f"{data[pos:end].hex().upper()} needs another byte"
                )
            more = data[end] & TAG_MORE
            end += 1
            if not more:
                break
            if end - pos >= TAG_MAX_BYTES:
                raise TlvError(
                    f"BER-TLV tag at offset {pos} ({data[pos:end].hex().upper()}…) "
                    f"is longer than {TAG_MAX_BYTES} bytes"
                )
    return int.from_bytes(data[pos:end], "big"), end


def _read_length(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """Read the definite BER-TLV length at ``pos``; return it and the offset after it.

    :param data: the encoded objects
    :param pos: offset of the first length byte
    :param tag: the tag just read, for messages
    :raises TlvError: the length is missing, truncated, indefinite or longer than four bytes
    """
    where = f"BER-TLV tag {_tag_hex(tag)} at offset {pos}"
    if pos >= len(data):
        raise TlvError(f"{where}: the length is missing")
    first = data[pos]
    if first < LENGTH_LONG:
        return first, pos + 1
    if first == LENGTH_LONG:
        raise TlvError(f"{where}: indefinite length (80) is not allowed")
    size = first - LENGTH_LONG
    if size > LENGTH_MAX_BYTES:
        raise TlvError(f"{where}: length byte {first:02X} is not one of 81..84")
    end = pos + 1 + size
    if end > len(data):
        raise TlvError(
            f"{where}: length {first:02X} needs {size} more bytes, {len(data) - pos - 1} available"
        )
    return int.from_bytes(data[pos + 1 : end], "big"), end


def _read_ber(data: bytes, pos: int) -> tuple[BerTlv, int]:
    """Read the BER-TLV object at ``pos``; return it and the offset after it.

    :param data: the encoded objects
    :param pos: offset of the first tag byte, which is not padding
    :raises TlvError: the object is malformed or runs past ``data``
    """
    tag, at = _read_tag(data, pos)
    length, start = _read_length(data, at, tag)
    end = start + length
    if end > len(data):
        raise TlvError(
            f"BER-TLV tag {_tag_hex(tag)} at offset {pos} declares length {length} "
            f"but only {len(data) - start} bytes are available"
        )
    return BerTlv(tag, bytes(data[start:end])), end


def _skip_padding(data: bytes, pos: int) -> int:
    """Return the offset of the first byte at or after ``pos`` that is not 00 or FF.

    :param data: the encoded objects
    :param pos: where to start
    """
    while pos < len(data) and data[pos] in PADDING:
        pos += 1
    return pos


def parse_ber(data: bytes) -> list[BerTlv]:
    """Parse a sequence of BER-TLV objects, skipping 00/FF padding before, between and after.

    Non-minimal long lengths (``82 0005``) are accepted; :meth:`BerTlv.to_bytes` re-encodes
    them minimally.

    :param data: the encoded objects; empty data or padding alone gives an empty list
    :raises TlvError: a tag or length is truncated, a length is indefinite or too long, or a
        value runs past the data
    """
    objects: list[BerTlv] = []
    pos = _skip_padding(data, 0)
    while pos < len(data):
        obj, pos = _read_ber(data, pos)
        objects.append(obj)
        pos = _skip_padding(data, pos)
    return objects


def parse_ber_one(data: bytes) -> BerTlv:
    """Parse exactly one BER-TLV object; only 00/FF padding may surround it.

    :param data: the encoded object, e.g. the FCI from SELECT without its status word
    :raises TlvError: there is no object, the object is malformed, or other bytes follow it
    """
    pos = _skip_padding(data, 0)
    if pos == len(data):
        raise TlvError("expected one BER-TLV object, got no data (or padding only)")
    obj, end = _read_ber(data, pos)
    rest = _skip_padding(data, end)
    if rest != len(data):
        raise TlvError(
            f"{len(data) - end} bytes after BER-TLV tag {_tag_hex(obj.tag)} "
            f"are not padding (first at offset {rest})"
        )
    return obj
