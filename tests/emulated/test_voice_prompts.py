"""Spoken prompts as a service point must give them (docs/service-point.md): every reason's
prompt synthesises in Mandarin, Cantonese and English with the real espeak-ng (to WAV files:
no sound card needed), slowly, with a pause before the hotlines, never falling back to English
sounds for Chinese text; and voice is on by default wherever the machine has a sound output.

The whole file synthesises about 120 prompts and takes a couple of seconds.
"""

from __future__ import annotations

import array
import logging
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from config.settings import Settings
from drivers.indicators import IndicatorError, Signal
from drivers.indicators.voice import (
    DEFAULT_SPEED_WPM,
    LANGUAGE_VOICES,
    Speech,
    VoiceIndicator,
    audio_output_present,
)
from terminal.compose import build_indicators, voice_enabled
from terminal.profiles import load_profile, parse_profile
from terminal.reasons import DEFAULT_HOTLINES, TEXTS, Reason, indication

pytestmark = pytest.mark.emulated

LANGUAGES = ("zh", "yue", "en")
MAX_SPOKEN_S = 7.0  # the longest prompt, without the hotlines, at the default speed
PAUSE_MIN_S = 0.65  # the pause before the hotlines (700 ms asked; espeak-ng trims a little)
SILENCE = 300  # |sample| below this is silence (16-bit PCM)


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.fail("espeak-ng is not installed: run `make test`, which installs it")
    return found


def _samples(path: Path) -> tuple[array.array[int], int]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return array.array("h", wav.readframes(wav.getnframes())), wav.getframerate()


def _seconds(path: Path) -> float:
    samples, rate = _samples(path)
    return len(samples) / rate


def _longest_silence_s(path: Path) -> float:
    samples, rate = _samples(path)
    longest = run = 0
    for sample in samples:
        run = run + 1 if abs(sample) < SILENCE else 0
        longest = max(longest, run)
    return longest / rate


def _say(voice: VoiceIndicator, reason: Reason, *, hotlines: bool = True) -> Path:
    shown = indication(reason, hotlines=DEFAULT_HOTLINES if hotlines else ())
    voice.indicate(shown)
    assert voice.wait(30) == 0, reason
    assert voice.last_wav is not None
    return voice.last_wav


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_prompt_is_spoken_in_each_language_briefly(tmp_path: Path, language: str) -> None:
    _espeak()
    with VoiceIndicator(voice=language, wav_dir=tmp_path) as voice:
        assert voice.speed_wpm == DEFAULT_SPEED_WPM
        for reason in Reason:
            alone = _say(voice, reason, hotlines=False)
            assert alone.stat().st_size > 1000, (language, reason)  # more than a header
            assert _seconds(alone) <= MAX_SPOKEN_S, (language, reason, _seconds(alone))
            if TEXTS[reason].signal != Signal.REFUSE:
                continue
            told = _say(voice, reason)
            # the hotlines follow the prompt after a pause
            assert _seconds(told) > _seconds(alone) + 2, (language, reason)
    # every refusal's prompt, then its hotlines; every other reason once
    refusals = sum(1 for text in TEXTS.values() if text.signal == Signal.REFUSE)
    assert len(list(tmp_path.glob("*.wav"))) == len(Reason) + refusals


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_pause_sets_the_hotlines_apart_from_the_prompt(tmp_path: Path, language: str) -> None:
    with VoiceIndicator(voice=language, wav_dir=tmp_path) as voice:
        assert _longest_silence_s(_say(voice, Reason.DENY_LOST, hotlines=False)) < PAUSE_MIN_S
        assert _longest_silence_s(_say(voice, Reason.DENY_LOST)) >= PAUSE_MIN_S


def test_chinese_prompts_are_read_as_chinese_not_spelled_in_english() -> None:
    """espeak-ng 1.51's ``zh`` voice reads its own pinyin as English words ("卡" → "ka three",
    phonemes marked ``(en)``); the Mandarin and Cantonese voices used must never do that."""
    hotline = Speech().hotline_words(DEFAULT_HOTLINES)
    text = "\n".join([*(t.zh for t in TEXTS.values()), hotline])
    for language in ("zh", "yue"):
        done = subprocess.run(
            [_espeak(), "-q", "-x", "-v", LANGUAGE_VOICES[language]],
            input=text.encode(),
            capture_output=True,
            timeout=30,
            check=True,
        )
        phonemes = done.stdout.decode()
        assert phonemes.strip() and "(en)" not in phonemes, (language, phonemes[:300])


def test_speech_is_slower_than_espeak_ngs_default_and_advice_is_never_spoken(
    tmp_path: Path,
) -> None:
    assert DEFAULT_SPEED_WPM < 175  # espeak-ng's default
    slow, brisk = tmp_path / "slow", tmp_path / "brisk"
    slow.mkdir()
    brisk.mkdir()
    with VoiceIndicator(wav_dir=slow) as voice:
        spoken = _say(voice, Reason.DENY_LOST).read_bytes()
    with VoiceIndicator(wav_dir=brisk, speed_wpm=None) as voice:
        fast = _say(voice, Reason.DENY_LOST, hotlines=False)
    reference = tmp_path / "reference.wav"
    # the prompt and the hotlines, read digit by digit; not the advice (where to unlist a card)
    ssml = (
        '<speak>卡已挂失，请到人工窗口<break time="700ms"/>'
        "咨询投诉请拨打 1 2 3 3 3 或 1 2 3 4 5</speak>"
    )
    argv = [_espeak(), "-v", "cmn-latn-pinyin", "-s", "140", "-w", str(reference), "-m"]
    subprocess.run([*argv, "--", ssml], check=True, timeout=30)
    assert spoken == reference.read_bytes()
    with VoiceIndicator(wav_dir=slow) as voice:
        alone = _say(voice, Reason.DENY_LOST, hotlines=False)
    assert _seconds(alone) > _seconds(fast) * 1.15


# -- voice on by default wherever there is a sound output --------------------------------------


def _aplay(folder: Path, stdout: str, stderr: str = "") -> str:
    """A stand-in for ``aplay`` (not installed here) that prints what the real one prints."""
    program = folder / "aplay"
    program.write_text(
        f"#!/bin/sh\ncat <<'OUT'\n{stdout}OUT\ncat >&2 <<'ERR'\n{stderr}ERR\n", encoding="utf-8"
    )
    program.chmod(0o755)
    return str(program)


def test_an_alsa_playback_device_or_a_listed_sound_card_is_a_sound_output(tmp_path: Path) -> None:
    snd = tmp_path / "snd"
    snd.mkdir()
    (snd / "controlC0").touch()
    (snd / "pcmC0D0c").touch()  # capture only: no output
    assert not audio_output_present(snd, None)
    assert not audio_output_present(tmp_path / "no-snd", None)
    (snd / "pcmC0D3p").touch()
    assert audio_output_present(snd, None)
    listed = _aplay(tmp_path, "**** List of PLAYBACK Hardware Devices ****\ncard 0: PCH [HDA]\n")
    assert audio_output_present(tmp_path / "no-snd", listed)
    (tmp_path / "aplay").unlink()
    none = _aplay(tmp_path, "", "aplay: device_list:274: no soundcards found...\n")
    assert not audio_output_present(tmp_path / "no-snd", none)


def test_voice_follows_an_explicit_setting_else_the_sound_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    speaker, mute = tmp_path / "speaker", tmp_path / "mute"
    speaker.mkdir()
    mute.mkdir()
    (speaker / "pcmC0D0p").touch()
    assert voice_enabled(True, snd_dir=mute, aplay=None)
    assert not voice_enabled(False, snd_dir=speaker, aplay=None)
    with caplog.at_level(logging.INFO, logger="terminal.compose"):
        assert voice_enabled(None, snd_dir=speaker, aplay=None)
        assert not voice_enabled(None, snd_dir=mute, aplay=None)
    assert "event=voice_default enabled=true why=audio_output_found" in caplog.text
    assert "event=voice_default enabled=false why=no_audio_output" in caplog.text


def test_indicators_speak_by_default_where_a_sound_output_exists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    speaker, mute = tmp_path / "speaker", tmp_path / "mute"
    speaker.mkdir()
    mute.mkdir()
    (speaker / "pcmC0D0p").touch()
    unset = Settings(console=False)  # [indicators] voice left out
    assert unset.voice is None
    transit = load_profile("transit")

    def kinds(settings: Settings, snd: Path, profile=transit) -> list[str]:
        built = build_indicators(settings, profile, snd_dir=snd)
        if built is None:
            return []
        built.close()
        return [i.kind for i in built.indicators]  # type: ignore[attr-defined]

    assert kinds(unset, speaker) == ["voice"]
    assert kinds(unset, mute) == []
    assert kinds(Settings(console=False, voice=False), speaker) == []
    assert kinds(Settings(console=False, voice=True), mute) == ["voice"]
    # on by default but espeak-ng missing: the terminal goes on without a voice, and says so
    broken = parse_profile(
        {
            "scenario": "gate",
            "catalogue_item": "0401",
            "fields": [],
            "gate": {},
            "voice": {"espeak": str(tmp_path / "espeak-ng")},
        },
        "broken.toml",
        "broken",
    )
    with caplog.at_level(logging.WARNING, logger="terminal.compose"):
        assert kinds(unset, speaker, broken) == []
    assert "event=voice_unavailable" in caplog.text
    with pytest.raises(IndicatorError, match=r"espeak-ng .* is not installed"):
        kinds(Settings(console=False, voice=True), speaker, broken)
