"""The indicator board's line protocol (``docs/indicator-protocol.md``) and the indication record,
without a port: codec round trips, strict parsing, the indication → commands table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.indicators import Hotline, Indication, Signal
from drivers.indicators.protocol import (
    MAX_LINE,
    Answer,
    LineFormatError,
    commands_for,
    decode_answer,
    decode_command,
    encode_answer,
    encode_command,
    gate_open,
    next_tag,
)

HOTLINE = Hotline("12333", "人社服务热线", "social security hotline")
WORD = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6)
ARG = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6)
COMMANDS = st.builds(lambda w, a: " ".join([w, *a]), WORD, st.lists(ARG, max_size=3))
TAGS = st.integers(1, 9999)
ERR_TEXT = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=48)


@given(TAGS, COMMANDS)
def test_a_command_line_round_trips(tag: int, command: str) -> None:
    line = encode_command(tag, command)
    assert line.endswith(b"\r\n") and len(line) <= MAX_LINE
    assert decode_command(line[:-2]) == (tag, command)


@given(st.integers(0, 9999), st.one_of(st.none(), ERR_TEXT))
def test_an_answer_line_round_trips(tag: int, error: str | None) -> None:
    line = encode_answer(tag, error)
    assert decode_answer(line[:-2]) == Answer(tag, error is None, error or "")


def test_the_wire_form_is_the_documented_one() -> None:
    assert encode_command(17, "GATE OPEN 3000") == b"17 GATE OPEN 3000\r\n"
    assert encode_answer(17) == b"17 OK\r\n"
    assert encode_answer(18, "buzzer fault") == b"18 ERR buzzer fault\r\n"
    assert decode_answer(b"18 ERR") == Answer(18, False, "")


@pytest.mark.parametrize(
    "line",
    [
        b"OK",  # no tag
        b"017 OK",  # leading zero
        b"10000 OK",  # tag out of range
        b"17 ok",  # lower case
        b"17 OKAY",
        b"17  OK",
        b"17 OK\x00",
        b"17 ERR \xe5\x8d\xa1",  # not ASCII
        b"17 ERR " + b"x" * 49,  # ERR text too long
        b"1" * 64,
    ],
)
def test_a_malformed_answer_is_refused(line: bytes) -> None:
    with pytest.raises(LineFormatError):
        decode_answer(line)


@pytest.mark.parametrize(
    ("tag", "command"),
    [(0, "PING"), (10000, "PING"), (1, "ping"), (1, "GATE  OPEN"), (1, "SAY 卡已挂失"), (1, "")],
)
def test_only_protocol_commands_are_encoded(tag: int, command: str) -> None:
    with pytest.raises(LineFormatError):
        encode_command(tag, command)


def test_a_non_ascii_error_text_is_made_printable_and_cut() -> None:
    assert encode_answer(3, "蜂鸣器\n" + "x" * 60) == b"3 ERR ????" + b"x" * 44 + b"\r\n"


def test_tags_run_from_1_to_9999_and_wrap_without_0() -> None:
    assert [next_tag(0), next_tag(1), next_tag(9998), next_tag(9999)] == [1, 2, 9999, 1]


def test_indications_map_to_commands_gate_first() -> None:
    accept = Indication(Signal.ACCEPT, "ok", "请通行", "Go ahead", open_gate=True)
    desk = Indication(Signal.ACCEPT, "ok", "登记成功", "Registered")
    refuse = Indication(Signal.REFUSE, "expired", "卡已过期", "Expired", (HOTLINE,))
    attention = Indication(Signal.ATTENTION, "pin_missing", "请输入密码", "Enter the PIN")
    assert commands_for(accept, 2500, 800) == ["GATE OPEN 2500", "LED GREEN 800", "BEEP OK"]
    assert commands_for(desk, 2500, 800) == ["LED GREEN 800", "BEEP OK"]
    assert commands_for(refuse, 2500, 800) == ["LED RED 800", "BEEP ERR"]
    assert commands_for(attention, 2500, 800) == ["LED AMBER 800", "BEEP ATTN"]


def test_no_prompt_or_personal_text_can_reach_the_wire() -> None:
    lost = Indication(
        Signal.REFUSE, "deny_lost", "张三的卡已挂失", "Card of Zhang San lost", (HOTLINE,)
    )
    for command in commands_for(lost, 3000, 1000):
        assert encode_command(1, command).isascii()
        assert "Zhang" not in command


def test_gate_times_are_bounded() -> None:
    assert gate_open(100) == "GATE OPEN 100"
    for ms in (99, 60001):
        with pytest.raises(ValueError, match="outside 100–60000"):
            gate_open(ms)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"signal": "accept"}, "signal must be a Signal"),
        ({"reason_code": ""}, "is not of the form"),
        ({"reason_code": "../x"}, "is not of the form"),
        ({"signal": Signal.REFUSE, "open_gate": True}, "only an accept opens the gate"),
        ({"signal": Signal.ATTENTION, "open_gate": True}, "only an accept opens the gate"),
        ({"hotlines": "12333"}, "hotlines must be a tuple of Hotline"),
        ({"hotlines": ("12333",)}, "hotlines must be a tuple of Hotline"),
    ],
)
def test_an_inconsistent_indication_is_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "signal": Signal.ACCEPT,
        "reason_code": "ok",
        "prompt_zh": "请通行",
        "prompt_en": "Go ahead",
    }
    with pytest.raises(ValueError, match=message):
        Indication(**{**fields, **kwargs})
