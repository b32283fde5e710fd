"""Signed HTTP requests to the platform, with timeouts, retries and an optional pinned
certificate (docs/sync.md §1, §2).

Every request is signed afresh on each attempt (a new timestamp and nonce: a retry is never a
replay). A connection that fails, times out, or is cut before the whole answer arrived, and an
answer 5xx or 429, is retried with exponential back-off and full jitter — the delay before
attempt *n* + 1 is uniform in [0, min(cap, base·2ⁿ⁻¹)] — or after exactly the ``Retry-After``
the platform asked for. A 4xx answer is final: the platform has decided.

TLS: with a pinned digest, the SHA-256 of the server certificate's DER is compared on every
new connection (urllib3's ``assert_fingerprint``) and the CA check is replaced by it unless a
CA file is also given; without one, the CA file or the system's CAs are used.

One transport carries every call a terminal makes to the platform — the sync's and the decoding
of national e-card codes (:mod:`terminal.ecard_flow`) — so the pin and the CA file hold for all
of them. Its session ignores the environment (``trust_env = False``): requests would otherwise
let ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` replace the session's CA file, send the
requests through ``HTTPS_PROXY``/``ALL_PROXY`` and add ``.netrc`` credentials, all chosen by
whoever sets the process's environment rather than by the terminal's settings. Proxies from the
environment are therefore not honoured (a proxy would need a setting of its own; the pin would
still hold through a CONNECT tunnel).
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from requests.structures import CaseInsensitiveDict

from sync.auth import Credentials
from sync.errors import (
    SyncAuthError,
    SyncConfigError,
    SyncProtocolError,
    SyncRefused,
    SyncStopped,
    SyncTlsError,
    SyncUnreachable,
)
from sync.wire import MalformedBody, ascii_uint, load_json

__all__ = [
    "Credentials",
    "Exchange",
    "PinnedAdapter",
    "RetryPolicy",
    "SignedTransport",
    "platform_session",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # far above any answer of the contract
MAX_PROBLEM_BYTES = 64 * 1024  # a problem document is a few hundred bytes
RETRY_AFTER_DIGITS = 9  # Retry-After seconds: RFC 9110 §10.2.3; more than 30 years is not a wait
_TRUST_FAILURES = (
    "fingerprints did not match",
    "certificate_verify_failed",
    "certificate verify failed",
    "hostname mismatch",
    "doesn't match",
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    :param attempts: requests sent at most (the first one included)
    :param base_s: the back-off unit: the cap of the first delay
    :param cap_s: the largest delay drawn
    :param retry_after_cap_s: the longest ``Retry-After`` obeyed (a larger one is cut to it)
    """

    attempts: int = 10
    base_s: float = 0.25
    cap_s: float = 20.0
    retry_after_cap_s: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay after failed attempt ``attempt`` (from 1): full jitter.

        :param attempt: the attempt that failed
        :param rng: the random source
        """
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request's final answer.

    :param status: the HTTP status
    :param headers: the answer's headers (case-insensitive)
    :param body: the whole body
    :param sent_at: the local wall clock when the answered attempt was sent
    :param rtt_s: that attempt's round trip, seconds (monotonic clock)
    :param attempts: how many times the request was sent
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    sent_at: float
    rtt_s: float
    attempts: int

    @property
    def midpoint(self) -> float:
        """The local wall-clock time half-way through the round trip."""
        return self.sent_at + self.rtt_s / 2

    def json(self) -> Any:
        """The body as JSON.

        :raises SyncProtocolError: not JSON, over :data:`MAX_ANSWER_BYTES`, or nested deeper than
            any answer of the contract (the same bounded parser as the platform's requests)
        """
        try:
            return load_json(self.body, max_bytes=MAX_ANSWER_BYTES)
        except MalformedBody as exc:
            raise SyncProtocolError(f"the platform's answer is not usable JSON: {exc}") from None


class PinnedAdapter(HTTPAdapter):
    """A requests adapter that checks the server certificate's SHA-256 on every connection.

    :param fingerprint: 64 lowercase hex digits, or ``None`` for no pin
    """

    def __init__(self, fingerprint: str | None) -> None:
        self._fingerprint = fingerprint  # before super(): it calls init_poolmanager
        super().__init__(max_retries=0)

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = DEFAULT_POOLBLOCK,
        **pool_kwargs: Any,
    ) -> None:
        """Build the pool manager, with the pin in every pool's keyword arguments.

        :param connections: pools cached
        :param maxsize: connections per pool
        :param block: wait for a free connection
        :param pool_kwargs: passed on to urllib3
        """
        if self._fingerprint:
            pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def platform_session(
    pinned_cert_sha256: str | None = None, ca_file: str | None = None
) -> requests.Session:
    """The HTTP session of every platform call: the pin or the CA file, nothing from the
    environment (the module docstring says why).

    :param pinned_cert_sha256: the pinned certificate digest (64 lowercase hex), or ``None``
    :param ca_file: the CA file, or ``None`` (the CAs requests ships)
    :raises: nothing
    """
    session = requests.Session()
    session.trust_env = False  # no CA bundle, proxy or .netrc from the environment
    session.mount("https://", PinnedAdapter(pinned_cert_sha256))
    session.mount("http://", HTTPAdapter(max_retries=0))
    if pinned_cert_sha256 is not None:
        session.verify = ca_file or False  # the pin replaces the CA check
    elif ca_file is not None:
        session.verify = ca_file
    return session


class SignedTransport:
    """Signed requests to one platform over one :class:`requests.Session`.

    :param base_url: the platform's base URL (``[sync] url``)
    :param credentials: the signer
    :param timeout_s: connect and read timeout of each attempt
    :param session: a session to use (tests); default: a new one with the TLS settings
    :param pinned_cert_sha256: the pinned certificate digest, or ``None``
    :param ca_file: the CA file, or ``None`` (the system's CAs)
    :param policy: the retry policy
    :param clock: the wall clock (signing timestamps, round-trip midpoints)
    :param stop: set to make a waiting retry give up with :class:`SyncStopped`
    :param rng: the random source of the jitter
    :raises SyncConfigError: a pin or CA file with a plain-HTTP ``base_url``
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout_s: float,
        session: requests.Session | None = None,
        pinned_cert_sha256: str | None = None,
        ca_file: str | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.stop = stop or threading.Event()
        self._rng = rng or random.Random()
        self._tls_settings = pinned_cert_sha256 is not None or ca_file is not None
        self.check_url(self.base_url)
        self.session = session or platform_session(pinned_cert_sha256, ca_file)

    def check_url(self, url: str) -> None:
        """Refuse a plain-HTTP URL when a pin or a CA file is configured: over ``http://``
        neither would be checked, and the terminal would trust a server it never verified.

        :param url: a base URL this transport is to send to
        :raises SyncConfigError: a pin or CA file is set and the URL is not ``https://``
        """
        if self._tls_settings and urlsplit(url).scheme != "https":
            raise SyncConfigError(
                f"{url}: pinned_cert_sha256 and ca_file need an https:// URL; over http:// "
                "the platform's certificate would never be checked"
            )

    def close(self) -> None:
        """Close the session's connections.

        :raises: nothing
        """
        self.session.close()

    def post_json(self, path: str, body: bytes, check: Callable[[Exchange], T]) -> T:
        """POST a JSON body and return what ``check`` made of the answer.

        :param path: the path below the base URL
        :param body: the JSON body, UTF-8
        :param check: reads the accepted answer (raises :class:`SyncProtocolError` when it
            breaks the contract)
        :returns: what ``check`` returned
        :raises SyncError: see :meth:`request`
        """
        _, value = self.request(
            "POST", path, body=body, content_type="application/json", check=check
        )
        assert value is not None  # the check always returns one
        return value

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        accept: frozenset[int] = frozenset({200}),
        headers: Mapping[str, str] | None = None,
        check: Callable[[Exchange], T] | None = None,
        timeout_s: float | None = None,
        attempts: int | None = None,
        base_url: str | None = None,
    ) -> tuple[Exchange, T | None]:
        """Send a signed request, retrying what can be retried, and return the final answer.

        :param method: ``GET`` or ``POST``
        :param path: the path below the base URL, e.g. ``/v1/journal/batch``
        :param query: query parameters, or ``None``
        :param body: the body bytes
        :param content_type: the body's media type
        :param accept: the statuses that are an answer (others are retried or refused)
        :param headers: extra headers (``If-None-Match``)
        :param check: called on an accepted answer; a :class:`SyncProtocolError` it raises
            (a body cut short without the transport noticing) makes the attempt count as failed
        :param timeout_s: this request's connect and read timeout (default: the transport's)
        :param attempts: this request's attempts at most (default: the policy's); a holder
            waiting at a gate gets one
        :param base_url: another base URL of the same platform for this request (``[ecard]
            decode_url``); the session, and so the pin and the CA file, stay the same
        :returns: the answer and what ``check`` returned (``None`` without ``check``)
        :raises SyncUnreachable: no accepted answer after every attempt
        :raises SyncTlsError: the certificate is not the pinned one, or does not verify
        :raises SyncAuthError: 401
        :raises SyncRefused: another 4xx, or an unexpected status
        :raises SyncStopped: :attr:`stop` was set while waiting to retry
        :raises SyncConfigError: ``base_url`` is plain HTTP while a pin or CA file is set
        """
        target = path + ("?" + urlencode(query) if query else "")
        base = self.base_url
        if base_url is not None:
            self.check_url(base_url)
            base = base_url.rstrip("/")
        request = _Request(
            method,
            path,
            base + target,
            urlsplit(base).path + target,
            body,
            dict(headers or {}) | ({"Content-Type": content_type} if content_type else {}),
            self.timeout_s if timeout_s is None else timeout_s,
        )
        last = "no attempt"
        policy = self.policy
        if attempts is not None:
            policy = dataclasses.replace(policy, attempts=max(1, attempts))
        for attempt in range(1, policy.attempts + 1):
            if self.stop.is_set():
                raise SyncStopped(f"stopped before {method} {path}")
            outcome = self._attempt(request, attempt, accept, check)
            if not isinstance(outcome, _Retry):
                return outcome
            last, delay = outcome.cause, outcome.delay
            if delay is None:
                delay = policy.backoff(attempt, self._rng)
            if attempt == policy.attempts:
                break
            log.warning(
                "event=sync_retry method=%s path=%s attempt=%d delay_s=%.2f cause=%s",
                method,
                path,
                attempt,
                delay,
                last,
            )
            if self.stop.wait(delay):
                raise SyncStopped(f"stopped while waiting to retry {method} {path}")
        raise SyncUnreachable(f"{method} {path}: {last}", policy.attempts)

    def _attempt(
        self,
        request: _Request,
        attempt: int,
        accept: frozenset[int],
        check: Callable[[Exchange], T] | None,
    ) -> tuple[Exchange, T | None] | _Retry:
        """Send one signed attempt: the final answer, or why and when to retry."""
        sent_at = self.clock()
        signed = self.credentials.sign(
            request.method, request.signed_path, request.body, now=sent_at
        )
        started = time.monotonic()
        try:
            response = self.session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=request.headers | signed,
                timeout=(request.timeout_s, request.timeout_s),
                allow_redirects=False,
            )
            content = response.content  # reads it all: a cut body raises here
        except requests.exceptions.SSLError as exc:
            if _is_trust_failure(exc):
                raise SyncTlsError(
                    f"the platform's certificate was refused: {_one_line(exc)}"
                ) from exc
            return _Retry(f"TLS: {_one_line(exc)}")
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            return _Retry(f"{type(exc).__name__}: {_one_line(exc)}")
        except requests.RequestException as exc:
            raise SyncUnreachable(
                f"{request.method} {request.path}: {_one_line(exc)}", attempt
            ) from exc
        exchange = Exchange(
            response.status_code,
            CaseInsensitiveDict(response.headers),
            content,
            sent_at,
            time.monotonic() - started,
            attempt,
        )
        status = exchange.status
        if status in accept:
            if check is None:
                return exchange, None
            try:
                return exchange, check(exchange)
            except SyncProtocolError as exc:
                return _Retry(f"a malformed {status} answer: {exc}")
        if status in RETRY_STATUSES:
            after = _retry_after(exchange.headers.get("Retry-After"), self.clock())
            if after is not None:
                after = min(after, self.policy.retry_after_cap_s)
            return _Retry(f"HTTP {status}", after)
        raise _refusal(request.method, request.path, exchange)


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    url: str
    signed_path: str
    body: bytes
    headers: dict[str, str]
    timeout_s: float


@dataclass(frozen=True, slots=True)
class _Retry:
    cause: str
    delay: float | None = None  # None: the back-off decides


def _refusal(method: str, path: str, exchange: Exchange) -> SyncRefused:
    """The error for a final non-accepted answer, from its problem document."""
    code, title = "", ""
    try:
        problem = load_json(exchange.body, max_bytes=MAX_PROBLEM_BYTES) if exchange.body else {}
    except MalformedBody:
        problem = {}
    if isinstance(problem, dict):
        code = str(problem.get("code") or "")[:64]
        title = str(problem.get("title") or problem.get("detail") or "")[:200]
    what = f"the platform refused {method} {path}: HTTP {exchange.status}"
    message = f"{what} {code}".rstrip() + (f" ({title})" if title else "")
    if exchange.status == 401:
        offset = None
        if code == "stale_timestamp":
            offset = _date_offset(exchange)
        return SyncAuthError(exchange.status, code, message, offset)
    return SyncRefused(exchange.status, code, message)


def _date_offset(exchange: Exchange) -> float | None:
    """Server minus local clock from the ``Date`` header (1 s resolution), or ``None``."""
    date = exchange.headers.get("Date")
    if not date:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
    return server - exchange.midpoint


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    seconds = ascii_uint(value, max_digits=RETRY_AFTER_DIGITS)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - now)


def _is_trust_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _TRUST_FAILURES)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
