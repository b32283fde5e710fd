"""The line protocol of indicator boards (relay, buzzer, gate, LEDs): codec and command set.

Normative text: ``docs/indicator-protocol.md``. In short, the terminal sends
``<tag> <COMMAND>`` CR LF, the board answers ``<tag> OK`` or ``<tag> ERR <text>`` CR LF, echoing
the tag, so a late answer is never taken for the answer to a later command. Only printable
ASCII travels: the command set has no free text, so no prompt or personal data can reach the
wire. Both sides use this module: :mod:`drivers.indicators.serial_board` (the terminal) and
:mod:`drivers.virtual.gate` (the emulated board).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from apdu.errors import ProtocolError
from drivers.indicators.base import Indication, Signal

EOL = b"\r\n"
MAX_LINE = 64  # bytes of a line, CR LF included (protocol §2)
MAX_ERR_TEXT = 48  # characters of an ERR text (protocol §3)
TAG_MIN = 1
TAG_MAX = 9999
NOTICE_TAG = 0  # a board's answer to a line whose tag it could not read (protocol §3)
GATE_MS_MIN = 100
GATE_MS_MAX = 60000
LED_MS_MIN = 1
LED_MS_MAX = 60000

PING = "PING"
# a command: upper-case words and decimal numbers separated by single spaces (protocol §4)
COMMAND = re.compile(r"[A-Z]+(?: [A-Z0-9]+)*")
_TAG = re.compile(r"0|[1-9][0-9]{0,3}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


class LineFormatError(ProtocolError):
    """A protocol line that does not follow ``docs/indicator-protocol.md``."""


class Led(StrEnum):
    """The LED colours of ``LED <colour> <ms>``."""

    GREEN = "GREEN"  # accepted: the card or code may pass
    RED = "RED"  # refused
    AMBER = "AMBER"  # attention: the holder or the operator must act
    OFF = "OFF"  # nothing lit (``LED OFF`` takes no duration)


class Beep(StrEnum):
    """The buzzer patterns of ``BEEP <pattern>``."""

    OK = "OK"  # one short beep: accepted
    ERR = "ERR"  # three short beeps: refused
    ATTN = "ATTN"  # two short beeps: attention


@dataclass(frozen=True, slots=True)
class Answer:
    """A board's answer line.

    :param tag: the tag of the command it answers (``0``: a line the board could not read)
    :param ok: ``True`` for ``OK``, ``False`` for ``ERR``
    :param text: the ERR text, empty for ``OK``
    """

    tag: int
    ok: bool
    text: str = ""


def next_tag(tag: int) -> int:
    """The tag after ``tag``: 1, 2, … 9999, then 1 again (0 is never sent).

    :param tag: the last tag sent, or 0 before the first
    """
    return TAG_MIN if tag >= TAG_MAX else tag + 1


def _ascii_line(line: bytes) -> str:
    if len(line) + len(EOL) > MAX_LINE:
        raise LineFormatError(f"line of {len(line)} bytes exceeds {MAX_LINE - len(EOL)}")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError as exc:
        raise LineFormatError("line is not ASCII") from exc
    if not _PRINTABLE.fullmatch(text):
        raise LineFormatError("line holds control characters")
    return text


def _split_tag(text: str) -> tuple[int, str]:
    tag, sep, rest = text.partition(" ")
    if not sep or not _TAG.fullmatch(tag):
        raise LineFormatError(f"line does not start with a tag: {text[:16]!r}")
    return int(tag), rest


def encode_command(tag: int, command: str) -> bytes:
    """The wire form of one command line.

    :param tag: 1–9999
    :param command: e.g. ``GATE OPEN 3000``
    :raises LineFormatError: a tag out of range, or a command that is not upper-case words and
        numbers or does not fit a line
    """
    if not TAG_MIN <= tag <= TAG_MAX:
        raise LineFormatError(f"tag {tag} is outside {TAG_MIN}–{TAG_MAX}")
    if not COMMAND.fullmatch(command):
        raise LineFormatError(f"not a protocol command: {command!r}")
    line = f"{tag} {command}".encode("ascii")
    _ascii_line(line)
    return line + EOL


def decode_command(line: bytes) -> tuple[int, str]:
    """Split a received command line (without CR LF) into its tag and command (board side).

    :param line: the line, CR LF removed
    :raises LineFormatError: a line that is not ASCII, too long, has no tag or no command
    """
    tag, command = _split_tag(_ascii_line(line))
    if not COMMAND.fullmatch(command):
        raise LineFormatError(f"not a protocol command: {command[:16]!r}")
    return tag, command


def encode_answer(tag: int, error: str | None = None) -> bytes:
    """The wire form of an answer line (board side).

    :param tag: the tag of the command answered, or 0
    :param error: ``None`` for ``OK``, else the ERR text (cut to 48 printable characters)
    :raises LineFormatError: a tag out of range
    """
    if not NOTICE_TAG <= tag <= TAG_MAX:
        raise LineFormatError(f"tag {tag} is outside {NOTICE_TAG}–{TAG_MAX}")
    if error is None:
        return f"{tag} OK".encode("ascii") + EOL
    text = "".join(c if " " <= c <= "~" else "?" for c in error)[:MAX_ERR_TEXT]
    return f"{tag} ERR {text}".rstrip().encode("ascii") + EOL


def decode_answer(line: bytes) -> Answer:
    """Parse a board's answer line (without CR LF).

    :param line: the line, CR LF removed
    :raises LineFormatError: a line that is not ASCII, too long, has no tag, or is neither
        ``OK`` nor ``ERR [text]``
    """
    tag, rest = _split_tag(_ascii_line(line))
    if rest == "OK":
        return Answer(tag, True)
    if rest == "ERR":
        return Answer(tag, False)
    if rest.startswith("ERR ") and len(rest) - 4 <= MAX_ERR_TEXT:
        return Answer(tag, False, rest[4:])
    raise LineFormatError(f"answer is neither OK nor ERR: {rest[:16]!r}")


def gate_open(ms: int) -> str:
    """``GATE OPEN <ms>``: release the gate for ``ms`` milliseconds.

    :param ms: 100–60000
    :raises ValueError: a duration out of range
    """
    if not GATE_MS_MIN <= ms <= GATE_MS_MAX:
        raise ValueError(f"gate open time {ms} ms is outside {GATE_MS_MIN}–{GATE_MS_MAX}")
    return f"GATE OPEN {ms}"


def led(colour: Led, ms: int) -> str:
    """``LED <colour> <ms>``, or ``LED OFF``.

    :param colour: the colour
    :param ms: how long it stays lit, 1–60000 (ignored for ``OFF``)
    :raises ValueError: a duration out of range
    """
    if colour is Led.OFF:
        return "LED OFF"
    if not LED_MS_MIN <= ms <= LED_MS_MAX:
        raise ValueError(f"LED time {ms} ms is outside {LED_MS_MIN}–{LED_MS_MAX}")
    return f"LED {colour} {ms}"


def beep(pattern: Beep) -> str:
    """``BEEP <pattern>``.

    :param pattern: OK, ERR or ATTN
    """
    return f"BEEP {pattern}"


def commands_for(indication: Indication, gate_open_ms: int, led_ms: int) -> list[str]:
    """The commands that show an indication, most important first (protocol §5).

    The gate comes first: if the board stops answering halfway, the person still gets through.

    :param indication: what to show
    :param gate_open_ms: how long an accepting gate stays released
    :param led_ms: how long the LED stays lit
    :raises ValueError: a duration out of range
    """
    if indication.signal is Signal.ACCEPT:
        commands = [gate_open(gate_open_ms)] if indication.open_gate else []
        return [*commands, led(Led.GREEN, led_ms), beep(Beep.OK)]
    if indication.signal is Signal.REFUSE:
        return [led(Led.RED, led_ms), beep(Beep.ERR)]
    return [led(Led.AMBER, led_ms), beep(Beep.ATTN)]
