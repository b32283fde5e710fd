"""The HSM (加密机) two-step mode client (spec §3.7, §4.4).

The terminal sends the ``iReadCardBas_HSM_Step1`` string to the 持卡库 "卡内部认证" service, which
runs the HSM, and gets back the ``iReadCardBas_HSM_Step2`` ``pKey``: the expected INTERNAL
AUTHENTICATE answer and, for a 3.0 card, the RKSSSE cryptogram. The service decides which
algorithms it serves, SSF33 included. Wire contract: :mod:`drivers.virtual.hsm_service`.

A card authentication is never retried: a second attempt needs new card challenges.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from apdu.errors import ProtocolError
from apdu.national import NO_TERMINAL_NUMBER, NationalCode
from apdu.sam import (
    AlgorithmNotSupported,
    AuthRequest,
    AuthResponse,
    CardIdentity,
    RkssseMissing,
    SecurityModule,
    SecurityModuleError,
    SecurityModuleUnavailable,
    hsm_step1,
    parse_hsm_step2_key,
)

log = logging.getLogger(__name__)

CARD_AUTH_PATH = "/v1/hsm/card-auth"
SERVER_TEXT_MAX = 200  # how much of a server's error text goes into our messages
# the 422 answers the service gives a machine-readable national code for (spec §4.7)
MAPPED_CODES: dict[int, type[SecurityModuleError]] = {
    NationalCode.PSAM_ALGORITHM_MISSING: AlgorithmNotSupported,
    NationalCode.PSAM_RKSSSE_MISSING: RkssseMissing,
}


class HsmModule(SecurityModule):
    """The security module of HSM mode: each authentication is one HTTP round trip.

    :param url: the service's base URL, e.g. ``https://hsm.example:8700``
    :param timeout: the connect and the read timeout in seconds
    :param token: the bearer token the service requires, or ``None``
    :param terminal: this terminal's id, sent along for the service's log, or ``None``
    :raises ValueError: a timeout that is not above zero
    """

    kind = "hsm"

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        token: str | None = None,
        *,
        terminal: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"the HSM timeout must be above 0 seconds, got {timeout}")
        base = url.rstrip("/")
        self.endpoint = base + CARD_AUTH_PATH
        parts = urlsplit(base)
        # for messages and logs: never the user:password@ part of a URL
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.timeout = float(timeout)
        self.terminal = terminal
        self.card: CardIdentity | None = None
        self._session = requests.Session()
        # no retries: a card authentication repeated would answer stale challenges
        adapter = HTTPAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if token is not None:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def check(self, card: CardIdentity) -> None:
        """Remember the card; the HSM decides which algorithms it serves.

        :param card: the card identity
        """
        self.card = card

    def authenticate(self, request: AuthRequest) -> AuthResponse:
        """Send the Step1 string to the service and parse its pKey.

        :param request: the challenges
        :raises AlgorithmNotSupported: the service cannot serve the algorithm (``-2202``)
        :raises RkssseMissing: the service holds no RKSSSE for this card (``-2203``)
        :raises SecurityModuleUnavailable: no connection, a timeout, another HTTP status, or an
            answer that is not JSON or not a pKey for this request
        """
        body: dict[str, str] = {"step1": hsm_step1(request)}
        if self.terminal is not None:
            body["terminal"] = self.terminal
        try:
            answer = self._session.post(
                self.endpoint, json=body, timeout=(self.timeout, self.timeout)
            )
        except requests.Timeout as exc:
            raise SecurityModuleUnavailable(
                f"HSM service {self.url} did not answer within {self.timeout:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise SecurityModuleUnavailable(
                f"HSM service {self.url} cannot be reached: {type(exc).__name__}"
            ) from exc
        with answer:
            document = self._json(answer)
        if answer.status_code != requests.codes.ok:
            raise self._refusal(answer.status_code, document)
        pkey = document.get("pkey") if isinstance(document, dict) else None
        if not isinstance(pkey, str):
            raise SecurityModuleUnavailable(f"HSM service {self.url} answered no pkey string")
        try:
            response = parse_hsm_step2_key(pkey, request)
        except ProtocolError as exc:
            raise SecurityModuleUnavailable(
                f"HSM service {self.url} answered a pKey that does not fit: {exc}"
            ) from exc
        log.debug("event=hsm_auth url=%s status=%d", self.url, answer.status_code)
        return response

    def terminal_number(self) -> str:
        """``000000000000``: HSM mode has no PSAM to give a 终端机编号 (spec §4.3 field 10)."""
        return NO_TERMINAL_NUMBER

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        self._session.close()

    def _json(self, answer: requests.Response) -> Any:
        """The answer's JSON document, or ``None`` when it is not JSON.

        :param answer: the HTTP answer
        :raises SecurityModuleUnavailable: a 200 answer that is not JSON
        """
        try:
            return answer.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            if answer.status_code == requests.codes.ok:
                raise SecurityModuleUnavailable(
                    f"HSM service {self.url} answered HTTP 200 with a body that is not JSON"
                ) from None
            return None

    def _refusal(self, status: int, document: Any) -> SecurityModuleError:
        """Turn a non-200 answer into the error to raise.

        :param status: the HTTP status
        :param document: the answer's JSON, or ``None``
        """
        error = document.get("error") if isinstance(document, dict) else None
        code = document.get("code") if isinstance(document, dict) else None
        text = str(error)[:SERVER_TEXT_MAX] if error is not None else "no error text"
        mapped = MAPPED_CODES.get(code) if type(code) is int else None
        if status == requests.codes.unprocessable_entity and mapped is not None:
            return mapped(f"HSM service {self.url}: {text}")
        return SecurityModuleUnavailable(f"HSM service {self.url} answered HTTP {status}: {text}")
