"""The operator's HTTP routes: ``GET /v1/clearing?day=YYYY-MM-DD`` (docs/clearing.md §4).

Terminals sign their requests with their own keys (:mod:`sync.auth`); an operator is no
terminal, so these routes take ``Authorization: Bearer <token>`` instead, the 64 hex digits of
``operator.token`` in the keys folder (0600, made by ``platform init``). Without that file the
routes are closed (403); a wrong or missing token is 401. The token is compared in constant
time and never logged.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from platform_server.problems import ProblemError

if TYPE_CHECKING:
    from platform_server.service import Platform

__all__ = ["router"]

router = APIRouter()
BEARER = "bearer "


def _operator(request: Request) -> Platform:
    """The platform, once the request carries the operator's token."""
    platform: Platform = request.app.state.platform
    token = platform.keys.operator_token()
    if token is None:
        raise ProblemError(
            403, "operator_closed", "no operator.token in the keys folder: the route is closed"
        )
    given = request.headers.get("authorization", "")
    if not given[: len(BEARER)].lower() == BEARER or not hmac.compare_digest(
        given[len(BEARER) :].strip().encode("ascii", "replace"), token.hex().encode("ascii")
    ):
        raise ProblemError(
            401,
            "operator_token",
            "this route takes the operator's bearer token (operator.token)",
            {"WWW-Authenticate": "Bearer"},
        )
    return platform


@router.get("/v1/clearing")
def clearing(request: Request) -> JSONResponse:
    """A day's clearing per terminal and per card issuer.

    :param request: ``?day=YYYY-MM-DD``, with the operator's bearer token
    :raises ProblemError: 403 closed, 401 a wrong token, 400 a query without one valid day
    :raises InvalidInput: 400, the day is not a date
    """
    platform = _operator(request)
    try:
        pairs = parse_qsl(request.url.query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ProblemError(400, "invalid_query", "the query is not UTF-8") from None
    if [name for name, _ in pairs] != ["day"]:
        raise ProblemError(400, "invalid_query", "the query is exactly day=YYYY-MM-DD")
    return JSONResponse(platform.clearing(pairs[0][1]).to_json())
