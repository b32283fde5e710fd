"""What the reference platform refuses or cannot do.

::

    SscardError
    └── PlatformError                anything the platform refuses or cannot do
        ├── PlatformConfigError      a database URL, keys folder or key file that cannot be used
        ├── NotFound                 an unknown terminal, card or code (HTTP 404)
        ├── AlreadyExists            a terminal id or key already taken (HTTP 409)
        ├── InvalidInput             a value outside its format (HTTP 400, with a code)
        └── Busy                     the database stayed locked; try again (HTTP 503)

Each error carries the reason ``code`` that goes into a problem document;
:data:`platform_server.problems.STATUS` maps each class to its HTTP status, in one table.
"""

from __future__ import annotations

from apdu.errors import SscardError

__all__ = [
    "AlreadyExists",
    "Busy",
    "InvalidInput",
    "NotFound",
    "PlatformConfigError",
    "PlatformError",
]


class PlatformError(SscardError):
    """Something the platform refuses or cannot do.

    :param message: one line, never holding personal data
    :param code: the reason code of the problem document
    """

    default_code = "platform_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code or self.default_code
        super().__init__(message)


class PlatformConfigError(PlatformError):
    """A database URL, keys folder or key file the platform cannot use."""

    default_code = "config"


class NotFound(PlatformError):
    """An unknown terminal, card or code."""

    default_code = "not_found"


class AlreadyExists(PlatformError):
    """A terminal id (or another unique name) that is already taken."""

    default_code = "already_exists"


class InvalidInput(PlatformError):
    """A value outside its format: the message names the value's place, never its content
    when it may be personal."""

    default_code = "invalid_body"


class Busy(PlatformError):
    """The database stayed locked for the whole busy timeout.

    :param message: one line
    :param retry_after_s: when the client should try again
    """

    default_code = "busy"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)
