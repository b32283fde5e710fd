"""Values off the wire (sync/wire.py): the bounded JSON parser every request body goes through,
ASCII-only numbers and the quoting of request values in log lines (issue 10, findings 6, 7)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.answers import batch_answer, json_answer, server_time
from sync.errors import SyncProtocolError
from sync.transport import Exchange
from sync.wire import MAX_JSON_DEPTH, MalformedBody, ascii_uint, json_depth, load_json, quote

LIMIT = 1 << 20


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def depth_of(document: object) -> int:
    if isinstance(document, list):
        return 1 + max((depth_of(item) for item in document), default=0)
    if isinstance(document, dict):
        return 1 + max((depth_of(item) for item in document.values()), default=0)
    return 0


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab\n'é", max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\x', max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_the_depth_count_ignores_brackets_and_escapes_inside_strings(
    document: object, ascii_only: bool
) -> None:
    body = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8")
    assert json_depth(body) == depth_of(document)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(alphabet='[]{}"\\, 1a', max_size=64).map(str.encode))
def test_any_bytes_are_answered_or_refused_never_an_unexpected_error(body: bytes) -> None:
    try:
        load_json(body, max_bytes=LIMIT, max_depth=3)
    except MalformedBody as exc:
        assert exc.status == 400 and exc.code == "bad_json"


@pytest.mark.parametrize(
    "body",
    [
        nested(30_000),  # 60 KB: json.loads raised RecursionError (issue 10 finding 6)
        nested(MAX_JSON_DEPTH + 1),
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
        b'["' + b"\\" * 10 + b'"' + b"[" * 100,  # escapes before the brackets
        b"[" * 8_000_000,
    ],
)
def test_deep_nesting_is_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(MalformedBody, match="nests deeper") as info:
        load_json(body, max_bytes=len(body))
    assert (info.value.status, info.value.code) == (400, "bad_json")


def test_the_deepest_document_allowed_parses() -> None:
    assert load_json(nested(MAX_JSON_DEPTH), max_bytes=LIMIT) == json.loads(nested(MAX_JSON_DEPTH))
    in_a_string = b'["' + b"[" * 100 + b'"]'
    assert load_json(in_a_string, max_bytes=LIMIT) == ["[" * 100]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded in UTF-8
        (b'{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'["\\udc00x"]', "lone UTF-16 surrogate"),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b"[-Infinity]", "Infinity is not JSON"),
        (b"[1e400]", "out of the range"),
        (b"9" * 5000, "not JSON"),  # over Python's 4300-digit int limit: ValueError
        (b"{not json", "not JSON"),
    ],
)
def test_bodies_off_json_are_bad_json(body: bytes, words: str) -> None:
    with pytest.raises(MalformedBody, match=words) as info:
        load_json(body, max_bytes=LIMIT)
    assert (info.value.status, info.value.code) == (400, "bad_json")


def test_a_body_over_its_limit_is_413() -> None:
    with pytest.raises(MalformedBody) as info:
        load_json(b"[" + b" " * 100 + b"]", max_bytes=100)
    assert (info.value.status, info.value.code) == (413, "too_large")


def test_escaped_text_that_is_valid_unicode_parses() -> None:
    assert load_json(b'["\\ud83d\\ude00", "\\\\ud800"]', max_bytes=LIMIT) == ["😀", "\\ud800"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("1795953600", 1_795_953_600), ("9" * 18, 10**18 - 1), ("007", 7)],
)
def test_ascii_digits_are_numbers(text: str, value: int) -> None:
    assert ascii_uint(text) == value


@pytest.mark.parametrize(
    "text", ["", "²", "1²", "٣", "４", "𝟗", "-1", "+1", " 1", "1 ", "1_000", "0x10", "9" * 19]
)
def test_anything_else_is_not_a_number(text: str) -> None:
    assert ascii_uint(text) is None


def test_more_digits_can_be_allowed() -> None:
    assert ascii_uint("9" * 19, 19) == 10**19 - 1
    assert ascii_uint("9" * 5000, 19) is None  # int() would raise past 4300 digits


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("/v1/time", '"/v1/time"'),
        ("/v1/time\n2026 ERROR forged", '"/v1/time\\n2026 ERROR forged"'),
        ("T1\x1b[31mred\x1b[0m", '"T1\\x1b[31mred\\x1b[0m"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\r\t\x00\x7f\x9b", '"\\r\\t\\x00\\x7f\\x9b"'),  # \x9b: the 8-bit CSI
        ("\u202egnp.exe\u2028", '"\\u202egnp.exe\\u2028"'),
        ("\ud800", '"\\ud800"'),
        ("张三 ok", '"张三 ok"'),
        (b"T1\xb2", '"T1²"'),
        (7, '"7"'),
    ],
)
def test_quote_keeps_a_value_on_one_printable_line(value: object, shown: str) -> None:
    assert quote(value) == shown


def test_quote_caps_the_length_outside_the_quotes() -> None:
    assert quote("x" * 500, 10) == '"xxxxxxxxxx"…'
    assert quote("\n" * 500, 3) == '"\\n\\n\\n"…'


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_quoted_value_is_one_printable_line(text: str) -> None:
    shown = quote(text, 50)
    assert shown.isprintable() and "\n" not in shown
    assert shown.startswith('"') and shown.rstrip("…").endswith('"')


@pytest.mark.parametrize("check", [batch_answer, server_time, json_answer])
def test_the_sync_client_refuses_an_answer_nested_thousands_deep(check: object) -> None:
    """A platform answer (or a proxy's) of 60 KB of "[" raised RecursionError in the client."""
    answer = Exchange(200, {}, nested(30_000), 1000.0, 0.1, 1)
    with pytest.raises(SyncProtocolError, match="nests deeper"):
        check(answer)  # type: ignore[operator]
