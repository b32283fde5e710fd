"""``POST /v1/hospital/settle``: a medical settlement through the host API (issue 15,
docs/payments.md §2): the hospital system sends the holder's PIN and the bill (``iDoDebit``'s
``pPayInfo``); the card presented is debited through the SSC PSAM, journaled by the hospital
profile's pipeline (:mod:`terminal.settlement`), and the answer carries the ``iDoDebit``
output. The host app includes the router with one line (:func:`payments_router`); a service
that cannot settle answers 501.

Like ``POST /v1/card/pin/verify``, the PIN travels in the body, never in the URL, and is never
logged; a settlement counts as a PIN attempt of the host app's one
:class:`~terminal.host.pin_limit.PinLimiter` (429 over the limit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from apdu.errors import SscardError
from apdu.national import NationalCode
from terminal.host.pin_limit import PinLimiter
from terminal.outcomes import classify

__all__ = ["SettleRequest", "SettleService", "payments_router"]

PIN_MAX = 16
PAY_INFO_MAX = 64  # three fields: two amounts of at most 11 characters and 14 digits


class SettleRequest(BaseModel):
    """``POST /v1/hospital/settle``.

    :param pin: the holder's PIN (to the card only)
    :param pay_info: ``本次消费总金额|个人账户+统筹|YYYYMMDDHHMMSS|``
    :param reader: the card reader, ``None`` for any
    :param wait: seconds to wait for the card
    """

    pin: str = Field(min_length=1, max_length=PIN_MAX, repr=False)
    pay_info: str = Field(min_length=1, max_length=PAY_INFO_MAX)
    reader: str | None = None
    wait: float = 0.0


@runtime_checkable
class SettleService(Protocol):
    """What the router needs of the host service."""

    def hospital_settle(
        self, pin: str, pay_info: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Settle on the card presented: ``code``, ``result`` (``iDoDebit``), ``decision``."""
        ...


def payments_router(
    service: object,
    wait: Callable[[float], float],
    client: Callable[[Request], str],
    limiter: PinLimiter,
) -> APIRouter:
    """The payment routes over ``service``.

    :param service: the host service (:class:`SettleService` to settle; else 501)
    :param wait: bounds a requested wait (the host app's rule)
    :param client: who is asking, for the audit (the host app's rule)
    :param limiter: the host app's PIN rate limit (a settlement sends the PIN)
    """
    router = APIRouter()

    @router.post("/v1/hospital/settle")
    def hospital_settle(request: Request, body: SettleRequest) -> Any:
        if not isinstance(service, SettleService):
            reason = "this host service cannot settle payments"
            return JSONResponse({"code": NationalCode.COMMAND_NOT_SUPPORTED, "reason": reason}, 501)
        asking = client(request)
        if not limiter.allow(asking):
            return limiter.refusal()
        try:
            out = service.hospital_settle(
                body.pin, body.pay_info, body.reader, wait(body.wait), asking
            )
        except SscardError as exc:
            failure = classify(exc)
            return JSONResponse({"code": failure.code, "reason": failure.reason}, 422)
        return JSONResponse(out, status_code=200 if out["code"] == 0 else 422)

    return router
