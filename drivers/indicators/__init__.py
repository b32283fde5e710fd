"""Indicators: how the terminal tells a person what was decided — console line, relay board
(gate, LEDs, buzzer) on a serial line, voice prompts.

The interface lives in :mod:`drivers.indicators.base`. The back-ends are imported on first use
(the serial one needs pyserial), by name through :func:`backend` (the
:class:`drivers.registry.Registry` :data:`BACKENDS`) or as attributes of this package::

    from drivers.indicators import IndicatorSet, backend

    gate = backend("serial")("/dev/ttyUSB0", gate_open_ms=2000)
    indicators = IndicatorSet([gate, backend("console")()])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.indicators.base import (
    Hotline,
    Indication,
    Indicator,
    IndicatorError,
    IndicatorSet,
    Signal,
)
from drivers.registry import Registry

if TYPE_CHECKING:
    from drivers.indicators.console import ConsoleIndicator
    from drivers.indicators.serial_board import SerialIndicator
    from drivers.indicators.voice import VoiceIndicator

#: back-end name → ``module:class``
BACKENDS: Registry[Indicator] = Registry(
    "indicator",
    IndicatorError,
    {
        "console": "drivers.indicators.console:ConsoleIndicator",
        "serial": "drivers.indicators.serial_board:SerialIndicator",
        "voice": "drivers.indicators.voice:VoiceIndicator",
    },
)

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
    return BACKENDS.load(name)


def __getattr__(attribute: str) -> Any:
    """``drivers.indicators.SerialIndicator`` and friends, imported on first use (PEP 562)."""
    cls = BACKENDS.by_class_name(attribute)
    if cls is not None:
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
