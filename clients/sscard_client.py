"""A small Python client of the sscard host API (docs/host-api.md); only ``requests`` needed.

from sscard_client import SscardClient
client = SscardClient("http://127.0.0.1:8321", token=None)
card = client.card(wait=20)          # the `sscard read --format json` object
line = client.ireadcardbas(wait=20)  # the iReadCardBas string
stay = client.hotel_checkin("1208", wait=20)           # the decision, journaled
visit = client.hospital_register(pin, wait=20)         # the PIN in the body, never in the URL
"""

from __future__ import annotations

from typing import Any

import requests


class SscardApiError(Exception):
    """The API answered with an error: ``code`` is the national code, ``reason`` one line."""

    def __init__(self, status: int, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason


class SscardClient:
    """The host API at ``base`` (e.g. ``http://127.0.0.1:8321``), with an optional bearer token."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _get(self, path: str, wait: float = 0.0, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        if wait:
            params["wait"] = wait
        got = self.session.get(self.base + path, params=params, timeout=self.timeout + wait)
        return _answer(got)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        wait = float(body.get("wait") or 0.0)
        got = self.session.post(self.base + path, json=body, timeout=self.timeout + wait)
        return _answer(got)

    def readers(self) -> list[dict[str, Any]]:
        """Each reader: ``name``, ``card_present``, ``state``."""
        return list(self._get("/v1/readers")["readers"])

    def card(self, wait: float = 0.0, reader: str | None = None) -> dict[str, Any]:
        """Read the card (waiting up to ``wait`` seconds). :raises SscardApiError: on failure"""
        return dict(self._get("/v1/card", wait, reader=reader))

    def ireadcardbas(self, wait: float = 0.0, reader: str | None = None) -> str:
        """The ``iReadCardBas`` string. :raises SscardApiError: with the national code"""
        return str(self._get("/v1/card/ireadcardbas", wait, reader=reader)["result"])

    def healthz(self) -> dict[str, Any]:
        """The terminal's health."""
        return dict(self._get("/healthz"))

    def verify_pin(self, pin: str, wait: float = 0.0, reader: str | None = None) -> dict[str, Any]:
        """Verify the holder's PIN: ``code`` 0 when right. :raises SscardApiError: otherwise"""
        return dict(self._post("/v1/card/pin/verify", {"pin": pin, "wait": wait, "reader": reader}))

    def hotel_checkin(
        self, room: str, wait: float = 0.0, reader: str | None = None
    ) -> dict[str, Any]:
        """Register the guest whose card is presented for ``room``: the decision's JSON."""
        return dict(self._post("/v1/hotel/checkin", {"room": room, "wait": wait, "reader": reader}))

    def hospital_register(
        self, pin: str, wait: float = 0.0, reader: str | None = None
    ) -> dict[str, Any]:
        """Register the patient whose card is presented, with the holder's PIN."""
        body = {"pin": pin, "wait": wait, "reader": reader}
        return dict(self._post("/v1/hospital/register", body))


def _answer(got: requests.Response) -> Any:
    body = got.json()
    if got.status_code >= 400:
        raise SscardApiError(got.status_code, body.get("code", -1), body.get("reason", ""))
    return body
