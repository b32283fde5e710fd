"""The one table that turns an error into a national code, a reason and an exit status.

Every failure the terminal reports passes through :func:`classify`, so the CLI, the local API
and the journal agree on what happened. A :class:`config.errors.ConfigError` (``config/`` has
its own error root: it imports nothing of the project) is an error of the terminal itself,
answered like any :class:`~apdu.errors.SscardError` without a national code of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from apdu import national
from apdu.crypto import UnsupportedAlgorithm
from apdu.errors import (
    ApduError,
    AtrError,
    CardNotGenuine,
    CardRemoved,
    CardStateError,
    PinBlocked,
    ProtocolError,
    ReaderTimeout,
    ReaderUnavailable,
    RecordFormatError,
    SscardError,
    WrongPin,
)
from apdu.national import NationalCode
from apdu.pin import PinFormatError
from apdu.sam import SecurityModuleError
from config.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 2

#: what a failure can be: the project's errors, and the configuration's (their own root)
KnownError = SscardError | ConfigError


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


#: error type → national code, first match wins (subclasses before their parents)
CODES: tuple[tuple[type[SscardError], int], ...] = (
    (UnsupportedAlgorithm, NationalCode.PSAM_ALGORITHM_MISSING),
    (PinFormatError, NationalCode.PIN_LENGTH),
    (ReaderTimeout, NationalCode.NO_CARD),
    (CardRemoved, NationalCode.CARD_NOT_ANSWERING),
    (ReaderUnavailable, NationalCode.READER_CONNECTION),
    (CardNotGenuine, NationalCode.NOT_GENUINE),
    (WrongPin, NationalCode.PIN_WRONG),
    (PinBlocked, NationalCode.PIN_LOCKED),
    (AtrError, NationalCode.WRONG_CARD_TYPE),
    (ProtocolError, NationalCode.CHECKSUM),
)


def specific_code(exc: KnownError) -> int | None:
    """The national code that names an error, or ``None`` when none does.

    Errors of the terminal itself — a settings file, the offline store, a key file, the
    platform — have no national code of their own; errors of a card, a reader or a security
    module have one.

    :param exc: the error
    """
    if isinstance(exc, SecurityModuleError):
        return int(exc.code)
    if isinstance(exc, RecordFormatError) and "卡识别码" in str(exc):
        return NationalCode.BAD_CARD_ID_FORMAT
    for kind, code in CODES:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, CardStateError | ApduError):
        return national.for_sw(exc.sw)
    return None


def national_code(exc: KnownError) -> int:
    """The national code of an error (App A, or ``-(SW)`` for a card status word); an error
    no code names is ``COMMAND_NOT_SUPPORTED`` (the national string needs a code).

    :param exc: the error
    """
    code = specific_code(exc)
    return NationalCode.COMMAND_NOT_SUPPORTED if code is None else code


def classify(exc: KnownError) -> Failure:
    """Map an error to its national code and a one-line reason.

    :param exc: the error
    """
    code = national_code(exc)
    return Failure(code, f"{national.message(code)}: {exc}")


def error_line(exc: KnownError) -> str:
    """The one line the CLI prints on stderr for an error: ``sscard: <code>: <reason>`` when a
    national code names it, else ``sscard: <message>``.

    :param exc: the error
    """
    if specific_code(exc) is None:
        return f"sscard: {exc}"
    failure = classify(exc)
    return f"sscard: {failure.code}: {failure.reason}"
