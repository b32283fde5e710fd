"""The one table that turns an error into a reason code, a national code and an exit status.

Every failure the terminal reports passes through :data:`OUTCOMES`: the pipeline's refusal of
a tap whose card read failed (:meth:`terminal.pipeline.Pipeline.decide_error`), the e-card
flow's refusal of a code (:mod:`terminal.ecard_flow`), the CLI's line on stderr and its exit
status (:func:`terminal.cli.edge.run_command`, :func:`error_line`), ``sscard read``'s national
string (:func:`classify`). So the CLI, the local API and the journal agree on what happened.

The first row whose class the error is an instance of answers (subclasses come before their
parents; a unit test checks that no row hides a later one)::

    error                      reason (a tap's refusal)    national code            exit
    CardNotGenuine             not_genuine                 -21                        2
    NoSecurityModule           no_security_module          -2201                      2
    SecurityModuleError        security_module_error       the module's own code      2
    CardIdFormatError          card_unreadable             -20 (卡识别码格式错)       2
    UnsupportedAlgorithm       card_unreadable             -2202                      2
    PinFormatError             pin_missing                 -33                        2
    ReaderTimeout              card_removed                -2                         2
    CardRemoved                card_removed                -4                         2
    ReaderUnavailable          card_unreadable             -11                        2
    WrongPin                   pin_wrong (tries left)      -51                        2
    PinBlocked                 pin_blocked                 -52                        2
    ApplicationLocked          app_locked                  -(SW)                      2
    CardBlocked                card_blocked                -(SW)                      2
    AtrError                   card_unreadable             -1 (wrong card type)       2
    ProtocolError              card_unreadable             -15 (checksum)             2
    InsufficientBalance …      purse_… (one per SW)        -(SW)                      2
    PurchaseTorn               purse_torn                  -4                         2
    CardStateError, ApduError  card_unreadable             -(SW)                      2
    QrRefused                  the code's own (qr_…)       none                       2
    anything else (default)    card_unreadable             none                       2

*None*: the error is one of the terminal itself — a settings file, the offline store, a key
file, the platform — and has no national code of its own; the national string then carries
``COMMAND_NOT_SUPPORTED`` (it needs a code) and the CLI line none. A
:class:`config.errors.ConfigError` (``config/`` has its own error root: it imports nothing of
the project) is answered like the default row. ``card_unreadable`` refusals name the error's
class in their detail. Ctrl-C is no error of the table: :data:`EXIT_INTERRUPTED`.

The exit statuses of every ``sscard`` command are defined here and nowhere else in
``terminal/`` (``sync.reports`` and ``platform_server.cli`` cannot import ``terminal``: they keep
equal copies, and a unit test checks them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apdu import national
from apdu.crypto import UnsupportedAlgorithm
from apdu.errors import (
    ApduError,
    ApplicationLocked,
    AtrError,
    CardBlocked,
    CardIdFormatError,
    CardNotGenuine,
    CardRemoved,
    CardStateError,
    PinBlocked,
    ProtocolError,
    ReaderTimeout,
    ReaderUnavailable,
    SscardError,
    WrongPin,
)
from apdu.national import NationalCode
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
from apdu.sam import NoSecurityModule, SecurityModuleError
from config.errors import ConfigError
from ecard.errors import QrReason, QrRefused
from terminal.reasons import Reason

EXIT_OK = 0  # done; a tap or a code accepted
EXIT_REFUSED = 1  # a decision was made: refused, or "try again"
EXIT_FAILURE = 2  # nothing done, no decision made: one line on stderr says why
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command Ctrl-C stopped

#: what a failure can be: the project's errors, and the configuration's (their own root)
KnownError = SscardError | ConfigError

#: a column that is one value for every error of the row, or computed from the error
By = Callable[[Any], Any]

#: an e-card code's refusal (:class:`ecard.errors.QrReason`) → the tap's reason code
QR_REASONS: dict[QrReason, Reason] = {
    QrReason.BAD_ENCODING: Reason.QR_BAD_ENCODING,
    QrReason.UNKNOWN_KID: Reason.QR_UNKNOWN_KEY,
    QrReason.BAD_SIGNATURE: Reason.QR_BAD_SIGNATURE,
    QrReason.NOT_YET_VALID: Reason.QR_NOT_YET_VALID,
    QrReason.EXPIRED: Reason.QR_EXPIRED,
    QrReason.OUTSIDE_WINDOW: Reason.QR_OUTSIDE_WINDOW,
    QrReason.STALE_TRUST_LIST: Reason.QR_STALE_TRUST_LIST,
}


def _from_sw(exc: CardStateError | ApduError) -> int:
    return national.for_sw(exc.sw)


def _module_code(exc: SecurityModuleError) -> int:
    return int(exc.code)


def _error_name(exc: KnownError) -> dict[str, Any]:
    return {"error": type(exc).__name__}


def _no_detail(exc: KnownError) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the table: what an error of a class means.

    :param error: the error class (its subclasses too, unless an earlier row names them)
    :param reason: the reason code a tap is refused with, or a function of the error
    :param national: the national code (App A), a function of the error (``-(SW)``, a
        module's own code), or ``None`` when no national code names the error
    :param exit_status: the CLI's exit status
    :param detail: the refusal's detail, a function of the error (never personal data)
    """

    error: type[BaseException]
    reason: Reason | By
    national: int | By | None
    exit_status: int = EXIT_FAILURE
    detail: By = _no_detail

    def reason_of(self, exc: KnownError) -> Reason:
        """The reason code a tap that failed with ``exc`` is refused with.

        :param exc: an error of this row
        """
        reason: Reason = self.reason if isinstance(self.reason, Reason) else self.reason(exc)
        return reason

    def national_of(self, exc: KnownError) -> int | None:
        """The national code of ``exc``, or ``None`` when none names it.

        :param exc: an error of this row
        """
        if self.national is None or isinstance(self.national, int):
            return self.national
        code: int = self.national(exc)
        return code


#: error class → reason, national code, exit status; first match wins
OUTCOMES: tuple[Outcome, ...] = (
    Outcome(CardNotGenuine, Reason.NOT_GENUINE, NationalCode.NOT_GENUINE),
    Outcome(NoSecurityModule, Reason.NO_SECURITY_MODULE, _module_code),
    Outcome(
        SecurityModuleError,
        Reason.SECURITY_MODULE_ERROR,
        _module_code,
        detail=lambda exc: {"national_code": int(exc.code)},
    ),
    Outcome(
        CardIdFormatError,
        Reason.CARD_UNREADABLE,
        NationalCode.BAD_CARD_ID_FORMAT,
        detail=_error_name,
    ),
    Outcome(
        UnsupportedAlgorithm,
        Reason.CARD_UNREADABLE,
        NationalCode.PSAM_ALGORITHM_MISSING,
        detail=_error_name,
    ),
    Outcome(PinFormatError, Reason.PIN_MISSING, NationalCode.PIN_LENGTH),
    Outcome(ReaderTimeout, Reason.CARD_REMOVED, NationalCode.NO_CARD),
    Outcome(CardRemoved, Reason.CARD_REMOVED, NationalCode.CARD_NOT_ANSWERING),
    Outcome(
        ReaderUnavailable,
        Reason.CARD_UNREADABLE,
        NationalCode.READER_CONNECTION,
        detail=_error_name,
    ),
    Outcome(
        WrongPin,
        Reason.PIN_WRONG,
        NationalCode.PIN_WRONG,
        detail=lambda exc: {"tries_left": exc.tries_left},
    ),
    Outcome(PinBlocked, Reason.PIN_BLOCKED, NationalCode.PIN_LOCKED),
    Outcome(ApplicationLocked, Reason.APP_LOCKED, _from_sw),
    Outcome(CardBlocked, Reason.CARD_BLOCKED, _from_sw),
    Outcome(AtrError, Reason.CARD_UNREADABLE, NationalCode.WRONG_CARD_TYPE, detail=_error_name),
    Outcome(ProtocolError, Reason.CARD_UNREADABLE, NationalCode.CHECKSUM, detail=_error_name),
    *(
        Outcome(error, reason, _from_sw)
        for error, reason in (
            (InsufficientBalance, Reason.PURSE_INSUFFICIENT),
            (Mac1Invalid, Reason.PURSE_MAC_INVALID),
            (PurseLocked, Reason.PURSE_LOCKED),
            (CounterExhausted, Reason.PURSE_COUNTER_EXHAUSTED),
            (KeyVersionUnsupported, Reason.PURSE_KEY_UNSUPPORTED),
            (ProofUnavailable, Reason.PURSE_PROOF_UNAVAILABLE),
            (NoPurchasePending, Reason.PURSE_NOT_INITIALISED),
        )
    ),
    Outcome(PurchaseTorn, Reason.PURSE_TORN, NationalCode.CARD_NOT_ANSWERING),
    Outcome(CardStateError, Reason.CARD_UNREADABLE, _from_sw, detail=_error_name),
    Outcome(ApduError, Reason.CARD_UNREADABLE, _from_sw, detail=_error_name),
    Outcome(QrRefused, lambda exc: QR_REASONS[exc.reason], None),
)

#: the answer to an error no row names: an error of the terminal itself
DEFAULT = Outcome(BaseException, Reason.CARD_UNREADABLE, None, detail=_error_name)

#: the errors (with their subclasses) that take :data:`DEFAULT` on purpose, and why; a unit
#: test checks that every ``SscardError`` of the project has a row or is named here
DEFAULT_ERRORS: dict[str, str] = {
    "terminal.daemon.admin.DaemonUnavailable": "no daemon on the admin socket: the operator "
    "commands then wait for the store",
    "apdu.errors.DriverError": "the root of the edges' errors; its readers' have rows",
    "drivers.indicators.base.IndicatorError": "an indicator: the terminal's own device",
    "drivers.scanners.base.ScannerError": "a code scanner: the terminal's own device",
    "apdu.purchase.NotTheSameCard": "the purse flow's own answer",
    "apdu.purchase.PurchaseStateError": "the purse flow's own answer",
    "ecard.errors.EcardError": "an e-card file or key of the terminal (codes: QrRefused)",
    "ecard.testkeys.RefusedTestKey": "a TEST KEY on a production terminal: its settings",
    "drivers.keyfile.KeyFileError": "a key file of the terminal",
    "drivers.soft_sam.SoftSamRefused": "the development SAM refused by the settings",
    "drivers.virtual.psam.PsamFileError": "an emulator's file (development)",
    "drivers.virtual.transit_psam.TransitPsamFileError": "an emulator's file (development)",
    "drivers.virtual.hsm_service.HsmServiceError": "the reference HSM service's own errors",
    "offline_store.errors.StoreError": "the offline store",
    "sync.errors.SyncError": "the platform link",
    "sync.wire.MalformedBody": "the platform link",
    "sync.auth.AuthError": "request signing (the platform's side)",
    "sync.auth.NonceLimit": "request signing (the platform's side)",
    "platform_server.errors.PlatformError": "the reference platform's own errors",
    "platform_server.ecard.DecodeRefused": "the reference platform's own errors",
    "terminal.profiles.ProfileError": "a scenario profile of the terminal",
    "terminal.ecard_flow.AudienceKeyError": "an audience-key file of the terminal",
    "terminal.daemon.host.HostSettingsError": "the daemon's [host] settings (token, TLS, address)",
    "terminal.host.desk.DeskBusy": "the host API's own answer: another action waits at the desk",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed operation as the outside world sees it.

    :param code: the national error code (App A, or ``-(SW)``)
    :param reason: one line, no personal data
    :param exit_status: the CLI exit status
    """

    code: int
    reason: str
    exit_status: int = EXIT_FAILURE


def outcome(exc: KnownError) -> Outcome:
    """The row of :data:`OUTCOMES` that answers an error, else :data:`DEFAULT`.

    :param exc: the error
    """
    return row_for(type(exc))


def row_for(kind: type[BaseException]) -> Outcome:
    """The row of :data:`OUTCOMES` that answers errors of a class, else :data:`DEFAULT`.

    :param kind: the error class
    """
    for row in OUTCOMES:
        if issubclass(kind, row.error):
            return row
    return DEFAULT


def specific_code(exc: KnownError) -> int | None:
    """The national code that names an error, or ``None`` when none does.

    Errors of the terminal itself — a settings file, the offline store, a key file, the
    platform — have no national code of their own; errors of a card, a reader or a security
    module have one.

    :param exc: the error
    """
    return outcome(exc).national_of(exc)


def national_code(exc: KnownError) -> int:
    """The national code of an error (App A, or ``-(SW)`` for a card status word); an error
    no code names is ``COMMAND_NOT_SUPPORTED`` (the national string needs a code).

    :param exc: the error
    """
    code = specific_code(exc)
    return NationalCode.COMMAND_NOT_SUPPORTED if code is None else code


def classify(exc: KnownError) -> Failure:
    """Map an error to its national code, a one-line reason and its exit status.

    :param exc: the error
    """
    code = national_code(exc)
    return Failure(code, f"{national.message(code)}: {exc}", outcome(exc).exit_status)


def error_line(exc: KnownError) -> str:
    """The one line the CLI prints on stderr for an error: ``sscard: <code>: <reason>`` when a
    national code names it, else ``sscard: <message>``.

    :param exc: the error
    """
    if specific_code(exc) is None:
        return f"sscard: {exc}"
    failure = classify(exc)
    return f"sscard: {failure.code}: {failure.reason}"
