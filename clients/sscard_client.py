"""A small Python client of the sscard host API (docs/host-api.md); only ``requests`` needed.

from sscard_client import SscardClient
client = SscardClient("http://127.0.0.1:8321", token=None)
card = client.card(wait=20)          # the `sscard read --format json` object
line = client.ireadcardbas(wait=20)  # the iReadCardBas string
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
        body = got.json()
        if got.status_code >= 400:
            raise SscardApiError(got.status_code, body.get("code", -1), body.get("reason", ""))
        return body

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
