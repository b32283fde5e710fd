"""The line rules of the serial and stdin scanners (``drivers/scanners/lines.py``), without a
port: ends of line, stripping, the line cap, undecodable bytes."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qr_images import base45

from drivers.scanners.lines import LineBuffer


def feed_all(buffer: LineBuffer, *chunks: bytes) -> list[str]:
    return [text for chunk in chunks for text in buffer.feed(chunk)]


def test_cr_lf_and_crlf_each_end_a_line_and_empty_lines_are_dropped() -> None:
    lines = LineBuffer("test")
    assert feed_all(lines, b"A\r\nB\rC\n\n\r\nD\r") == ["A", "B", "C", "D"]
    assert len(lines) == 0


def test_a_line_and_its_end_split_anywhere_give_the_same_lines() -> None:
    data = b"SSC1:AB12\r\nSSC1:CD34\rSSC1:EF56\n"
    for cut in range(1, len(data)):
        for second in range(cut, len(data)):
            buffer = LineBuffer("test")
            got = feed_all(buffer, data[:cut], data[cut:second], data[second:])
            assert got == ["SSC1:AB12", "SSC1:CD34", "SSC1:EF56"], (cut, second)


def test_surrounding_whitespace_is_stripped_but_inner_spaces_are_kept() -> None:
    assert feed_all(LineBuffer("test"), b"  SSC1:A B \t\n\x0b\x0c\n") == ["SSC1:A B"]


def test_utf8_text_is_kept() -> None:
    assert feed_all(LineBuffer("test"), "电子社保卡:12333\n".encode()) == ["电子社保卡:12333"]


def test_a_line_of_exactly_the_cap_is_kept_one_byte_more_is_discarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = LineBuffer("test", max_line=8)
    with caplog.at_level(logging.WARNING, logger="drivers.scanners.lines"):
        assert feed_all(lines, b"12345678\n123456789\nOK\n") == ["12345678", "OK"]
    assert "event=scanner_line_too_long source=test bytes=9 max=8" in caplog.text
    assert lines.discarded == 1


def test_an_endless_line_never_grows_the_buffer_and_its_tail_is_not_a_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = LineBuffer("test", max_line=64)
    with caplog.at_level(logging.WARNING, logger="drivers.scanners.lines"):
        for _ in range(10_000):  # 1 MB without an end of line
            assert lines.feed(b"9" * 100) == []
            assert len(lines) <= 64 + 100
        assert lines.feed(b"tail of it\r\nSSC1:NEXT\r\n") == ["SSC1:NEXT"]
    assert caplog.text.count("event=scanner_line_too_long") == 1
    assert lines.discarded == 1


def test_bytes_that_are_not_utf8_are_skipped_with_a_warning_without_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = LineBuffer("serial:/dev/ttyACM0")
    with caplog.at_level(logging.WARNING, logger="drivers.scanners.lines"):
        assert feed_all(lines, b"\xfe\xff#?!\x00\xc3(\r\nSSC1:OK\r\n") == ["SSC1:OK"]
    assert "event=scanner_undecodable source=serial:/dev/ttyACM0 bytes=8 digest=" in caplog.text
    assert "#?!" not in caplog.text
    assert lines.discarded == 1


def test_clear_forgets_an_unfinished_line_and_an_overlong_state() -> None:
    lines = LineBuffer("test", max_line=4)
    lines.feed(b"123456")
    lines.clear()
    assert lines.feed(b"AB\n") == ["AB"]
    with pytest.raises(ValueError, match="at least 1 byte"):
        LineBuffer("test", max_line=0)


@given(st.binary(max_size=300))
def test_stripping_never_changes_base45_text(data: bytes) -> None:
    # lines.py relies on it: Base45 never ends in a space (RFC 9285 §4), so a stripped
    # SSC1: line is the code as issued
    text = "SSC1:" + base45(data)
    assert feed_all(LineBuffer("test"), text.encode() + b"\r\n") == [text]
