"""The console indicator: one line of text per indication, for the demo, tests and operators.

A line reads ``ACCEPT     请通行 / Please go ahead  [gate]  (ok)``: the signal, the Chinese
and the English prompt, the advice that is shown but not spoken, the complaint hotlines on
refusals (every one of them, with what it is for), whether the gate opens, and the reason code.
Colour (ANSI) is used when the stream is a terminal and ``NO_COLOR`` is not set.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from drivers.indicators.base import Indication, Indicator, IndicatorError, Signal

ANSI_RESET = "\x1b[0m"
ANSI_COLOURS = {
    Signal.ACCEPT: "\x1b[1;32m",  # bold green
    Signal.REFUSE: "\x1b[1;31m",  # bold red
    Signal.ATTENTION: "\x1b[1;33m",  # bold yellow
}
SIGNAL_WIDTH = 9  # len("ATTENTION")


def _wants_colour(stream: TextIO) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colour off
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (OSError, ValueError):  # a closed stream: writing will say so
        return False


class ConsoleIndicator(Indicator):
    """Write one line per indication to a text stream.

    :param stream: where to write; the indicator does not close it
    :param colour: ``True``/``False`` to force ANSI colour on or off, ``None`` for automatic
        (on for a terminal, off when ``NO_COLOR`` is set)
    """

    kind = "console"

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.colour = _wants_colour(self.stream) if colour is None else colour
        self._closed = False

    def line(self, indication: Indication) -> str:
        """The line for an indication, without the line end.

        :param indication: what to show
        """
        label = indication.signal.upper().ljust(SIGNAL_WIDTH)
        if self.colour:
            label = f"{ANSI_COLOURS[indication.signal]}{label}{ANSI_RESET}"
        parts = [f"{label}  {indication.prompt_zh} / {indication.prompt_en}"]
        if indication.advice_zh or indication.advice_en:
            advice = " / ".join(a for a in (indication.advice_zh, indication.advice_en) if a)
            parts.append(f"  ({advice})")
        if indication.hotline:
            parts.append(f"  — {indication.hotline}")
        if indication.open_gate:
            parts.append("  [gate]")
        parts.append(f"  ({indication.reason_code})")
        return "".join(parts)

    def indicate(self, indication: Indication) -> None:
        """Write the indication's line and flush.

        :param indication: what to show
        :raises IndicatorError: when the indicator is closed or the stream cannot be written
        """
        if self._closed:
            raise IndicatorError("console indicator is closed")
        try:
            self.stream.write(self.line(indication) + "\n")
            self.stream.flush()
        # a closed stream raises ValueError, a full disk or a broken pipe OSError
        except (OSError, ValueError) as exc:
            raise IndicatorError(f"console: cannot write: {exc}") from exc

    def close(self) -> None:
        """Stop writing; the stream stays open (it belongs to the caller)."""
        self._closed = True
