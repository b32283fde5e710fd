"""Indicators: how the terminal tells a person what was decided — console line, relay board
(gate, LEDs, buzzer) on a serial line, voice prompts.

The interface lives in :mod:`drivers.indicators.base`. The back-ends are imported on first use
(the serial one needs pyserial), by name through :func:`backend` or as attributes of this
package::

    from drivers.indicators import IndicatorSet, backend

    gate = backend("serial")("/dev/ttyUSB0", gate_open_ms=2000)
    indicators = IndicatorSet([gate, backend("console")()])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from drivers.indicators.base import (
    Hotline,
    Indication,
    Indicator,
    IndicatorError,
    IndicatorSet,
    Signal,
)

if TYPE_CHECKING:
    from drivers.indicators.console import ConsoleIndicator
    from drivers.indicators.serial_board import SerialIndicator
    from drivers.indicators.voice import VoiceIndicator

#: back-end name → ``module:class``
BACKENDS: dict[str, str] = {
    "console": "drivers.indicators.console:ConsoleIndicator",
    "serial": "drivers.indicators.serial_board:SerialIndicator",
    "voice": "drivers.indicators.voice:VoiceIndicator",
}
_BY_CLASS = {target.partition(":")[2]: name for name, target in BACKENDS.items()}

__all__ = [
    "BACKENDS",
    "ConsoleIndicator",
    "Hotline",
    "Indication",
    "Indicator",
    "IndicatorError",
    "IndicatorSet",
    "SerialIndicator",
    "Signal",
    "VoiceIndicator",
    "backend",
]


def backend(name: str) -> type[Indicator]:
    """The indicator class registered under ``name``, imported on first use.

    :param name: ``console``, ``serial`` or ``voice``
    :raises IndicatorError: an unknown name, or a back-end whose module cannot be imported
    """
    try:
        target = BACKENDS[name]
    except KeyError:
        raise IndicatorError(
            f"unknown indicator {name!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise IndicatorError(f"indicator {name!r} cannot be loaded: {exc}") from exc
    cls: type[Indicator] = getattr(module, class_name)
    return cls


def __getattr__(attribute: str) -> Any:
    """``drivers.indicators.SerialIndicator`` and friends, imported on first use (PEP 562)."""
    if attribute in _BY_CLASS:
        return backend(_BY_CLASS[attribute])
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
