"""The one table that turns an error into a national code, a reason and an exit status.

Every failure the terminal reports passes through :func:`classify`, so the CLI, the local API
and the journal agree on what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from apdu import national
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

EXIT_OK = 0
EXIT_FAILURE = 2


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


def classify(exc: SscardError) -> Failure:
    """Map an error to its national code and a one-line reason.

    :param exc: the error
    """
    code: int
    if isinstance(exc, ReaderTimeout):
        code = NationalCode.NO_CARD
    elif isinstance(exc, CardRemoved):
        code = NationalCode.CARD_NOT_ANSWERING
    elif isinstance(exc, ReaderUnavailable):
        code = NationalCode.READER_CONNECTION
    elif isinstance(exc, CardNotGenuine):
        code = NationalCode.NOT_GENUINE
    elif isinstance(exc, WrongPin):
        code = NationalCode.PIN_WRONG
    elif isinstance(exc, PinBlocked):
        code = NationalCode.PIN_LOCKED
    elif isinstance(exc, CardStateError | ApduError):
        code = national.for_sw(exc.sw)
    elif isinstance(exc, AtrError):
        code = NationalCode.WRONG_CARD_TYPE
    elif isinstance(exc, RecordFormatError) and "卡识别码" in str(exc):
        code = NationalCode.BAD_CARD_ID_FORMAT
    elif isinstance(exc, ProtocolError):
        code = NationalCode.CHECKSUM
    else:
        code = NationalCode.COMMAND_NOT_SUPPORTED
    return Failure(int(code), f"{national.message(code)}: {exc}")
