"""Request signing between a terminal and the platform (docs/sync.md §2).

Every request but ``GET /v1/health`` carries five headers::

    X-Sscard-Terminal:  the terminal id
    X-Sscard-Key-Id:    the id of the terminal's key (a terminal may hold two while rotating)
    X-Sscard-Timestamp: seconds since 1970, an integer
    X-Sscard-Nonce:     32 lowercase hex characters, never reused
    X-Sscard-Signature: lowercase hex HMAC-SHA256 over the canonical string, with the key

The canonical string is six lines joined by ``\\n`` (no trailing newline)::

    METHOD          upper case, e.g. POST
    PATH            the path with its query string, exactly as sent, e.g. /v1/deny?since=7
    TIMESTAMP       the header's value
    NONCE           the header's value
    BODY-SHA256     lowercase hex SHA-256 of the body bytes (of b"" when there is none)
    KEY-ID          the header's value

The platform refuses (401, a problem document with one of the :class:`AuthFailure` codes) a
request that is unsigned, names an unknown terminal or key, is signed wrongly, is more than
:data:`MAX_SKEW_S` from the platform's clock, has a nonce off its format, or repeats a nonce
whose timestamp is still accepted. Every number is read as ASCII digits only
(:func:`sync.wire.ascii_uint`); a value off its format is refused, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from apdu.errors import SscardError
from sync.wire import TERMINAL_ID, ascii_uint, quote

MAX_SKEW_S = 300
NONCE_HEX = 32
PER_TERMINAL_NONCES = 4096  # 6.8 requests a second for 10 minutes; more is refused (429)
MAX_NONCES = 1_000_000  # about 120 MB; more is refused (503)
SWEEP_INTERVAL_S = 60  # every expired nonce is dropped at least this often
H_TERMINAL = "X-Sscard-Terminal"
H_KEY_ID = "X-Sscard-Key-Id"
H_TIMESTAMP = "X-Sscard-Timestamp"
H_NONCE = "X-Sscard-Nonce"
H_SIGNATURE = "X-Sscard-Signature"
HEADERS = (H_TERMINAL, H_KEY_ID, H_TIMESTAMP, H_NONCE, H_SIGNATURE)
_NONCE = re.compile(r"[0-9a-f]{32}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class AuthFailure(StrEnum):
    """Why the platform refused a request's signature."""

    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    REPLAYED_NONCE = "replayed_nonce"


class AuthError(SscardError):
    """A request that does not carry a valid signature.

    :param failure: the reason code
    :param message: one line for the log
    """

    def __init__(self, failure: AuthFailure, message: str) -> None:
        self.failure = failure
        super().__init__(f"{failure}: {message}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who signs: the terminal id, the key's id and the key. The platform makes them when it
    registers a terminal (``platform terminal add``); the terminal signs every request with them.

    :param terminal_id: ``[terminal] id``
    :param key_id: ``[sync] key_id`` (the ``X-Sscard-Key-Id`` header)
    :param key: the 32-byte HMAC key (never logged)
    """

    terminal_id: str
    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"Credentials(terminal_id={self.terminal_id!r}, key_id={self.key_id!r}, key=…)"

    def sign(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        now: float | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """The five headers of a request signed with these credentials.

        :param method: the HTTP method
        :param path: the path and query, exactly as they will be sent
        :param body: the body bytes
        :param now: the clock (default: :func:`time.time`)
        :param nonce: a nonce (default: 16 random bytes, hex)
        :raises ValueError: a key shorter than 32 bytes
        """
        if len(self.key) < 32:
            raise ValueError("a terminal key is at least 32 bytes")
        stamp = str(int(time.time() if now is None else now))
        once = nonce or secrets.token_hex(NONCE_HEX // 2)
        message = canonical(method, path, stamp, once, body, key_id=self.key_id)
        return {
            H_TERMINAL: self.terminal_id,
            H_KEY_ID: self.key_id,
            H_TIMESTAMP: stamp,
            H_NONCE: once,
            H_SIGNATURE: hmac.new(self.key, message, hashlib.sha256).hexdigest(),
        }


def canonical(
    method: str, path: str, timestamp: str, nonce: str, body: bytes, *, key_id: str
) -> bytes:
    """The string a request's signature covers.

    :param method: the HTTP method
    :param path: the path and query, as sent
    :param timestamp: the timestamp header
    :param nonce: the nonce header
    :param body: the body bytes
    :param key_id: the key id header
    """
    lines = (method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest(), key_id)
    return "\n".join(lines).encode("utf-8")


class NonceLimit(SscardError):
    """No room for another nonce: a terminal's pool (or the whole cache) is full of nonces that
    have not expired. Nothing is evicted before it expires — an evicted nonce could be
    replayed — so the request is refused instead, to be retried after ``retry_after_s``.

    :param retry_after_s: seconds until the oldest of those nonces expires
    :param whole: the whole cache is full, not only this terminal's share
    """

    def __init__(self, retry_after_s: int, *, whole: bool = False) -> None:
        self.retry_after_s = max(1, retry_after_s)
        self.whole = whole
        scope = "the platform holds" if whole else "this terminal sent"
        super().__init__(f"{scope} too many requests within {2 * MAX_SKEW_S} s")


class NonceStore(Protocol):
    """Where a verifier remembers nonces (:class:`NonceCache`, or one that also persists)."""

    def remember(self, terminal: str, nonce: str, expires_at: int, now: float) -> bool:
        """Remember a nonce until ``expires_at``; ``False`` when it is remembered already.

        :param terminal: the signing terminal
        :param nonce: 32 lowercase hex characters
        :param expires_at: the last second its timestamp is accepted
        :param now: the clock
        :raises NonceLimit: no room without evicting a nonce that has not expired
        """
        ...


class NonceCache:
    """The nonces of each terminal until they expire (thread-safe, bounded per terminal).

    Each terminal has a pool of its own: a terminal's requests never push another's nonces
    out, and no nonce leaves before it expires (the end of its timestamp's window), so a
    replay is refused for as long as its timestamp would be accepted. A pool that is full
    refuses the request (:class:`NonceLimit`) rather than forget. A nonce is kept as a 128-bit
    integer in a dict: about 120 bytes each (docs/sync.md §10).

    :param per_terminal: the most unexpired nonces of one terminal
    :param limit: the most unexpired nonces of all terminals together
    """

    def __init__(self, per_terminal: int = PER_TERMINAL_NONCES, limit: int = MAX_NONCES) -> None:
        self.per_terminal = per_terminal
        self.limit = limit
        self._pools: dict[str, dict[int, int]] = {}
        self._size = 0
        self._swept_at = -math.inf
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """How many nonces it holds (some may have expired since the last sweep)."""
        return self._size

    def remember(self, terminal: str, nonce: str, expires_at: int, now: float) -> bool:
        """Remember a terminal's nonce until ``expires_at``.

        :param terminal: the signing terminal
        :param nonce: 32 lowercase hex characters (checked by :func:`verify_request`)
        :param expires_at: the last second its timestamp is accepted
        :param now: the clock
        :returns: ``False`` when the terminal sent it before and it has not expired
        :raises NonceLimit: the terminal's pool, or the whole cache, is full
        """
        key = int(nonce, 16)
        with self._lock:
            if now - self._swept_at >= SWEEP_INTERVAL_S:
                self._sweep_all(now)
            pool = self._pools.setdefault(terminal, {})
            seen = pool.get(key)
            if seen is not None and seen >= now:
                return False
            if seen is None:
                if len(pool) >= self.per_terminal and not self._sweep(pool, now):
                    raise NonceLimit(math.ceil(min(pool.values()) - now) + 1)
                if self._size >= self.limit and not self._sweep_all(now):
                    raise NonceLimit(SWEEP_INTERVAL_S, whole=True)
                self._size += 1
            pool[key] = expires_at
            return True

    def _sweep(self, pool: dict[int, int], now: float) -> int:
        """Drop a pool's expired nonces; how many went."""
        expired = [key for key, expires_at in pool.items() if expires_at < now]
        for key in expired:
            del pool[key]
        self._size -= len(expired)
        return len(expired)

    def _sweep_all(self, now: float) -> int:
        """Drop every expired nonce and every empty pool; how many nonces went."""
        dropped = sum(self._sweep(pool, now) for pool in self._pools.values())
        self._pools = {terminal: pool for terminal, pool in self._pools.items() if pool}
        self._swept_at = now
        return dropped


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key_for: Callable[[str, str], bytes | None],
    nonces: NonceStore,
    now: float | None = None,
) -> str:
    """Check a request's signature (platform side).

    :param method: the HTTP method
    :param path: the path and query as received
    :param headers: the request headers (looked up case-insensitively by the caller's mapping)
    :param body: the body bytes
    :param key_for: (terminal id, key id) → the key, or ``None`` when unknown
    :param nonces: where nonces are remembered until their timestamps expire
    :param now: the clock (default: :func:`time.time`)
    :returns: the terminal id
    :raises AuthError: with the failure code
    :raises NonceLimit: the terminal sent too many requests within the window
    """
    values = {name: headers.get(name) for name in HEADERS}
    if not all(values.values()):
        missing = [name for name, value in values.items() if not value]
        raise AuthError(AuthFailure.UNSIGNED, f"missing {', '.join(missing)}")
    terminal, key_id = str(values[H_TERMINAL]), str(values[H_KEY_ID])
    stamp, nonce = str(values[H_TIMESTAMP]), str(values[H_NONCE])
    signature = str(values[H_SIGNATURE])
    # ids off their format name no key: never looked up (a NUL byte breaks PostgreSQL)
    well_formed = TERMINAL_ID.fullmatch(terminal) and TERMINAL_ID.fullmatch(key_id)
    key = key_for(terminal, key_id) if well_formed else None
    if key is None:
        raise AuthError(
            AuthFailure.UNKNOWN_KEY, f"terminal {quote(terminal, 40)} key {quote(key_id, 40)}"
        )
    expected = hmac.new(
        key, canonical(method, path, stamp, nonce, body, key_id=key_id), hashlib.sha256
    )
    # compare_digest refuses str holding non-ASCII characters: check the format first
    if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(
        expected.hexdigest(), signature.lower()
    ):
        raise AuthError(AuthFailure.BAD_SIGNATURE, f"terminal {quote(terminal)}")
    clock = time.time() if now is None else now
    seconds = ascii_uint(stamp)
    if seconds is None or abs(clock - seconds) > MAX_SKEW_S:
        raise AuthError(AuthFailure.STALE_TIMESTAMP, f"timestamp {quote(stamp, 20)}")
    if not _NONCE.fullmatch(nonce):
        raise AuthError(AuthFailure.REPLAYED_NONCE, f"the nonce is not {NONCE_HEX} lowercase hex")
    if not nonces.remember(terminal, nonce, seconds + MAX_SKEW_S, clock):
        raise AuthError(AuthFailure.REPLAYED_NONCE, f"terminal {quote(terminal)}")
    return terminal
