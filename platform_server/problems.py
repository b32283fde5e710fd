"""Problem documents (RFC 9457) and the one table that maps the platform's errors to HTTP.

Every error answer of the platform is ``application/problem+json``::

    {"type": "about:blank", "title": "Unauthorized", "status": 401, "code": "bad_signature",
     "detail": "…one line…"}

``code`` is the reason a client acts on (docs/sync.md §4); ``detail`` is for people and never
holds personal data. The one exception is the decode endpoint's refusal, which keeps the shape
terminal/ecard_flow.py reads: ``422 {"ok": false, "reason": "…"}``.
"""

from __future__ import annotations

from http import HTTPStatus

from starlette.responses import JSONResponse

from platform_server.errors import (
    AlreadyExists,
    Busy,
    InvalidInput,
    NotFound,
    PlatformConfigError,
    PlatformError,
)

__all__ = ["PROBLEM_TYPE", "STATUS", "ProblemError", "problem", "status_of"]

PROBLEM_TYPE = "application/problem+json"

#: the HTTP status of each platform error (the most specific class wins)
STATUS: dict[type[PlatformError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    AlreadyExists: 409,
    Busy: 503,
    PlatformConfigError: 500,
    PlatformError: 500,
}


class ProblemError(Exception):
    """An HTTP-level refusal raised by a route (a body too large, a query off its format).

    :param status: the HTTP status
    :param code: the reason code
    :param detail: one line for people
    :param headers: extra headers (``Retry-After``)
    """

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{status} {code}: {detail}")


def status_of(error: PlatformError) -> int:
    """The HTTP status of a platform error, from :data:`STATUS`.

    :param error: the error
    :raises: nothing
    """
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    status: int, code: str, detail: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem document response.

    :param status: the HTTP status
    :param code: the reason code
    :param detail: one line for people (no personal data)
    :param headers: extra headers
    :raises: nothing
    """
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)
