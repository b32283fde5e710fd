"""The one table from errors to national codes: every failure gets the code App A gives it."""

from __future__ import annotations

import pytest

from apdu.errors import (
    ApduError,
    ApplicationLocked,
    CardBlocked,
    CardNotGenuine,
    CardRemoved,
    ExternalAuthFailed,
    PinBlocked,
    ReaderTimeout,
    ReaderUnavailable,
    RecordFormatError,
    SecurityNotSatisfied,
    WrongPin,
)
from apdu.pin import PinFormatError
from apdu.sam import (
    AlgorithmNotSupported,
    KeyLevelInsufficient,
    NoSecurityModule,
    RkssseMissing,
    SecurityModuleRefused,
    SecurityModuleUnavailable,
)
from config.settings import SettingsError
from offline_store import StoreError
from terminal.outcomes import classify, error_line, national_code, specific_code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NoSecurityModule("no PSAM"), -2201),
        (AlgorithmNotSupported("no SM4"), -2202),
        (RkssseMissing("no RKSSSE"), -2203),
        (KeyLevelInsufficient("levels"), -24),
        (SecurityModuleUnavailable("gone"), -11),
        (SecurityModuleRefused("BF DE", 0x6A88), -27272),
        (CardNotGenuine(), -21),
        (WrongPin(2), -51),
        (PinBlocked(), -52),
        (PinFormatError("short"), -33),
        (ApplicationLocked(), -37635),
        (CardBlocked(), -27265),
        (SecurityNotSatisfied("EF06"), -27010),
        (ExternalAuthFailed(0x63C2), -25538),
        (ExternalAuthFailed(0x6983), -27011),
        (ReaderTimeout("no card"), -2),
        (CardRemoved("gone"), -4),
        (ReaderUnavailable("no pcscd"), -11),
        (ApduError(command=bytes.fromhex("00B2010400"), sw=0x6A83), -27267),
        (RecordFormatError("卡识别码 is not 16 bytes"), -20),
        (RecordFormatError("EF05 record 07: tag 08"), -15),
    ],
)
def test_every_error_has_its_national_code(error, code: int) -> None:
    assert national_code(error) == code
    failure = classify(error)
    assert failure.code == code and str(error) in failure.reason


def test_a_refused_terminal_key_is_not_a_pin_error() -> None:
    failure = classify(ExternalAuthFailed(0x63C1))
    assert failure.code != -51 and "PIN" not in failure.reason
    assert "1 tries left" in failure.reason
    assert ExternalAuthFailed(0x6983).tries_left == 0


def test_a_refused_psam_command_names_the_step_and_the_status_word() -> None:
    error = SecurityModuleRefused("BF DE (deliver session key)", 0x6A88)
    assert error.sw == 0x6A88
    assert "BF DE" in str(error) and "6A88" in str(error)


def test_the_cli_line_carries_a_national_code_only_where_one_applies() -> None:
    """Issue 10: ``sscard: <code>: <reason>`` for a card, reader or module; a settings file or
    the store has no national code (not -13, "command not supported")."""
    assert error_line(ReaderUnavailable("list readers: no service")) == (
        "sscard: -11: 读卡器连接错误 / reader connection error: list readers: no service"
    )
    assert specific_code(SettingsError("x")) is None and national_code(SettingsError("x")) == -13
    assert error_line(SettingsError("t.toml: not valid TOML")) == "sscard: t.toml: not valid TOML"
    assert error_line(StoreError("store.db is locked")) == "sscard: store.db is locked"
