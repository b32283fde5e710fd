"""The one table from errors to answers: every failure gets the national code App A gives it,
the refusal a tap records and the exit status the CLI returns; every error of the project has a
row or is one of the terminal's own (the documented default)."""

from __future__ import annotations

import importlib
import pkgutil
import signal

import pytest

from apdu.crypto import Algorithm, UnsupportedAlgorithm
from apdu.errors import (
    ApduError,
    ApplicationLocked,
    AtrError,
    CardBlocked,
    CardIdFormatError,
    CardNotGenuine,
    CardRemoved,
    ExternalAuthFailed,
    PinBlocked,
    ReaderTimeout,
    ReaderUnavailable,
    RecordFormatError,
    SecurityNotSatisfied,
    SscardError,
    TlvError,
    WrongPin,
)
from apdu.payment import (
    CounterExhausted,
    InsufficientBalance,
    KeyVersionUnsupported,
    Mac1Invalid,
    NoPurchasePending,
    ProofUnavailable,
    PurchaseTorn,
    PurseLocked,
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
from apdu.ssc import parse_issuer
from config.settings import SettingsError
from ecard.errors import QrReason, QrRefused
from offline_store import StoreError
from platform_server import cli_support
from sync import reports
from terminal.outcomes import (
    DEFAULT,
    DEFAULT_ERRORS,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    OUTCOMES,
    QR_REASONS,
    classify,
    error_line,
    national_code,
    outcome,
    row_for,
    specific_code,
)
from terminal.reasons import Reason


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
        (CardIdFormatError("EF05 record 01 (卡识别码) must hold 16 bytes"), -20),
        (RecordFormatError("卡识别码 named in a message is no card-id error"), -15),
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


# --- the one table: every row, and every error of the project --------------------------------

#: one error per row of OUTCOMES, with the refusal and the national code it must give
ROW_EXAMPLES = [
    (CardNotGenuine(), Reason.NOT_GENUINE, {}, -21),
    (NoSecurityModule("no PSAM"), Reason.NO_SECURITY_MODULE, {}, -2201),
    (
        SecurityModuleUnavailable("gone"),
        Reason.SECURITY_MODULE_ERROR,
        {"national_code": -11},
        -11,
    ),
    (CardIdFormatError("EF05 01"), Reason.CARD_UNREADABLE, {"error": "CardIdFormatError"}, -20),
    (
        UnsupportedAlgorithm(Algorithm.SSF33),
        Reason.CARD_UNREADABLE,
        {"error": "UnsupportedAlgorithm"},
        -2202,
    ),
    (PinFormatError("short"), Reason.PIN_MISSING, {}, -33),
    (ReaderTimeout("no card"), Reason.CARD_REMOVED, {}, -2),
    (CardRemoved("gone"), Reason.CARD_REMOVED, {}, -4),
    (ReaderUnavailable("no pcscd"), Reason.CARD_UNREADABLE, {"error": "ReaderUnavailable"}, -11),
    (WrongPin(2), Reason.PIN_WRONG, {"tries_left": 2}, -51),
    (PinBlocked(), Reason.PIN_BLOCKED, {}, -52),
    (ApplicationLocked(), Reason.APP_LOCKED, {}, -37635),
    (CardBlocked(), Reason.CARD_BLOCKED, {}, -27265),
    (AtrError("TS 00"), Reason.CARD_UNREADABLE, {"error": "AtrError"}, -1),
    (TlvError("short"), Reason.CARD_UNREADABLE, {"error": "TlvError"}, -15),
    (InsufficientBalance("余额不足"), Reason.PURSE_INSUFFICIENT, {}, -0x9401),
    (Mac1Invalid("MAC1"), Reason.PURSE_MAC_INVALID, {}, -0x9302),
    (PurseLocked("locked"), Reason.PURSE_LOCKED, {}, -0x9303),
    (CounterExhausted("full"), Reason.PURSE_COUNTER_EXHAUSTED, {}, -0x9402),
    (KeyVersionUnsupported("key"), Reason.PURSE_KEY_UNSUPPORTED, {}, -0x9403),
    (ProofUnavailable("proof"), Reason.PURSE_PROOF_UNAVAILABLE, {}, -0x9406),
    (NoPurchasePending("none"), Reason.PURSE_NOT_INITIALISED, {}, -0x6901),
    (PurchaseTorn("left"), Reason.PURSE_TORN, {}, -4),
    (
        SecurityNotSatisfied("EF06"),
        Reason.CARD_UNREADABLE,
        {"error": "SecurityNotSatisfied"},
        -27010,
    ),
    (
        ApduError(command=bytes.fromhex("00B2010400"), sw=0x6A83),
        Reason.CARD_UNREADABLE,
        {"error": "ApduError"},
        -27267,
    ),
    (QrRefused(QrReason.EXPIRED, "too old"), Reason.QR_EXPIRED, {}, None),
]


@pytest.mark.parametrize(("error", "reason", "detail", "code"), ROW_EXAMPLES)
def test_every_row_gives_its_refusal_national_code_and_exit_status(
    error: SscardError, reason: Reason, detail: dict[str, object], code: int | None
) -> None:
    row = outcome(error)
    assert row.reason_of(error) == reason and row.detail(error) == detail
    assert specific_code(error) == code
    assert row.exit_status == classify(error).exit_status == EXIT_FAILURE


def test_every_row_has_its_example() -> None:
    assert [outcome(error).error for error, *_ in ROW_EXAMPLES] == [r.error for r in OUTCOMES]


def test_no_row_hides_a_later_one() -> None:
    """First match wins: a row below one of its parent classes would never answer."""
    for i, earlier in enumerate(OUTCOMES):
        for later in OUTCOMES[i + 1 :]:
            assert not issubclass(later.error, earlier.error), (later.error, earlier.error)


def test_every_qr_refusal_has_its_own_reason() -> None:
    reasons = {QR_REASONS[kind] for kind in QrReason}
    assert len(reasons) == len(QrReason)
    assert all(str(reason).startswith("qr_") for reason in reasons)


def _project_errors() -> set[type[SscardError]]:
    """Every ``SscardError`` class the project defines (each module imported once)."""
    for package in PROJECT_PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    found: set[type[SscardError]] = set()
    todo = [SscardError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.partition(".")[0] in PROJECT_PACKAGES and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


PROJECT_PACKAGES = (
    "apdu",
    "ecard",
    "drivers",
    "offline_store",
    "sync",
    "platform_server",
    "terminal",
)


def test_every_error_of_the_project_has_a_row_or_a_documented_default() -> None:
    errors = _project_errors()
    assert len(errors) > 60  # the walk found the project, not just apdu.errors
    defaults = {name: False for name in DEFAULT_ERRORS}
    unanswered = []
    for kind in errors:
        if row_for(kind) is not DEFAULT:
            continue
        names = [f"{c.__module__}.{c.__qualname__}" for c in kind.__mro__]
        documented = [n for n in names if n in DEFAULT_ERRORS]
        if not documented:
            unanswered.append(names[0])
        for name in documented:
            defaults[name] = True
    assert unanswered == []
    assert [name for name, used in defaults.items() if not used] == []  # no stale entry


def test_a_default_error_is_refused_as_unreadable_without_a_national_code() -> None:
    error = StoreError("store.db is locked")
    assert outcome(error) is DEFAULT and specific_code(error) is None
    assert DEFAULT.reason_of(error) == Reason.CARD_UNREADABLE
    assert DEFAULT.detail(error) == {"error": "StoreError"}


def test_the_exit_statuses_of_the_layers_below_equal_the_terminals() -> None:
    """``sync`` and ``platform_server`` may not import ``terminal``: their copies must agree."""
    assert (reports.EXIT_OK, reports.EXIT_REFUSED, reports.EXIT_FAILED) == (
        EXIT_OK,
        EXIT_REFUSED,
        EXIT_FAILURE,
    )
    assert (cli_support.EXIT_OK, cli_support.EXIT_FAILURE) == (EXIT_OK, EXIT_FAILURE)
    assert EXIT_INTERRUPTED == 128 + signal.SIGINT


def test_a_missing_card_identifier_is_its_own_error_class() -> None:
    """Issue 12: the national code -20 comes from the class, never from the message text."""
    with pytest.raises(CardIdFormatError) as raised:
        parse_issuer({})
    assert national_code(raised.value) == -20
    with pytest.raises(CardIdFormatError):
        parse_issuer({0x01: b"\xff" * 16})  # left FF: absent
