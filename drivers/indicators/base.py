"""What the person at the terminal is told: the indication and the indicator interface.

The pipeline decides; an :class:`Indicator` shows the decision — a line on a console, a gate,
LED and buzzer on a relay board, a voice prompt. Every outcome carries a stable reason code, a
short Chinese and English prompt and, for refusals, the hotline text (DESIGN.md "A tap, end to
end"). :class:`IndicatorSet` fans one indication out to several indicators and never lets one
dead device (a buzzer) keep another (the gate) from acting.

:class:`IndicatorError` extends the tree of :mod:`apdu.errors` under ``DriverError``.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import ClassVar

from apdu.errors import DriverError

log = logging.getLogger(__name__)

# reason codes travel into file names and logs: keep them short and plain
REASON_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


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
class Indication:
    """One decision as the person at the terminal should perceive it.

    :param signal: accept, refuse or attention
    :param reason_code: the pipeline's stable code, e.g. ``ok``, ``deny_listed``, ``expired``
    :param prompt_zh: a short Chinese prompt, e.g. ``卡已挂失``
    :param prompt_en: the same prompt in English
    :param hotline: for refusals, e.g. ``请咨询 12333 / call 12333``
    :param open_gate: whether a gate should let the person through; only an accept may
    :raises ValueError: a signal that is not a :class:`Signal`; a reason code that is empty,
        longer than 64 characters or not made of ASCII letters, digits, ``_``, ``.`` and ``-``;
        ``open_gate`` on a refusal or an attention
    """

    signal: Signal
    reason_code: str
    prompt_zh: str
    prompt_en: str
    hotline: str | None = None
    open_gate: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.signal, Signal):
            raise ValueError(f"signal must be a Signal, got {self.signal!r}")
        if not REASON_CODE.fullmatch(self.reason_code):
            raise ValueError(
                f"reason code {self.reason_code!r} is not of the form {REASON_CODE.pattern}"
            )
        if self.open_gate and self.signal is not Signal.ACCEPT:
            raise ValueError(f"only an accept opens the gate, not {self.signal}")


class Indicator(ABC):
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

    def __enter__(self) -> Indicator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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
