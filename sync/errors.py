"""What goes wrong between a terminal and the platform, as the sync client reports it.

::

    SscardError
    └── SyncError                   anything the sync client could not do
        ├── SyncConfigError         the [sync] settings or a key file are missing or wrong
        ├── SyncUnreachable         no usable answer after every retry (network, 5xx, 429)
        ├── SyncTlsError            the server's certificate is not the pinned one / not trusted
        ├── SyncProtocolError       an answer that breaks docs/sync.md
        ├── SyncStopped             the caller asked the client to stop (SIGTERM, daemon exit)
        └── SyncRefused             the platform answered 4xx with a problem document
            ├── SyncAuthError       401: unsigned, unknown key, bad signature, stale, replayed
            └── UploadRefused       the platform and the journal disagree about rows
                                    (rejected rows, an acknowledgement going backwards)

The CLI turns :class:`SyncConfigError`, :class:`SyncUnreachable`, :class:`SyncTlsError`,
:class:`SyncProtocolError` and :class:`SyncAuthError` (except a stale timestamp, which is a
clock alarm) into exit status 2, and :class:`SyncRefused` into 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from apdu.errors import SscardError

__all__ = [
    "RowRejection",
    "SyncAuthError",
    "SyncConfigError",
    "SyncError",
    "SyncProtocolError",
    "SyncRefused",
    "SyncStopped",
    "SyncTlsError",
    "SyncUnreachable",
    "UploadRefused",
]


class SyncError(SscardError):
    """Something the sync client could not do."""


class SyncConfigError(SyncError):
    """The ``[sync]`` settings, or a file they name, are missing or malformed."""


class SyncUnreachable(SyncError):
    """The platform gave no usable answer after every retry.

    :param message: what failed last, one line
    :param attempts: how many times the request was sent
    """

    def __init__(self, message: str, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(f"{message} (after {attempts} attempts)")


class SyncTlsError(SyncError):
    """The server's certificate does not match the pinned digest or does not verify."""


class SyncProtocolError(SyncError):
    """An answer that does not follow docs/sync.md (a missing field, a wrong type)."""


class SyncStopped(SyncError):
    """The client was asked to stop; what was acknowledged so far is kept."""


class SyncRefused(SyncError):
    """The platform answered with a 4xx problem document.

    :param status: the HTTP status
    :param code: the problem's ``code`` (a reason code), or ``""`` when it had none
    :param message: one line for the log
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class SyncAuthError(SyncRefused):
    """The platform refused the request's signature (401).

    :param status: the HTTP status (401)
    :param code: the :class:`sync.auth.AuthFailure` code
    :param message: one line for the log
    :param clock_offset_s: for ``stale_timestamp``, the offset of the local clock estimated
        from the answer's ``Date`` header (server minus local), else ``None``
    """

    def __init__(
        self, status: int, code: str, message: str, clock_offset_s: float | None = None
    ) -> None:
        self.clock_offset_s = clock_offset_s
        super().__init__(status, code, message)


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A journal row the platform refused.

    :param seq: the row's sequence number
    :param code: why (``conflict``, ``bad_hash``, ``terminal_mismatch`` …)
    """

    seq: int
    code: str


class UploadRefused(SyncRefused):
    """The platform and the local journal disagree: rows were rejected, or the platform's
    acknowledgement cursor is behind what it acknowledged before. The upload stops (it would
    never converge by retrying) and an operator must look.

    :param message: one line for the log
    :param rejected: the rejected rows, in the order the platform listed them
    """

    def __init__(self, message: str, rejected: tuple[RowRejection, ...] = ()) -> None:
        self.rejected = rejected
        super().__init__(200, rejected[0].code if rejected else "ack_regressed", message)
