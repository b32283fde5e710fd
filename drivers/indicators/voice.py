"""Voice prompts, for people who cannot see the screen: service points must serve elderly and
disabled people, and card terminals must meet the accessibility requirements (Guangdong draft
§15, 2026 draft §6, Jiangxi §10; ``docs/service-point.md``).

Each outcome selects a clip: by its reason code first, then by its signal. A clip is a
prerecorded audio file, played by a player command (``aplay -q {file}`` by default), or text
spoken by espeak-ng in a language: ``zh`` Mandarin (the default), ``yue`` Cantonese or ``en``
English (:data:`LANGUAGE_VOICES`; any other espeak-ng voice name is passed through). Speech is
slow and clear by default (:data:`DEFAULT_SPEED_WPM`, below espeak-ng's 175). An indication that
carries hotlines (a refusal) is followed, after a pause of :data:`HOTLINE_PAUSE_MS`, by the
hotline numbers read digit by digit in the same language ("咨询投诉请拨打 1 2 3 3 3 或 1 2 3 4 5").

The player runs as a child process that :meth:`VoiceIndicator.indicate` does not wait for; the
next prompt cancels it, and a finished one is reaped at the next prompt, at
:meth:`VoiceIndicator.reap` and at :meth:`VoiceIndicator.close`. No thread is started.

:func:`audio_output_present` tells whether the machine has a sound output at all: voice prompts
are on by default wherever it has one.

Everything that can be checked is checked at construction: espeak-ng installed and knowing the
voices, the audio files readable, the player installed — not at the first tap.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from drivers.indicators.base import (
    REASON_CODE,
    Hotline,
    Indication,
    Indicator,
    IndicatorError,
    Signal,
)

log = logging.getLogger(__name__)

DEFAULT_PLAYER = ("aplay", "-q", "{file}")
DEFAULT_ESPEAK = "espeak-ng"
DEFAULT_VOICE = "zh"
#: language → espeak-ng voice. Mandarin is ``cmn-latn-pinyin``: espeak-ng 1.51's ``zh``/``cmn``
#: voice reads the tone numbers of its own pinyin dictionary as English words ("卡" comes out as
#: "ka three"; espeak-ng/espeak-ng#1370), which ``cmn-latn-pinyin`` does not do.
LANGUAGE_VOICES = {"zh": "cmn-latn-pinyin", "yue": "yue", "en": "en"}
DEFAULT_SPEED_WPM = 140  # slow and clear: espeak-ng's own default is 175
HOTLINE_PAUSE_MS = 700  # silence between the prompt and the hotlines
HOTLINE_WORDS = {  # "zh" also serves Cantonese: both read the same characters
    "zh": ("咨询投诉请拨打 ", " 或 "),
    "en": ("For help or complaints, call ", ", or "),
}
SND_DIR = Path("/dev/snd")
ALSA_PLAYBACK = "pcmC*D*p"  # ALSA playback devices: card C, device D, p for playback
FILE_PLACEHOLDER = "{file}"
CANCEL_GRACE_S = 0.2  # a player that ignores SIGTERM this long is killed
CHECK_TIMEOUT_S = 10.0
SPEED_MIN, SPEED_MAX = 80, 450  # espeak-ng -s, words per minute
CONFIG_KEYS = frozenset({"clips", "defaults", "player", "espeak", "voice", "speed_wpm"})
AUDIO_SUFFIXES = frozenset({".wav", ".ogg", ".oga", ".opus", ".mp3", ".flac"})
INSTALL_HINT = "install it (Debian: apt-get install espeak-ng)"


@dataclass(frozen=True, slots=True)
class AudioFile:
    """A prerecorded prompt, played by the player command.

    :param path: the audio file
    """

    path: Path


@dataclass(frozen=True, slots=True)
class Speech:
    """A prompt spoken by espeak-ng.

    :param text: what to say; ``None`` says the indication's own prompt (the English one for a
        voice whose name starts with ``en``, the Chinese one otherwise)
    :param voice: a language of :data:`LANGUAGE_VOICES` (``zh``, ``yue``, ``en``) or an
        espeak-ng voice name
    """

    text: str | None = None
    voice: str = DEFAULT_VOICE

    @property
    def english(self) -> bool:
        """Whether this clip speaks English."""
        return self.voice.startswith("en")

    @property
    def espeak_voice(self) -> str:
        """The espeak-ng voice that speaks this clip."""
        return LANGUAGE_VOICES.get(self.voice, self.voice)

    def words(self, indication: Indication) -> str:
        """What this clip says for an indication (the hotlines are not part of it).

        :param indication: the indication being shown
        """
        if self.text is not None:
            return self.text
        return indication.prompt_en if self.english else indication.prompt_zh

    def hotline_words(self, hotlines: Sequence[Hotline]) -> str:
        """The hotlines as this clip says them: numbers digit by digit, in its language.

        :param hotlines: the hotlines; empty gives an empty text
        """
        if not hotlines:
            return ""
        lead, joiner = HOTLINE_WORDS["en" if self.english else "zh"]
        # "1 2 3 3 3": a phone number is read digit by digit, never as "twelve thousand …"
        return lead + joiner.join(" ".join(h.digits) for h in hotlines)


Clip = AudioFile | Speech


class VoiceIndicator(Indicator):
    """Speak or play a prompt per outcome without holding up the decision.

    :param clips: reason code → clip; ``None`` keeps that outcome silent
    :param defaults: signal → clip for reason codes without their own; a signal left out says
        the indication's own prompt in ``voice``, ``None`` keeps it silent
    :param player: the command for audio files; ``{file}`` is replaced by the path (appended
        when absent)
    :param espeak: the espeak-ng program
    :param speed_wpm: espeak-ng's speed (``-s``), 80–450 words per minute; ``None``: espeak-ng's
        own default (175)
    :param voice: the language of the default clips: ``zh`` (Mandarin), ``yue`` (Cantonese),
        ``en``, or an espeak-ng voice name
    :param wav_dir: write each spoken prompt to ``<wav_dir>/<n>-<reason>.wav`` (``-w``) instead
        of playing it (for tests and for recording prompts)
    :raises IndicatorError: espeak-ng missing or without a configured voice while a clip needs
        it, an audio file that is not readable, a player that is not installed, a bad speed, a
        ``wav_dir`` that is not a directory, an empty text, an unknown signal, a key that is not
        a reason code, or a clip that is neither :class:`AudioFile` nor :class:`Speech`
    """

    kind = "voice"

    def __init__(
        self,
        clips: Mapping[str, Clip | None] | None = None,
        defaults: Mapping[Signal, Clip | None] | Mapping[str, Clip | None] | None = None,
        *,
        player: Sequence[str] = DEFAULT_PLAYER,
        espeak: str = DEFAULT_ESPEAK,
        speed_wpm: int | None = DEFAULT_SPEED_WPM,
        voice: str = DEFAULT_VOICE,
        wav_dir: Path | None = None,
    ) -> None:
        if not isinstance(voice, str) or not voice:
            raise IndicatorError(f"voice: expected a language or voice name, got {voice!r}")
        self.clips: dict[str, Clip | None] = dict(clips or {})
        self.defaults: dict[Signal, Clip | None] = {
            signal: Speech(None, voice) for signal in Signal
        }
        for key, clip in (defaults or {}).items():
            try:
                self.defaults[Signal(key)] = clip
            except ValueError as exc:
                raise IndicatorError(f"voice: unknown signal {key!r} in defaults") from exc
        for reason in self.clips:
            if not REASON_CODE.fullmatch(reason):
                raise IndicatorError(f"voice: {reason!r} is not a reason code")
        for clip in (*self.clips.values(), *self.defaults.values()):
            if clip is not None and not isinstance(clip, AudioFile | Speech):
                raise IndicatorError(f"voice: {clip!r} is neither an AudioFile nor a Speech")
        if speed_wpm is not None and not SPEED_MIN <= speed_wpm <= SPEED_MAX:
            raise IndicatorError(f"voice: speed {speed_wpm} is outside {SPEED_MIN}–{SPEED_MAX}")
        if wav_dir is not None and not Path(wav_dir).is_dir():
            raise IndicatorError(f"voice: {wav_dir} is not a directory")
        self.speed_wpm = speed_wpm
        self.wav_dir = Path(wav_dir) if wav_dir is not None else None
        self.last_wav: Path | None = None
        self._player_template = tuple(player)
        self._espeak: str | None = None
        self._player_program: str | None = None
        self._check(espeak)
        self._process: subprocess.Popen[bytes] | None = None
        self._count = 0
        self._closed = False
        self._warned_unspoken: set[str] = set()

    # -- configuration -----------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        mapping: Mapping[str, Any],
        *,
        base_dir: Path | None = None,
        wav_dir: Path | None = None,
        where: str = "voice",
    ) -> VoiceIndicator:
        """Build from a settings table (as parsed from TOML), so a profile selects its prompts.

        Reason codes map to clips either under ``clips`` or directly in the table (a profile's
        ``[voice]`` of ``reason = "text or file.wav"``); ``defaults`` maps ``accept``,
        ``refuse``, ``attention``. A clip is ``"文字"`` (spoken in ``voice``), a path ending in
        an audio suffix (``.wav``, ``.ogg``, ``.oga``, ``.opus``, ``.mp3``, ``.flac``; played),
        ``{ say = "文字", voice = "yue" }``, ``{ prompt = true, voice = "en" }`` (the
        indication's own prompt), ``{ file = "x.wav" }`` or ``false`` (silence). ``player`` (a
        list), ``espeak``, ``voice`` (the language of every spoken clip without its own: ``zh``
        by default, ``yue``, ``en``) and ``speed_wpm`` (default 140) are optional::

            [voice]
            speed_wpm = 140
            deny_lost = "prompts/card-lost.wav"
            expired = "卡已过期"
            [voice.defaults]
            accept = { prompt = true }
            refuse = "请咨询工作人员"

        :param mapping: the table
        :param base_dir: where relative audio file paths start (the profile's folder)
        :param wav_dir: see :class:`VoiceIndicator`
        :param where: the table's name, for error messages
        :raises IndicatorError: a clip of the wrong form, a reason given twice, and everything
            the constructor refuses
        """
        voice = mapping.get("voice", DEFAULT_VOICE)
        if not isinstance(voice, str) or not voice:
            raise IndicatorError(f"{where}.voice: expected a voice name, got {voice!r}")
        base = base_dir or Path()

        def table(name: str) -> dict[str, Clip | None]:
            raw = mapping.get(name, {})
            if not isinstance(raw, Mapping):
                raise IndicatorError(f"{where}.{name}: expected a table, got {raw!r}")
            return {
                str(key): _clip(value, f"{where}.{name}.{key}", voice, base)
                for key, value in raw.items()
            }

        clips = table("clips")
        for key, value in mapping.items():
            if key in CONFIG_KEYS:
                continue
            if key in clips:
                raise IndicatorError(f"{where}: {key} is given both directly and in clips")
            clips[key] = _clip(value, f"{where}.{key}", voice, base)
        player = mapping.get("player", DEFAULT_PLAYER)
        if (
            isinstance(player, str)
            or not isinstance(player, Sequence)
            or not all(isinstance(p, str) for p in player)
        ):
            raise IndicatorError(f"{where}.player: expected a list of strings, got {player!r}")
        espeak = mapping.get("espeak", DEFAULT_ESPEAK)
        speed = mapping.get("speed_wpm", DEFAULT_SPEED_WPM)
        if not isinstance(espeak, str) or not (speed is None or type(speed) is int):
            raise IndicatorError(f"{where}: espeak must be a string and speed_wpm an integer")
        return cls(
            clips,
            table("defaults"),
            player=player,
            espeak=espeak,
            speed_wpm=speed,
            voice=voice,
            wav_dir=wav_dir,
        )

    def _check(self, espeak: str) -> None:
        used = [
            *((f"reason {r}", c) for r, c in self.clips.items()),
            *((f"signal {s}", c) for s, c in self.defaults.items()),
        ]
        speech = [(name, c) for name, c in used if isinstance(c, Speech)]
        files = [(name, c) for name, c in used if isinstance(c, AudioFile)]
        for name, clip in speech:
            if clip.text is not None and not clip.text.strip():
                raise IndicatorError(f"voice: {name} has an empty text")
        if speech:
            self._espeak = shutil.which(espeak)
            if self._espeak is None:
                needing = ", ".join(name for name, _ in speech)
                raise IndicatorError(
                    f"voice: espeak-ng ({espeak!r}) is not installed, and these prompts need it: "
                    f"{needing}; {INSTALL_HINT}, or configure an audio file (or silence) for each"
                )
            for voice in sorted({clip.espeak_voice for _, clip in speech}):
                self._check_voice(voice)
        if files:
            if not self._player_template:
                raise IndicatorError("voice: the player command is empty")
            self._player_program = shutil.which(self._player_template[0])
            if self._player_program is None:
                raise IndicatorError(
                    f"voice: the audio player {self._player_template[0]!r} is not installed "
                    f"(needed by {files[0][0]})"
                )
        for name, audio in files:
            if not audio.path.is_file() or not os.access(audio.path, os.R_OK):
                raise IndicatorError(f"voice: {name}: audio file {audio.path} is not readable")

    def _check_voice(self, voice: str) -> None:
        assert self._espeak is not None
        try:
            # -q: no sound; fails when the voice does not exist (with some text to say: given
            # none, espeak-ng does not even load the voice)
            done = subprocess.run(
                [self._espeak, "-q", "-v", voice, "--", "a"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=CHECK_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IndicatorError(f"voice: cannot run espeak-ng: {exc}") from exc
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()
            raise IndicatorError(f"voice: espeak-ng has no voice {voice!r}: {detail}")

    # -- prompts -----------------------------------------------------------------------------

    def clip_for(self, indication: Indication) -> Clip | None:
        """The clip an indication selects: its reason code's, else its signal's.

        :param indication: the indication
        """
        if indication.reason_code in self.clips:
            return self.clips[indication.reason_code]
        return self.defaults.get(indication.signal)

    def indicate(self, indication: Indication) -> None:
        """Cancel the prompt still playing and start this indication's, without waiting for it.

        :param indication: what to say
        :raises IndicatorError: when the indicator is closed or the player cannot be started
        """
        if self._closed:
            raise IndicatorError("voice indicator is closed")
        self.cancel()
        clip = self.clip_for(indication)
        if clip is None:
            log.debug("event=voice_silent reason=%s", indication.reason_code)
            return
        argv = self._argv(clip, indication)
        if argv is None:
            log.debug("event=voice_nothing_to_say reason=%s", indication.reason_code)
            return
        if isinstance(clip, AudioFile) and indication.hotlines:
            self._warn_unspoken(indication.reason_code)
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except OSError as exc:
            raise IndicatorError(f"voice: cannot start {argv[0]}: {exc}") from exc
        log.info(
            "event=voice_prompt reason=%s clip=%s pid=%d",
            indication.reason_code,
            "file" if isinstance(clip, AudioFile) else "speech",
            self._process.pid,
        )

    def _argv(self, clip: Clip, indication: Indication) -> list[str] | None:
        if isinstance(clip, AudioFile):
            assert self._player_program is not None
            path = str(clip.path)
            rest = list(self._player_template[1:])
            if FILE_PLACEHOLDER in self._player_template:
                rest = [path if arg == FILE_PLACEHOLDER else arg for arg in rest]
            else:
                rest.append(path)
            return [self._player_program, *rest]
        words = clip.words(indication).strip()
        if not words:
            return None
        assert self._espeak is not None
        argv = [self._espeak, "-v", clip.espeak_voice]
        if self.speed_wpm is not None:
            argv += ["-s", str(self.speed_wpm)]
        if self.wav_dir is not None:
            self._count += 1
            self.last_wav = self.wav_dir / f"{self._count:06d}-{indication.reason_code}.wav"
            argv += ["-w", str(self.last_wav)]
        hotline = clip.hotline_words(indication.hotlines)
        if hotline:
            # SSML (-m) for the pause: a full stop alone is too short to set the numbers apart
            pause = f'<break time="{HOTLINE_PAUSE_MS}ms"/>'
            words = f"<speak>{escape(words)}{pause}{escape(hotline)}</speak>"
            argv.append("-m")
        return [*argv, "--", words]  # "--": a text starting with "-" is not an option

    def _warn_unspoken(self, reason: str) -> None:
        # a recorded clip cannot be followed without waiting for it: its recording must end
        # with the hotlines; say so once per reason code
        if reason not in self._warned_unspoken:
            self._warned_unspoken.add(reason)
            log.warning(
                "event=voice_hotline_in_recording reason=%s "
                "note=the recorded refusal must say the hotlines itself",
                reason,
            )

    # -- the player process ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The pid of the player started last, until it is reaped."""
        return self._process.pid if self._process is not None else None

    def reap(self) -> bool:
        """Reap the player if it finished (logging a failure); call it when idle.

        :returns: whether a prompt is still playing
        """
        process = self._process
        if process is None:
            return False
        if process.poll() is None:
            return True
        self._process = None
        self._report(process)
        return False

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the current prompt finished, and reap it.

        :param timeout: seconds, ``None`` for no limit
        :returns: the player's exit status, or ``None`` when nothing was playing
        :raises IndicatorError: when it is still playing after ``timeout``
        """
        process = self._process
        if process is None:
            return None
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise IndicatorError(f"voice: prompt still playing after {timeout:g} s") from exc
        self._process = None
        self._report(process)
        return status

    def cancel(self) -> None:
        """Stop the prompt that is playing (SIGTERM, then SIGKILL) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:
            self._report(process)
            return
        process.terminate()
        try:
            process.wait(CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.debug("event=voice_cancelled pid=%d", process.pid)

    def close(self) -> None:
        """Stop any prompt and refuse new ones; harmless when called twice."""
        self._closed = True
        self.cancel()

    @staticmethod
    def _report(process: subprocess.Popen[bytes]) -> None:
        if process.returncode != 0:
            program = Path(str(process.args[0] if isinstance(process.args, list) else "?")).name
            log.warning(
                "event=voice_player_failed program=%s status=%d", program, process.returncode
            )


def audio_output_present(snd_dir: Path = SND_DIR, aplay: str | None = "aplay") -> bool:
    """Whether this machine has a sound output: an ALSA playback device (``pcmC*D*p`` under
    ``/dev/snd``), else a sound card that ``aplay -l`` lists.

    :param snd_dir: where ALSA's device nodes are
    :param aplay: the ``aplay`` program, or ``None`` not to ask it
    """
    try:
        if any(snd_dir.glob(ALSA_PLAYBACK)):
            return True
    except OSError as exc:
        log.debug("event=audio_probe_failed dir=%s error=%s", snd_dir, exc)
    program = shutil.which(aplay) if aplay else None
    if program is None:
        return False
    try:
        done = subprocess.run(
            [program, "-l"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CHECK_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("event=audio_probe_failed program=%s error=%s", program, exc)
        return False
    # "card 0: PCH [HDA Intel PCH], device 0: …"; with none it says "no soundcards found"
    listed = done.stdout.decode(errors="replace").splitlines()
    return done.returncode == 0 and any(line.startswith("card ") for line in listed)


def _clip(value: object, where: str, voice: str, base: Path) -> Clip | None:
    """One clip of a settings table (see :meth:`VoiceIndicator.from_config`)."""
    if value is False:
        return None
    if isinstance(value, str):
        if Path(value).suffix.lower() in AUDIO_SUFFIXES and not any(c.isspace() for c in value):
            return AudioFile(base / value)
        return Speech(value, voice)
    if not isinstance(value, Mapping):
        raise IndicatorError(f"{where}: expected text, a table or false, got {value!r}")
    keys = set(value)
    kinds = keys & {"file", "say", "prompt"}
    if len(kinds) != 1 or keys - kinds - {"voice"}:
        raise IndicatorError(
            f"{where}: expected exactly one of file, say, prompt (plus voice), got {sorted(keys)}"
        )
    clip_voice = value.get("voice", voice)
    if not isinstance(clip_voice, str) or not clip_voice:
        raise IndicatorError(f"{where}.voice: expected a voice name, got {clip_voice!r}")
    if "file" in value:
        if "voice" in value or not isinstance(value["file"], str):
            raise IndicatorError(f"{where}: a file clip takes one path string and no voice")
        return AudioFile(base / value["file"])
    if "say" in value:
        if not isinstance(value["say"], str):
            raise IndicatorError(f"{where}.say: expected text, got {value['say']!r}")
        return Speech(value["say"], clip_voice)
    if value["prompt"] is not True:
        raise IndicatorError(f"{where}.prompt: only `prompt = true` is meaningful")
    return Speech(None, clip_voice)
