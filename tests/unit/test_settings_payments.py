"""``[payments]`` (issue 15): the transit PSAM's reader, the development SAM's key file, the
tearing window, flattened into :class:`config.settings.Settings`; a fare module needs the
journal key."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from apdu.errors import SscardError
from config.settings import SettingsError, parse_settings
from terminal.payments import open_fare_module


def test_the_payments_table_is_flattened() -> None:
    settings = parse_settings(
        {
            "payments": {
                "psam_reader": "Virtual PCD 00 01",
                "soft_sam_keys": "/etc/sscard/test-roots.toml",
                "tear_window_s": 60,
            }
        }
    )
    assert settings.payments_psam_reader == "Virtual PCD 00 01"
    assert settings.payments_soft_sam_keys == Path("/etc/sscard/test-roots.toml")
    assert settings.tear_window_s == 60.0


def test_without_the_table_no_fare_module_and_five_minutes() -> None:
    settings = parse_settings({})
    assert settings.payments_psam_reader is None and settings.payments_soft_sam_keys is None
    assert settings.tear_window_s == 300.0


@pytest.mark.parametrize("window", [0, -1, 86_401, float("inf")])
def test_a_tear_window_out_of_range_is_refused(window: float) -> None:
    with pytest.raises(SettingsError, match=r"payments\.tear_window_s"):
        parse_settings({"payments": {"tear_window_s": window}}, source="t.toml")


@pytest.mark.parametrize(
    "payments", [{"psam_reader": "Virtual PCD 00 01"}, {"soft_sam_keys": "/nonexistent.toml"}]
)
def test_a_fare_module_without_a_journal_key_is_refused_at_start(payments: dict) -> None:
    """A payment row is encrypted with the journal key: a daemon started without one refused
    every fare at the tap ("present the card again"); it now refuses to start, saying why."""
    settings = parse_settings({"payments": payments})
    with ExitStack() as stack, pytest.raises(SscardError, match=r"journal_key_file"):
        open_fare_module(settings, None, stack)
