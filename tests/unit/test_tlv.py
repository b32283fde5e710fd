"""Unit tests for apdu.tlv: SIMPLE-TLV and BER-TLV encoding, strict parsing and search."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.errors import TlvError
from apdu.tlv import (
    BerTlv,
    encode_ber,
    encode_length,
    encode_simple,
    encode_tag,
    parse_ber,
    parse_ber_one,
    parse_simple,
    parse_simple_one,
)

# SSC spec §2.2: the FCI a real 3.0 card returns to SELECT SSSE (trace S5), without 9000.
SSSE_FCI = bytes.fromhex("6F1C840F7378312E73682EC9E7BBE1B1A3D5CFA50988011E9F0C03860103")
SSSE_AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")

_PATTERN = bytes(range(256)) * 300  # 76800 bytes to slice long values from, cheaply


def _long_value(n: int) -> bytes:
    """Return ``n`` bytes of a repeating pattern.

    :param n: the length, at most 76800
    """
    return _PATTERN[:n]


values = st.one_of(
    st.binary(max_size=300),
    st.integers(min_value=255, max_value=70_000).map(_long_value),
)
simple_tags = st.integers(min_value=0x01, max_value=0xFE)
simple_values = st.one_of(
    st.binary(max_size=300),
    st.integers(min_value=255, max_value=0xFFFF).map(_long_value),
)

# First byte: any class and constructed bit; low five bits 11111 means "more bytes follow".
_one_byte_tags = st.integers(0x01, 0xFE).filter(lambda b: b & 0x1F != 0x1F)
_multi_first = st.sampled_from([0x1F, 0x3F, 0x5F, 0x7F, 0x9F, 0xBF, 0xDF])  # not FF: padding
_two_byte_tags = st.builds(lambda f, last: f << 8 | last, _multi_first, st.integers(0x00, 0x7F))
_three_byte_tags = st.builds(
    lambda f, mid, last: f << 16 | mid << 8 | last,
    _multi_first,
    st.integers(0x80, 0xFF),
    st.integers(0x00, 0x7F),
)
ber_tags = st.one_of(_one_byte_tags, _two_byte_tags, _three_byte_tags)
ber_objects = st.builds(BerTlv, ber_tags, values)
padding = st.binary(max_size=3).map(lambda b: bytes(0xFF if x & 1 else 0x00 for x in b))


def _constructed(tag: int) -> bool:
    """Whether a BER-TLV tag's first byte has the constructed bit.

    :param tag: the tag as the integer of its raw bytes
    """
    return bool(tag >> (8 * ((tag.bit_length() - 1) // 8)) & 0x20)


ber_trees = st.recursive(
    st.builds(BerTlv, ber_tags.filter(lambda t: not _constructed(t)), st.binary(max_size=40)),
    lambda kids: st.builds(
        lambda tag, children: BerTlv(tag, b"".join(c.to_bytes() for c in children)),
        st.sampled_from([0x6F, 0xA5, 0xE1, 0x7F21, 0xBF0C]),
        st.lists(kids, max_size=4),
    ),
    max_leaves=12,
)


# --- SIMPLE-TLV ------------------------------------------------------------------------------


def test_encode_simple_uses_one_length_byte_up_to_254() -> None:
    assert encode_simple(0x03, b"3.00") == bytes.fromhex("0304332E3030")
    assert encode_simple(0x01, b"") == bytes.fromhex("0100")
    assert encode_simple(0x07, bytes(254))[:2] == bytes.fromhex("07FE")


def test_encode_simple_uses_ff_and_two_bytes_from_255() -> None:
    assert encode_simple(0x08, bytes(255))[:4] == bytes.fromhex("08FF00FF")
    assert encode_simple(0x08, bytes(0x1000))[:4] == bytes.fromhex("08FF1000")
    assert len(encode_simple(0xFE, bytes(0xFFFF))) == 4 + 0xFFFF


@pytest.mark.parametrize("tag", [0x00, 0xFF, -1, 0x100])
def test_encode_simple_rejects_tags_outside_01_to_fe(tag: int) -> None:
    with pytest.raises(ValueError, match=r"01\.\.FE"):
        encode_simple(tag, b"x")


def test_encode_simple_rejects_values_over_65535_bytes() -> None:
    with pytest.raises(ValueError, match="65536 bytes"):
        encode_simple(0x01, bytes(0x10000))


def test_parse_simple_reads_a_sequence() -> None:
    # SSC spec §2.4: EF05 '02' card category '3' and '03' spec version "3.00".
    data = bytes.fromhex("020133") + bytes.fromhex("0304332E3030")
    assert parse_simple(data) == [(0x02, b"3"), (0x03, b"3.00")]


def test_parse_simple_of_nothing_is_empty() -> None:
    assert parse_simple(b"") == []


def test_parse_simple_accepts_a_non_minimal_long_length() -> None:
    assert parse_simple(bytes.fromhex("05FF0003AABBCC")) == [(0x05, bytes.fromhex("AABBCC"))]


def test_parse_simple_reads_a_long_value() -> None:
    value = _long_value(300)
    assert parse_simple(bytes.fromhex("08FF012C") + value) == [(0x08, value)]


@pytest.mark.parametrize(("data", "offset"), [("00", 0), ("FF0100", 0), ("0101AA00", 3)])
def test_parse_simple_rejects_tag_00_and_ff(data: str, offset: int) -> None:
    with pytest.raises(TlvError, match=rf"tag \w\w at offset {offset} is invalid"):
        parse_simple(bytes.fromhex(data))


def test_parse_simple_reports_a_missing_length_byte() -> None:
    with pytest.raises(TlvError, match="tag 05 at offset 0: the length byte is missing"):
        parse_simple(bytes.fromhex("05"))


@pytest.mark.parametrize(("data", "available"), [("05FF", 0), ("05FF01", 1)])
def test_parse_simple_reports_a_truncated_long_length(data: str, available: int) -> None:
    with pytest.raises(TlvError, match=f"length FF needs 2 more bytes, {available} available"):
        parse_simple(bytes.fromhex(data))


def test_parse_simple_names_tag_length_and_available_bytes_when_value_runs_past() -> None:
    with pytest.raises(TlvError) as caught:
        parse_simple(bytes.fromhex("0201330410AABBCC"))
    assert str(caught.value) == (
        "SIMPLE-TLV tag 04 at offset 3 declares length 16 but only 3 bytes are available"
    )


def test_parse_simple_reports_a_long_length_running_past() -> None:
    with pytest.raises(TlvError, match="declares length 256 but only 2 bytes"):
        parse_simple(bytes.fromhex("08FF0100AABB"))


def test_parse_simple_one_returns_the_object() -> None:
    assert parse_simple_one(bytes.fromhex("0304332E3030")) == (0x03, b"3.00")


def test_parse_simple_one_rejects_empty_data() -> None:
    with pytest.raises(TlvError, match="got no data"):
        parse_simple_one(b"")


@pytest.mark.parametrize(("tail", "count"), [("00", 1), ("FFFF", 2), ("020133", 3)])
def test_parse_simple_one_rejects_trailing_bytes(tail: str, count: int) -> None:
    with pytest.raises(TlvError, match=f"{count} trailing bytes after SIMPLE-TLV tag 03"):
        parse_simple_one(bytes.fromhex("0304332E3030" + tail))


def test_parse_simple_one_reports_a_malformed_object() -> None:
    with pytest.raises(TlvError, match="declares length 5 but only 1"):
        parse_simple_one(bytes.fromhex("0105AA"))


@given(simple_tags, simple_values)
def test_simple_round_trip(tag: int, value: bytes) -> None:
    encoded = encode_simple(tag, value)
    assert parse_simple_one(encoded) == (tag, value)
    assert encode_simple(*parse_simple_one(encoded)) == encoded


@given(st.lists(st.tuples(simple_tags, st.binary(max_size=300)), max_size=5))
def test_simple_sequence_round_trip(objects: list[tuple[int, bytes]]) -> None:
    data = b"".join(encode_simple(tag, value) for tag, value in objects)
    assert parse_simple(data) == objects


@given(st.binary(max_size=64))
def test_parse_simple_raises_only_tlv_error_on_arbitrary_bytes(data: bytes) -> None:
    try:
        objects = parse_simple(data)
    except TlvError:
        return
    assert all(0x01 <= tag <= 0xFE for tag, _ in objects)
    assert sum(len(value) + 2 for _, value in objects) <= len(data)


# --- BER-TLV: the SSC FCI --------------------------------------------------------------------


def test_fci_of_a_real_3_0_card_parses() -> None:
    fci = parse_ber_one(SSSE_FCI)
    assert fci.tag == 0x6F
    assert fci.constructed
    name, proprietary = fci.children()
    assert name == BerTlv(0x84, SSSE_AID)
    assert not name.constructed
    assert proprietary.tag == 0xA5
    assert proprietary.constructed
    assert proprietary.children() == [
        BerTlv(0x88, b"\x1e"),
        BerTlv(0x9F0C, bytes.fromhex("860103")),
    ]
    assert fci.to_bytes() == SSSE_FCI


def test_fci_algorithm_is_read_through_the_primitive_9f0c() -> None:
    # SSC spec §8 note 6: the algorithm comes from FCI 9F0C/86; 03 = SM4. 9F0C's first byte
    # has bit 6 clear, so it is primitive and find() does not look inside it.
    fci = parse_ber_one(SSSE_FCI)
    proprietary_data = fci.find(0x9F0C)
    assert proprietary_data is not None
    assert not proprietary_data.constructed
    assert fci.find(0x86) is None
    assert parse_ber_one(proprietary_data.value) == BerTlv(0x86, b"\x03")


def test_fci_find_reaches_nested_objects() -> None:
    fci = parse_ber_one(SSSE_FCI)
    sfi = fci.find(0x88)
    assert sfi is not None
    assert sfi.value == b"\x1e"
    aid = fci.find(0x84)
    assert aid is not None
    assert aid.value == SSSE_AID
    assert fci.find(0x6F) is None  # the object itself is not a candidate
    assert fci.find(0x5F2D) is None


def test_find_is_depth_first() -> None:
    inner = encode_ber(0xE2, encode_ber(0x80, b"\xaa"))
    outer = parse_ber_one(encode_ber(0xE1, inner + encode_ber(0x80, b"\xbb")))
    assert outer.find(0x80) == BerTlv(0x80, b"\xaa")


def test_find_on_a_primitive_object_finds_nothing() -> None:
    assert BerTlv(0x80, encode_ber(0x80, b"")).find(0x80) is None


def test_find_raises_when_a_constructed_value_on_the_way_is_malformed() -> None:
    broken = BerTlv(0xE1, encode_ber(0x80, b"") + encode_ber(0xA5, bytes.fromhex("8805")))
    with pytest.raises(TlvError, match="tag 88 at offset 0 declares length 5"):
        broken.find(0x86)


def test_find_survives_deep_nesting() -> None:
    data = encode_ber(0x80, b"\x01")
    for _ in range(3000):
        data = encode_ber(0xA0, data)
    found = BerTlv(0xA0, data).find(0x80)
    assert found == BerTlv(0x80, b"\x01")


# --- BER-TLV: encoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "raw"),
    [(0x6F, "6F"), (0x84, "84"), (0x01, "01"), (0xFE, "FE"), (0x9F0C, "9F0C"),
     (0x5F20, "5F20"), (0xBF0C, "BF0C"), (0x9F02, "9F02"), (0x1F8101, "1F8101"),
     (0xDFFF7F, "DFFF7F")],
)  # fmt: skip
def test_encode_tag_gives_the_raw_bytes(tag: int, raw: str) -> None:
    assert encode_tag(tag) == bytes.fromhex(raw)


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        (0, "positive"),
        (-5, "positive"),
        (0x1F, "announces subsequent tag bytes but has none"),
        (0x9F, "announces subsequent tag bytes but has none"),
        (0xFF, "padding byte FF"),
        (0xFF01, "padding byte FF"),
        (0x6F01, "first byte must end in 11111"),
        (0x9F81, "bit 8 set, except the last"),
        (0x9F0101, "bit 8 set, except the last"),
        (0x1F818101, "longer than 3 bytes"),
    ],
)
def test_encode_tag_rejects_invalid_tags(tag: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_tag(tag)


@pytest.mark.parametrize(
    ("n", "raw"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"),
     (0xFFFF, "82FFFF"), (0x10000, "83010000"), (0xFFFFFF, "83FFFFFF"),
     (0x1000000, "8401000000"), (0xFFFFFFFF, "84FFFFFFFF")],
)  # fmt: skip
def test_encode_length_is_minimal(n: int, raw: str) -> None:
    assert encode_length(n) == bytes.fromhex(raw)


@pytest.mark.parametrize(("n", "reason"), [(-1, "negative"), (1 << 32, "more than 4 bytes")])
def test_encode_length_rejects_out_of_range(n: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_length(n)


def test_encode_ber_joins_tag_length_value() -> None:
    assert encode_ber(0x9F0C, bytes.fromhex("860103")) == bytes.fromhex("9F0C03860103")
    assert encode_ber(0x84, SSSE_AID) == bytes.fromhex("840F") + SSSE_AID
    assert encode_ber(0x80, bytes(200))[:3] == bytes.fromhex("8081C8")


def test_ber_tlv_rejects_an_invalid_tag() -> None:
    with pytest.raises(ValueError, match="positive"):
        BerTlv(0x00, b"")
    with pytest.raises(ValueError, match="announces subsequent tag bytes"):
        BerTlv(0x5F, b"")


def test_ber_tlv_repr_shows_the_tag_in_hex() -> None:
    assert repr(BerTlv(0x9F0C, b"\x86\x01\x03")) == (
        "BerTlv(tag=0x9F0C, value=bytes.fromhex('860103'))"
    )


def test_constructed_follows_bit_6_of_the_first_tag_byte() -> None:
    assert BerTlv(0x6F, b"").constructed
    assert BerTlv(0xBF0C, b"").constructed
    assert BerTlv(0x3F8101, b"").constructed
    assert not BerTlv(0x1F8101, b"").constructed
    assert not BerTlv(0x9F0C, b"").constructed
    assert not BerTlv(0x5F20, b"").constructed


def test_children_of_a_primitive_object_is_an_error() -> None:
    with pytest.raises(TlvError, match="tag 9F0C is primitive and has no children"):
        BerTlv(0x9F0C, b"").children()


def test_children_skip_padding() -> None:
    tlv = BerTlv(0xA5, bytes.fromhex("00 88011E FF 00 9F0C0100 FF"))
    assert tlv.children() == [BerTlv(0x88, b"\x1e"), BerTlv(0x9F0C, b"\x00")]


# --- BER-TLV: parsing ------------------------------------------------------------------------


def test_parse_ber_skips_padding_before_between_and_after() -> None:
    data = bytes.fromhex("00FF 880101 00 00 FF 840100 FFFF00")
    assert parse_ber(data) == [BerTlv(0x88, b"\x01"), BerTlv(0x84, b"\x00")]


@pytest.mark.parametrize("data", ["", "00", "FF", "00FF00FF"])
def test_parse_ber_of_nothing_or_padding_is_empty(data: str) -> None:
    assert parse_ber(bytes.fromhex(data)) == []


@pytest.mark.parametrize("length", ["8103", "820003", "83000003", "8400000003"])
def test_parse_ber_accepts_non_minimal_long_lengths_and_reencodes_minimally(length: str) -> None:
    tlv = parse_ber_one(bytes.fromhex("9F0C" + length + "860103"))
    assert tlv == BerTlv(0x9F0C, bytes.fromhex("860103"))
    assert tlv.to_bytes() == bytes.fromhex("9F0C03860103")


def test_parse_ber_reads_long_lengths() -> None:
    value = _long_value(0x1234)
    assert parse_ber(bytes.fromhex("5F2D821234") + value) == [BerTlv(0x5F2D, value)]


def test_parse_ber_one_allows_surrounding_padding() -> None:
    assert parse_ber_one(bytes.fromhex("FF00880101FF0000")) == BerTlv(0x88, b"\x01")


@pytest.mark.parametrize("data", ["", "00", "FFFF"])
def test_parse_ber_one_rejects_no_object(data: str) -> None:
    with pytest.raises(TlvError, match="expected one BER-TLV object, got no data"):
        parse_ber_one(bytes.fromhex(data))


def test_parse_ber_one_rejects_a_second_object() -> None:
    with pytest.raises(TlvError, match="3 bytes after BER-TLV tag 6F are not padding"):
        parse_ber_one(bytes.fromhex("6F00880101"))


def test_parse_ber_one_rejects_trailing_non_padding_after_padding() -> None:
    with pytest.raises(TlvError, match=r"3 bytes after BER-TLV tag 88 .*first at offset 5"):
        parse_ber_one(bytes.fromhex("880101FF0090"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("9F", "tag at offset 0 is truncated: 9F needs another byte"),
        ("1F81", "tag at offset 0 is truncated: 1F81 needs another byte"),
        ("1F818101", r"tag at offset 0 \(1F8181…\) is longer than 3 bytes"),
        ("6F", "tag 6F at offset 1: the length is missing"),
        ("9F0C", "tag 9F0C at offset 2: the length is missing"),
        ("6F80 0000", r"tag 6F at offset 1: indefinite length \(80\) is not allowed"),
        ("6F85 0000000001 00", "length byte 85 is not one of 81..84"),
        ("6FFF", "length byte FF is not one of 81..84"),
        ("6F81", "length 81 needs 1 more bytes, 0 available"),
        ("6F8401 0000", "length 84 needs 4 more bytes, 3 available"),
        ("6F05 8801", "tag 6F at offset 0 declares length 5 but only 2 bytes are available"),
        ("9F0C820100 00", "tag 9F0C at offset 0 declares length 256 but only 1 bytes"),
    ],
)
def test_parse_ber_reports_malformed_input(data: str, message: str) -> None:
    with pytest.raises(TlvError, match=message):
        parse_ber(bytes.fromhex(data))
    with pytest.raises(TlvError, match=message):
        parse_ber_one(bytes.fromhex(data))


def test_parse_ber_reports_a_truncated_tag_after_a_good_object() -> None:
    with pytest.raises(TlvError, match="tag at offset 3 is truncated: 5F needs another byte"):
        parse_ber(bytes.fromhex("88010A5F"))


# --- BER-TLV: properties ---------------------------------------------------------------------


@given(ber_tags, values)
def test_ber_round_trip(tag: int, value: bytes) -> None:
    encoded = encode_ber(tag, value)
    tlv = parse_ber_one(encoded)
    assert tlv == BerTlv(tag, value)
    assert tlv.to_bytes() == encoded
    assert encode_tag(tag) == encoded[: len(encode_tag(tag))]


@given(st.lists(st.tuples(padding, ber_objects), max_size=4), padding)
def test_ber_sequence_round_trip_with_padding(
    items: list[tuple[bytes, BerTlv]], tail: bytes
) -> None:
    data = b"".join(pad + obj.to_bytes() for pad, obj in items) + tail
    assert parse_ber(data) == [obj for _, obj in items]


@given(ber_trees)
def test_ber_tree_round_trip(tree: BerTlv) -> None:
    parsed = parse_ber_one(tree.to_bytes())
    assert parsed == tree
    stack = [parsed]
    while stack:
        node = stack.pop()
        if node.constructed:
            kids = node.children()
            assert b"".join(k.to_bytes() for k in kids) == node.value
            for kid in kids:
                assert parsed.find(kid.tag) is not None
            stack.extend(kids)


@given(st.binary(max_size=64))
def test_parse_ber_raises_only_tlv_error_on_arbitrary_bytes(data: bytes) -> None:
    try:
        stack = parse_ber(data)
        while stack:
            node = stack.pop()
            node.to_bytes()
            if node.constructed:
                node.find(0x86)
                stack.extend(node.children())
    except TlvError:
        pass
