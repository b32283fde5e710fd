"""What the person at the terminal is told: the indication and the indicator interface.

The pipeline decides; an :class:`Indicator` shows the decision — a line on a console, a gate,
LED and buzzer on a relay board, a voice prompt. Every outcome carries a stable reason code, a
short Chinese and English prompt and, for refusals, the service point's complaint hotlines
(:class:`Hotline`: 12333 and 12345 by default, per deployment; Guangdong draft §21, Guangzhou
§29, Jiangxi §5, ``docs/service-point.md``). :class:`IndicatorSet` fans one indication out to
several indicators and never lets one dead device (a buzzer) keep another (the gate) from
acting.

:class:`IndicatorError` extends the tree of :mod:`apdu.errors` under ``DriverError``.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from apdu.errors import DriverError
from apdu.resources import Closing

log = logging.getLogger(__name__)

# reason codes travel into file names and logs: keep them short and plain
REASON_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# a hotline is dialled: digits, optionally an area code joined by "-" (0791-12345)
HOTLINE_NUMBER = re.compile(r"[0-9]{3,12}(?:-[0-9]{3,12})?")
MAX_PURPOSE_CHARS = 40


class Signal(StrEnum):
    """The kind of outcome an indication announces."""

    ACCEPT = "accept"
    REFUSE = "refuse"
    ATTENTION = "attention"  # "present the card again", "enter PIN", "journal nearly full"


class IndicatorError(DriverError):
    """An indicator could not show an indication, or could not be set up.

    :param message: what failed, without personal data
    :param command: the device command that failed (e.g. ``GATE OPEN 3000``), if there was one
    :param failures: for :class:`IndicatorSet`, ``(kind, error)`` of each indicator that failed
    """

    def __init__(
        self,
        message: str,
        *,
        command: str | None = None,
        failures: tuple[tuple[str, Exception], ...] = (),
    ) -> None:
        super().__init__(message)
        self.command = command
        self.failures = failures


@dataclass(frozen=True, slots=True)
class Hotline:
    """A telephone line where the holder gets help and makes complaints.

    :param number: what to dial, e.g. ``12333`` (digits; an area code may be joined by ``-``)
    :param purpose_zh: what the line is, e.g. ``人社服务热线``
    :param purpose_en: the same in English, e.g. ``social security hotline``
    :raises ValueError: a number that is not 3–12 digits (with an optional ``-`` part), a
        purpose that is empty, longer than 40 characters or not one line
    """

    number: str
    purpose_zh: str
    purpose_en: str

    def __post_init__(self) -> None:
        if not isinstance(self.number, str) or not HOTLINE_NUMBER.fullmatch(self.number):
            raise ValueError(f"hotline number {self.number!r} is not 3–12 digits")
        for name in ("purpose_zh", "purpose_en"):
            value = getattr(self, name)
            if (
                not isinstance(value, str)
                or not value.strip()
                or len(value) > MAX_PURPOSE_CHARS
                or not value.isprintable()
            ):
                raise ValueError(
                    f"hotline {self.number} {name} must be one line of 1–40 characters"
                )

    @property
    def digits(self) -> str:
        """The digits to dial, without separators."""
        return self.number.replace("-", "")


def hotline_text(hotlines: tuple[Hotline, ...]) -> str | None:
    """The hotlines as one line to print, Chinese then English; ``None`` for none.

    :param hotlines: the hotlines, in the order to show them
    """
    if not hotlines:
        return None
    zh = "，".join(f"{h.number} {h.purpose_zh}" for h in hotlines)
    en = ", ".join(f"{h.number} {h.purpose_en}" for h in hotlines)
    return f"咨询投诉：{zh} / Help or complaints: {en}"


@dataclass(frozen=True, slots=True)
class Indication:
    """One decision as the person at the terminal should perceive it.

    :param signal: accept, refuse or attention
    :param reason_code: the pipeline's stable code, e.g. ``ok``, ``deny_listed``, ``expired``
    :param prompt_zh: a short Chinese prompt ending with what to do next, e.g.
        ``卡已挂失，请到人工窗口``; spoken
    :param prompt_en: the same prompt in English
    :param hotlines: for refusals, the service point's complaint hotlines; printed and spoken
    :param open_gate: whether a gate should let the person through; only an accept may
    :param advice_zh: longer advice that is shown but not spoken (too long to hear at a gate)
    :param advice_en: the same advice in English
    :raises ValueError: a signal that is not a :class:`Signal`; a reason code that is empty,
        longer than 64 characters or not made of ASCII letters, digits, ``_``, ``.`` and ``-``;
        hotlines that are not a tuple of :class:`Hotline`; ``open_gate`` on a refusal or an
        attention
    """

    signal: Signal
    reason_code: str
    prompt_zh: str
    prompt_en: str
    hotlines: tuple[Hotline, ...] = ()
    open_gate: bool = False
    advice_zh: str = ""
    advice_en: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.signal, Signal):
            raise ValueError(f"signal must be a Signal, got {self.signal!r}")
        if not isinstance(self.hotlines, tuple) or not all(
            isinstance(h, Hotline) for h in self.hotlines
        ):
            raise ValueError(f"hotlines must be a tuple of Hotline, got {self.hotlines!r}")
        if not REASON_CODE.fullmatch(self.reason_code):
            raise ValueError(
                f"reason code {self.reason_code!r} is not of the form {REASON_CODE.pattern}"
            )
        if self.open_gate and self.signal is not Signal.ACCEPT:
            raise ValueError(f"only an accept opens the gate, not {self.signal}")

    @property
    def hotline(self) -> str | None:
        """The hotlines as one printable line (:func:`hotline_text`), ``None`` without any."""
        return hotline_text(self.hotlines)


class Indicator(Closing, ABC):
    """One device that tells the person at the terminal what was decided.

    Indicators are blocking and start no threads; a slow device bounds its own wait (a serial
    board by its answer timeout, a voice prompt by not waiting at all).
    """

    #: the back-end's name in the registry and in log lines
    kind: ClassVar[str] = "indicator"

    @abstractmethod
    def indicate(self, indication: Indication) -> None:
        """Show one indication.

        :param indication: what to show
        :raises IndicatorError: when the device could not show it
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device; harmless when called twice.

        :raises IndicatorError: when the device could not be released cleanly
        """


class IndicatorSet(Indicator):
    """Fan one indication out to several indicators, trying every one of them.

    A failing indicator is logged (``event=indicator_failed``) and collected; only after all of
    them were tried does :meth:`indicate` raise, so a dead buzzer never keeps the gate shut.

    :param indicators: the indicators, tried in this order
    """

    kind = "set"

    def __init__(self, indicators: Iterable[Indicator]) -> None:
        self.indicators = tuple(indicators)

    def indicate(self, indication: Indication) -> None:
        """Show the indication on every indicator.

        :param indication: what to show
        :raises IndicatorError: after all were tried, when one or more failed; ``failures``
            holds ``(kind, error)`` for each
        """
        self._each("indicate", lambda ind: ind.indicate(indication))

    def close(self) -> None:
        """Close every indicator.

        :raises IndicatorError: after all were closed, when one or more failed to close
        """
        self._each("close", lambda ind: ind.close())

    def _each(self, action: str, call: Callable[[Indicator], None]) -> None:
        failures: list[tuple[str, Exception]] = []
        for indicator in self.indicators:
            try:
                call(indicator)
            # deliberately broad: whatever breaks one device must not stop the next one
            except Exception as exc:
                log.warning(
                    "event=indicator_failed kind=%s action=%s error=%r",
                    indicator.kind,
                    action,
                    f"{type(exc).__name__}: {exc}",
                    exc_info=not isinstance(exc, IndicatorError),
                )
                failures.append((indicator.kind, exc))
        if failures:
            listing = "; ".join(f"{kind}: {exc}" for kind, exc in failures)
            raise IndicatorError(
                f"{len(failures)} of {len(self.indicators)} indicators failed to {action}: "
                f"{listing}",
                command=next(
                    (
                        e.command
                        for _k, e in failures
                        if isinstance(e, IndicatorError) and e.command
                    ),
                    None,
                ),
                failures=tuple(failures),
            ) from failures[0][1]
