"""Indicators with real parts: a console stream, a relay board emulated on the far end of a real
``socat`` pty pair (``docs/indicator-protocol.md``), and espeak-ng / a real player program for
voice prompts (no sound card needed: espeak-ng writes WAV files, the "player" is ``cp``).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pty_pair import SocatPair

from drivers.indicators import (
    Hotline,
    Indication,
    IndicatorError,
    IndicatorSet,
    Signal,
    backend,
)
from drivers.indicators.console import ConsoleIndicator
from drivers.indicators.serial_board import CommandRefused, SerialIndicator
from drivers.indicators.voice import AudioFile, Speech, VoiceIndicator
from drivers.virtual.gate import Fault, VirtualGate

pytestmark = pytest.mark.emulated

TIMEOUT_S = 0.4  # the board's answer timeout in these tests
SLOW_S = 0.6  # a slow answer: after the timeout, before the next command's deadline
HOTLINES = (
    Hotline("12333", "人社服务热线", "social security hotline"),
    Hotline("12345", "政务服务便民热线", "government service hotline"),
)
HOTLINE_LINE = (
    "咨询投诉：12333 人社服务热线，12345 政务服务便民热线 / Help or complaints: "
    "12333 social security hotline, 12345 government service hotline"
)

ACCEPT = Indication(Signal.ACCEPT, "ok", "请通行", "Please go ahead", open_gate=True)
ACCEPT_NO_GATE = Indication(Signal.ACCEPT, "ok_desk", "登记成功", "Registered")
LOST = Indication(Signal.REFUSE, "deny_listed", "卡已挂失", "Card reported lost", HOTLINES)
EXPIRED = Indication(Signal.REFUSE, "expired", "卡已过期", "Card expired", HOTLINES)
AGAIN = Indication(Signal.ATTENTION, "present_again", "请重新刷卡", "Present the card again")


@pytest.fixture(autouse=True)
def _no_new_threads() -> Iterator[None]:
    """Fail a test that leaves any thread it started running (virtual gates included)."""
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"test leaked threads: {leaked}"


def _children() -> dict[int, str]:
    """pid → state letter of this process's children (``Z`` is a zombie)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces, so split after its ")"
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid():
            children[int(text.split(" ", 1)[0])] = state
    return children


# -- console -----------------------------------------------------------------------------------


def test_console_writes_one_line_per_indication_with_both_prompts_and_the_hotlines() -> None:
    out = io.StringIO()
    console = ConsoleIndicator(out, colour=False)
    console.indicate(ACCEPT)
    console.indicate(LOST)
    console.indicate(AGAIN)
    advised = Indication(
        Signal.REFUSE,
        "pin_blocked",
        "密码已锁定，请到人工窗口",
        "PIN blocked: please see staff",
        HOTLINES[:1],
        advice_zh="请到银行网点重置密码",
        advice_en="Have the PIN reset at a bank",
    )
    console.indicate(advised)
    assert out.getvalue().splitlines() == [
        "ACCEPT     请通行 / Please go ahead  [gate]  (ok)",
        f"REFUSE     卡已挂失 / Card reported lost  — {HOTLINE_LINE}  (deny_listed)",
        "ATTENTION  请重新刷卡 / Present the card again  (present_again)",
        "REFUSE     密码已锁定，请到人工窗口 / PIN blocked: please see staff  "
        "(请到银行网点重置密码 / Have the PIN reset at a bank)  — 咨询投诉：12333 人社服务热线 "
        "/ Help or complaints: 12333 social security hotline  (pin_blocked)",
    ]


def test_console_colours_a_terminal_but_not_a_pipe_or_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    piped = io.StringIO()
    ConsoleIndicator(piped).indicate(LOST)
    assert "\x1b[" not in piped.getvalue()
    forced = io.StringIO()
    ConsoleIndicator(forced, colour=True).indicate(LOST)
    assert forced.getvalue().startswith("\x1b[1;31mREFUSE")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert ConsoleIndicator(Tty()).colour
    monkeypatch.setenv("NO_COLOR", "1")
    assert not ConsoleIndicator(Tty()).colour


def test_console_on_a_closed_stream_raises_indicator_error() -> None:
    out = io.StringIO()
    out.close()
    with pytest.raises(IndicatorError, match="console: cannot write"):
        ConsoleIndicator(out).indicate(ACCEPT)


def test_backends_load_by_name() -> None:
    assert backend("console") is ConsoleIndicator
    assert backend("serial") is SerialIndicator
    assert backend("voice") is VoiceIndicator
    with pytest.raises(IndicatorError, match="unknown indicator 'buzzer'; known: console"):
        backend("buzzer")


# -- serial board through a real pty pair ------------------------------------------------------


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[SocatPair]:
    """A socat pty pair, killed (by pid) at teardown."""
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed: run `make test`, which installs it")
    pair = SocatPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


@pytest.fixture
def gate(pty_pair: SocatPair) -> Iterator[VirtualGate]:
    """The emulated board on the pair's board end."""
    with VirtualGate(pty_pair.device) as board:
        assert board.wait_until(lambda g: g.connections >= 1, 5)
        yield board


@pytest.fixture
def board(pty_pair: SocatPair, gate: VirtualGate) -> Iterator[SerialIndicator]:
    """The serial indicator on the pair's terminal end."""
    indicator = SerialIndicator(str(pty_pair.terminal), timeout_s=TIMEOUT_S)
    yield indicator
    indicator.close()


def test_accept_opens_the_gate_first_then_green_and_the_ok_beep(
    board: SerialIndicator, gate: VirtualGate
) -> None:
    board.indicate(ACCEPT)
    record = gate.record
    assert record.commands == ["GATE OPEN 3000", "LED GREEN 1000", "BEEP OK"]
    assert record.gate_opens == [3000]
    assert record.leds == [("GREEN", 1000)]
    assert record.beeps == ["OK"]


def test_accept_without_open_gate_and_refuse_leave_the_gate_shut(
    board: SerialIndicator, gate: VirtualGate
) -> None:
    board.indicate(ACCEPT_NO_GATE)
    board.indicate(LOST)
    record = gate.record
    assert record.gate_opens == []
    assert record.commands == ["LED GREEN 1000", "BEEP OK", "LED RED 1000", "BEEP ERR"]


def test_attention_lights_amber_and_beeps_attn(board: SerialIndicator, gate: VirtualGate) -> None:
    board.indicate(AGAIN)
    board.ping()
    record = gate.record
    assert record.leds == [("AMBER", 1000)]
    assert record.beeps == ["ATTN"]
    assert record.pings == 1


def test_a_refused_command_names_it_and_a_dead_buzzer_does_not_keep_the_gate_shut(
    board: SerialIndicator, gate: VirtualGate
) -> None:
    gate.inject(Fault.ERR, command="BEEP", times=None)
    with pytest.raises(CommandRefused, match=r"^BEEP OK: board answered ERR fault injected$") as e:
        board.indicate(ACCEPT)
    assert e.value.command == "BEEP OK"
    assert gate.record.gate_opens == [3000]


def test_every_refused_command_is_listed(board: SerialIndicator, gate: VirtualGate) -> None:
    gate.inject(Fault.ERR, times=None)
    with pytest.raises(IndicatorError) as e:
        board.indicate(LOST)
    assert str(e.value) == (
        "LED RED 1000: board answered ERR fault injected; "
        "BEEP ERR: board answered ERR fault injected"
    )
    assert e.value.command == "LED RED 1000"


def test_no_answer_times_out_naming_the_command_and_skips_the_rest(
    board: SerialIndicator, gate: VirtualGate
) -> None:
    gate.inject(Fault.SILENT, command="GATE")
    started = time.monotonic()
    with pytest.raises(IndicatorError, match=r"^GATE OPEN 3000: no answer within 0.4 s$") as e:
        board.indicate(ACCEPT)
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 0.5
    assert e.value.command == "GATE OPEN 3000"
    assert gate.record.commands == ["GATE OPEN 3000"]  # no LED, no beep: they would time out
    board.indicate(ACCEPT)  # the board is back: the next tap works
    assert gate.record.gate_opens == [3000]


def test_a_garbage_answer_raises_naming_the_command(
    board: SerialIndicator, gate: VirtualGate
) -> None:
    gate.inject(Fault.GARBAGE, command="LED")
    with pytest.raises(
        IndicatorError,
        match=r"^LED RED 1000: no answer within 0.4 s \(1 unreadable line\(s\) discarded\)$",
    ):
        board.indicate(LOST)
    assert gate.record.leds == []


def test_a_late_answer_is_not_taken_for_the_next_command(
    board: SerialIndicator, gate: VirtualGate, caplog: pytest.LogCaptureFixture
) -> None:
    # the first PING is answered OK after the timeout; the second is refused. Matched by
    # position, the late OK would pass for the second's answer and the refusal go unseen.
    gate.inject(Fault.SLOW, delay_s=SLOW_S)
    gate.inject(Fault.ERR)
    with pytest.raises(IndicatorError, match=r"^PING: no answer within") as first:
        board.ping()
    assert not isinstance(first.value, CommandRefused)
    with (
        caplog.at_level(logging.INFO, logger="drivers.indicators.serial_board"),
        pytest.raises(CommandRefused, match=r"^PING: board answered ERR"),
    ):
        board.ping()
    assert "event=indicator_stale_answer kind=serial tag=1 expected=2" in caplog.text
    board.ping()
    assert gate.record.commands == ["PING", "PING", "PING"]


def test_the_board_is_reconnected_after_the_pty_pair_restarts(
    board: SerialIndicator,
    gate: VirtualGate,
    pty_pair: SocatPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    board.indicate(ACCEPT)
    pty_pair.stop()
    pty_pair.start()
    assert gate.wait_until(lambda g: g.connections >= 2, 5), "the board did not come back"
    with caplog.at_level(logging.INFO, logger="drivers.indicators.serial_board"):
        board.indicate(ACCEPT)
    assert "event=indicator_reconnect kind=serial" in caplog.text
    assert gate.record.gate_opens == [3000, 3000]


def test_a_board_that_is_gone_raises_naming_the_command_and_is_reopened_later(
    board: SerialIndicator, gate: VirtualGate, pty_pair: SocatPair
) -> None:
    pty_pair.stop()
    with pytest.raises(IndicatorError, match=r"^GATE OPEN 3000: cannot open indicator port"):
        board.indicate(ACCEPT)
    pty_pair.start()
    assert gate.wait_until(lambda g: g.connections >= 2, 5)
    board.indicate(ACCEPT)
    assert gate.record.gate_opens == [3000]


def test_a_missing_port_is_reported_at_construction(tmp_path: Path) -> None:
    with pytest.raises(IndicatorError, match=r"cannot open indicator port .*/nothing"):
        SerialIndicator(str(tmp_path / "nothing"))


# -- the fan-out --------------------------------------------------------------------------------


def test_the_set_tries_every_indicator_then_lists_the_failed_ones(
    board: SerialIndicator, gate: VirtualGate, caplog: pytest.LogCaptureFixture
) -> None:
    dead_stream = io.StringIO()
    dead_stream.close()
    screen = io.StringIO()
    gate.inject(Fault.SILENT, command="BEEP")  # a dead buzzer
    indicators = IndicatorSet(
        [ConsoleIndicator(dead_stream), board, ConsoleIndicator(screen, colour=False)]
    )
    with caplog.at_level(logging.WARNING), pytest.raises(IndicatorError) as e:
        indicators.indicate(ACCEPT)
    assert [kind for kind, _ in e.value.failures] == ["console", "serial"]
    assert str(e.value).startswith("2 of 3 indicators failed to indicate: console: ")
    assert "serial: BEEP OK: no answer within 0.4 s" in str(e.value)
    assert e.value.command == "BEEP OK"
    assert gate.record.gate_opens == [3000]  # the gate opened all the same
    assert "请通行" in screen.getvalue()
    assert "event=indicator_failed kind=console action=indicate error=" in caplog.text
    assert "event=indicator_failed kind=serial action=indicate error=" in caplog.text


# -- voice ---------------------------------------------------------------------------------------


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.fail("espeak-ng is not installed: run `make test`, which installs it")
    return found


def _reference_wav(tmp_path: Path, text: str, voice: str, *, ssml: bool = False) -> bytes:
    reference = tmp_path / "reference.wav"
    # 140 wpm: the indicator's slow default; -m: SSML, for the pause before the hotlines
    argv = [_espeak(), "-v", voice, "-s", "140", "-w", str(reference), *(["-m"] if ssml else [])]
    subprocess.run([*argv, "--", text], check=True, timeout=30)
    return reference.read_bytes()


def _assert_wav(data: bytes) -> None:
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    assert len(data) > 1000  # more than a header: something was said


def test_espeak_writes_a_wav_per_outcome_with_the_selected_text(tmp_path: Path) -> None:
    out = tmp_path / "wav"
    out.mkdir()
    voice = VoiceIndicator(
        clips={"deny_listed": Speech("卡已挂失，请咨询12333"), "ok_desk": None},
        defaults={
            Signal.REFUSE: Speech("请咨询工作人员"),
            Signal.ATTENTION: Speech(voice="en"),
        },
        wav_dir=out,
    )
    then = '<break time="700ms"/>咨询投诉请拨打 1 2 3 3 3 或 1 2 3 4 5</speak>'
    mandarin = "cmn-latn-pinyin"  # what "zh" means to espeak-ng (see LANGUAGE_VOICES)
    expected = [
        (LOST, f"<speak>卡已挂失，请咨询12333{then}", mandarin),  # by reason code
        (EXPIRED, f"<speak>请咨询工作人员{then}", mandarin),  # by the signal's default
        (ACCEPT, "请通行", mandarin),  # built-in default: the Chinese prompt
        (AGAIN, "Present the card again", "en"),  # an English voice says the English prompt
    ]
    with voice:
        for indication, text, lang in expected:
            voice.indicate(indication)
            assert voice.wait(30) == 0
            assert voice.last_wav is not None
            assert voice.last_wav.name.endswith(f"-{indication.reason_code}.wav")
            data = voice.last_wav.read_bytes()
            _assert_wav(data)
            reference = _reference_wav(tmp_path, text, lang, ssml=text.startswith("<speak>"))
            assert data == reference, indication.reason_code
        voice.indicate(ACCEPT_NO_GATE)  # silenced by its reason code
        assert voice.pid is None
    assert len(list(out.iterdir())) == len(expected)


def test_a_prerecorded_file_is_played_by_the_player_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = tmp_path / "card-lost.wav"
    clip.write_bytes(_reference_wav(tmp_path, "卡已挂失", "cmn-latn-pinyin"))
    played = tmp_path / "played"
    played.mkdir()
    silent = dict.fromkeys(Signal)
    with (
        caplog.at_level(logging.WARNING, logger="drivers.indicators.voice"),
        VoiceIndicator(
            {"deny_listed": AudioFile(clip)}, silent, player=("cp", "{file}", str(played))
        ) as voice,
    ):
        voice.indicate(LOST)
        assert voice.wait(10) == 0
        voice.indicate(LOST)
        assert voice.wait(10) == 0
        voice.indicate(EXPIRED)  # refusals are silent by default here
        assert voice.pid is None
    assert (played / "card-lost.wav").read_bytes() == clip.read_bytes()
    # a recording cannot be followed by the spoken hotlines: it must say them; told once
    assert caplog.text.count("event=voice_hotline_in_recording reason=deny_listed") == 1


def test_a_new_prompt_cancels_the_playing_one_and_no_player_is_left_behind(
    tmp_path: Path,
) -> None:
    clip = tmp_path / "long.wav"
    clip.write_bytes(b"RIFF")
    # `tail -f` plays "forever": only cancelling ends it
    voice = VoiceIndicator(
        defaults=dict.fromkeys(Signal, AudioFile(clip)), player=("tail", "-f", "{file}")
    )
    started = time.monotonic()
    voice.indicate(LOST)
    assert time.monotonic() - started < 0.5  # the decision path does not wait for the prompt
    first = voice.pid
    assert first is not None and first in _children()
    assert voice.reap()  # still playing
    voice.indicate(ACCEPT)
    second = voice.pid
    assert second is not None and second != first
    assert first not in _children()  # terminated and reaped: no zombie
    voice.close()
    assert second not in _children()
    with pytest.raises(IndicatorError, match="closed"):
        voice.indicate(ACCEPT)


def test_a_finished_prompt_is_reaped_and_a_failing_player_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = tmp_path / "x.wav"
    clip.write_bytes(b"RIFF")
    voice = VoiceIndicator(defaults=dict.fromkeys(Signal, AudioFile(clip)), player=("false",))
    voice.indicate(LOST)
    pid = voice.pid
    deadline = time.monotonic() + 10
    with caplog.at_level(logging.WARNING, logger="drivers.indicators.voice"):
        while voice.reap():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert pid not in _children()
    assert "event=voice_player_failed program=false status=1" in caplog.text
    voice.close()


def test_a_missing_espeak_is_reported_at_construction_not_at_the_first_tap(
    tmp_path: Path,
) -> None:
    with pytest.raises(IndicatorError, match=r"espeak-ng .* is not installed") as e:
        VoiceIndicator(espeak=str(tmp_path / "espeak-ng"))
    assert "signal accept, signal refuse, signal attention" in str(e.value)
    with pytest.raises(IndicatorError, match="reason expired"):
        VoiceIndicator(
            {"expired": Speech("卡已过期")},
            dict.fromkeys(Signal),
            espeak=str(tmp_path / "espeak-ng"),
        )
    # with files (or silence) everywhere, espeak-ng is not needed
    clip = tmp_path / "ok.wav"
    clip.write_bytes(b"RIFF")
    VoiceIndicator(
        defaults=dict.fromkeys(Signal, AudioFile(clip)),
        player=("cp", "{file}", str(tmp_path)),
        espeak=str(tmp_path / "espeak-ng"),
    ).close()


def test_a_bad_voice_player_or_file_is_reported_at_construction(tmp_path: Path) -> None:
    with pytest.raises(IndicatorError, match="espeak-ng has no voice 'qqq'"):
        VoiceIndicator({"ok": Speech("你好", voice="qqq")})
    clip = tmp_path / "x.wav"
    clip.write_bytes(b"RIFF")
    silent = dict.fromkeys(Signal)
    with pytest.raises(IndicatorError, match="audio player 'no-such-player' is not installed"):
        VoiceIndicator({"ok": AudioFile(clip)}, silent, player=("no-such-player", "{file}"))
    with pytest.raises(IndicatorError, match=r"reason ok: audio file .*/missing.wav"):
        VoiceIndicator({"ok": AudioFile(tmp_path / "missing.wav")}, silent, player=("cp",))


def test_from_config_takes_a_profiles_flat_table_of_texts_and_files(tmp_path: Path) -> None:
    (tmp_path / "lost.wav").write_bytes(b"RIFF")
    voice = VoiceIndicator.from_config(
        {"deny_listed": "lost.wav", "expired": "卡已过期", "ok": False, "player": ["cp"]},
        base_dir=tmp_path,
    )
    assert voice.clip_for(LOST) == AudioFile(tmp_path / "lost.wav")
    assert voice.clip_for(EXPIRED) == Speech("卡已过期")
    assert voice.clip_for(ACCEPT) is None
    assert voice.clip_for(AGAIN) == Speech()  # the built-in default: say the prompt
    voice.close()


def test_from_config_selects_prompts_per_outcome(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "lost.wav").write_bytes(b"RIFF")
    voice = VoiceIndicator.from_config(
        {
            "speed_wpm": 140,
            "player": ["cp", "{file}", str(tmp_path)],
            "defaults": {
                "accept": {"prompt": True},
                "refuse": "请咨询工作人员",
                "attention": False,
            },
            "clips": {
                "deny_listed": {"file": "prompts/lost.wav"},
                "expired": {"say": "卡已过期", "voice": "yue"},
                "ok_desk": False,
            },
        },
        base_dir=tmp_path,
    )
    assert voice.clip_for(LOST) == AudioFile(tmp_path / "prompts" / "lost.wav")
    assert voice.clip_for(EXPIRED) == Speech("卡已过期", "yue")
    assert voice.clip_for(ACCEPT) == Speech(None, "zh")
    assert Speech(None, "zh").espeak_voice == "cmn-latn-pinyin"
    assert voice.clip_for(ACCEPT_NO_GATE) is None
    assert voice.clip_for(AGAIN) is None
    assert voice.clip_for(Indication(Signal.REFUSE, "fraud", "x", "x")) == Speech("请咨询工作人员")
    assert voice.speed_wpm == 140
    voice.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"clips": {"x": "a"}, "x": "b"}, r"voice: x is given both directly and in clips"),
        ({"defualts": {"accept": "a"}}, r"voice.defualts: expected exactly one of file, say"),
        ({"clips": {"x": 3}}, r"voice.clips.x: expected text, a table or false"),
        ({"clips": {"x": {"say": "a", "file": "b"}}}, r"exactly one of file, say, prompt"),
        ({"clips": {"x": {"file": "b", "voice": "zh"}}}, r"a file clip takes one path"),
        ({"clips": {"x": {"prompt": False}}}, r"voice.clips.x.prompt: only `prompt = true`"),
        ({"defaults": {"deny": "x"}}, r"unknown signal 'deny'"),
        ({"clips": {"bad code": "x"}}, r"'bad code' is not a reason code"),
        ({"player": "aplay -q"}, r"voice.player: expected a list of strings"),
        ({"speed_wpm": 20}, r"speed 20 is outside 80–450"),
        ({"clips": {"x": "  "}}, r"reason x has an empty text"),
    ],
)
def test_from_config_rejects_what_it_cannot_use(table: dict[str, object], message: str) -> None:
    with pytest.raises(IndicatorError, match=message):
        VoiceIndicator.from_config(table)
