"""The one registry helper every device kind uses (drivers/registry.py)."""

from __future__ import annotations

import io
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from apdu.errors import ReaderUnavailable, SscardError
from drivers import indicators, scanners
from drivers.indicators import ConsoleIndicator, IndicatorError
from drivers.registry import Registry
from drivers.scanners import ScannerError, StdinScanner

ROOT = Path(__file__).resolve().parents[2]


class ThingError(SscardError):
    """The error class of the test's own device kind."""


def things() -> Registry[Fraction]:
    return Registry(
        "thing",
        ThingError,
        {"fraction": "fractions:Fraction", "ghost": "no_such_module_for_sscard:Ghost"},
    )


def test_a_name_loads_its_class_and_the_registry_lists_its_names() -> None:
    registry = things()
    assert registry.load("fraction") is Fraction
    assert sorted(registry) == ["fraction", "ghost"] and len(registry) == 2
    assert "fraction" in registry and "decimal" not in registry
    assert registry["fraction"] == "fractions:Fraction"


def test_an_unknown_name_is_the_kinds_error_listing_the_known_names() -> None:
    with pytest.raises(ThingError, match=r"^unknown thing 'decimal'; known: fraction, ghost$"):
        things().load("decimal")


def test_a_back_end_that_cannot_be_imported_is_the_kinds_error_chained() -> None:
    with pytest.raises(ThingError, match="thing 'ghost' cannot be loaded") as raised:
        things().load("ghost")
    assert isinstance(raised.value.__cause__, ImportError)


def test_create_takes_a_name_or_a_settings_table() -> None:
    registry = things()
    assert registry.create("fraction") == Fraction(0)
    assert registry.create({"backend": "fraction", "numerator": 3, "denominator": 4}) == Fraction(
        3, 4
    )
    # the spec's own keys override the caller's defaults
    assert registry.create({"backend": "fraction", "numerator": 5}, numerator=1) == 5
    assert registry.create("fraction", numerator=2) == 2


def test_a_spec_without_a_name_or_with_a_wrong_argument_is_the_kinds_error() -> None:
    with pytest.raises(ThingError, match="a thing needs a 'backend' name"):
        things().create({"numerator": 1})
    with pytest.raises(ThingError, match=r"thing 'fraction': .*colour") as raised:
        things().create({"backend": "fraction", "colour": "red"})
    assert isinstance(raised.value.__cause__, TypeError)


def test_register_adds_a_back_end_and_refuses_a_target_that_names_no_class() -> None:
    registry = things()
    registry.register("number", "numbers:Number")
    assert "number" in registry
    for bad in ("numbers", ":Number", "numbers:", "numbers:not a name"):
        with pytest.raises(ValueError, match="is not 'module:Class'"):
            registry.register("bad", bad)
    assert "bad" not in registry


def test_a_class_name_finds_its_back_end() -> None:
    registry = things()
    assert registry.by_class_name("Fraction") is Fraction
    assert registry.by_class_name("Decimal") is None


def test_scanners_and_indicators_share_the_helper_with_their_own_error_classes() -> None:
    assert isinstance(scanners.BACKENDS, Registry) and scanners.BACKENDS.error is ScannerError
    assert isinstance(indicators.BACKENDS, Registry)
    assert indicators.BACKENDS.error is IndicatorError
    stream = io.StringIO()
    console = indicators.BACKENDS.create({"backend": "console", "stream": stream})
    assert isinstance(console, ConsoleIndicator) and console.stream is stream
    assert isinstance(scanners.BACKENDS.create("stdin", stream=io.StringIO()), StdinScanner)
    with pytest.raises(IndicatorError, match="unknown indicator 'buzzer'; known: console"):
        indicators.BACKENDS.create("buzzer")


def test_readers_have_a_registry_too() -> None:
    from drivers.readers import BACKENDS as READERS

    assert sorted(READERS) == ["pcsc", "virtual"] and READERS.error is ReaderUnavailable
    with pytest.raises(ReaderUnavailable, match="unknown reader 'usb'; known: pcsc, virtual"):
        READERS.load("usb")


def test_importing_the_registries_loads_no_back_end_library() -> None:
    heavy = ["smartcard", "serial", "cv2"]
    code = (
        "import sys, drivers.readers, drivers.scanners, drivers.indicators;"
        f" print([m for m in {heavy!r} if m in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == "[]"
