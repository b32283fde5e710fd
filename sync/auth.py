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
:data:`MAX_SKEW_S` from the platform's clock, or repeats a nonce it saw within the window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from enum import StrEnum

from apdu.errors import SscardError

MAX_SKEW_S = 300
NONCE_HEX = 32
H_TERMINAL = "X-Sscard-Terminal"
H_KEY_ID = "X-Sscard-Key-Id"
H_TIMESTAMP = "X-Sscard-Timestamp"
H_NONCE = "X-Sscard-Nonce"
H_SIGNATURE = "X-Sscard-Signature"
HEADERS = (H_TERMINAL, H_KEY_ID, H_TIMESTAMP, H_NONCE, H_SIGNATURE)


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


def sign_request(
    method: str,
    path: str,
    body: bytes,
    *,
    terminal_id: str,
    key_id: str,
    secret: bytes,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The five headers of a signed request.

    :param method: the HTTP method
    :param path: the path and query, exactly as they will be sent
    :param body: the body bytes
    :param terminal_id: the terminal id
    :param key_id: the key id
    :param secret: the key (at least 32 bytes)
    :param now: the clock (default: :func:`time.time`)
    :param nonce: a nonce (default: 16 random bytes, hex)
    :raises ValueError: a key shorter than 32 bytes
    """
    if len(secret) < 32:
        raise ValueError("a terminal key is at least 32 bytes")
    stamp = str(int(time.time() if now is None else now))
    once = nonce or secrets.token_hex(NONCE_HEX // 2)
    mac = hmac.new(
        secret, canonical(method, path, stamp, once, body, key_id=key_id), hashlib.sha256
    )
    return {
        H_TERMINAL: terminal_id,
        H_KEY_ID: key_id,
        H_TIMESTAMP: stamp,
        H_NONCE: once,
        H_SIGNATURE: mac.hexdigest(),
    }


class NonceCache:
    """Nonces seen within the skew window (thread-safe, bounded).

    :param window_s: how long a nonce is remembered (twice the skew covers both sides)
    :param limit: the most nonces kept; the oldest go first
    """

    def __init__(self, window_s: float = 2 * MAX_SKEW_S, limit: int = 1_000_000) -> None:
        self.window_s = window_s
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, now: float) -> bool:
        """Remember a nonce; ``False`` when it was already seen within the window.

        :param key: terminal id and nonce
        :param now: the clock
        """
        with self._lock:
            while self._seen:
                _, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= self.window_s and len(self._seen) < self.limit:
                    break
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key_for: Callable[[str, str], bytes | None],
    nonces: NonceCache,
    now: float | None = None,
) -> str:
    """Check a request's signature (platform side).

    :param method: the HTTP method
    :param path: the path and query as received
    :param headers: the request headers (looked up case-insensitively by the caller's mapping)
    :param body: the body bytes
    :param key_for: (terminal id, key id) → the key, or ``None`` when unknown
    :param nonces: the nonce cache
    :param now: the clock (default: :func:`time.time`)
    :returns: the terminal id
    :raises AuthError: with the failure code
    """
    values = {name: headers.get(name) for name in HEADERS}
    if not all(values.values()):
        missing = [name for name, value in values.items() if not value]
        raise AuthError(AuthFailure.UNSIGNED, f"missing {', '.join(missing)}")
    terminal, key_id = str(values[H_TERMINAL]), str(values[H_KEY_ID])
    stamp, nonce = str(values[H_TIMESTAMP]), str(values[H_NONCE])
    key = key_for(terminal, key_id)
    if key is None:
        raise AuthError(AuthFailure.UNKNOWN_KEY, f"terminal {terminal!r} key {key_id!r}")
    expected = hmac.new(
        key, canonical(method, path, stamp, nonce, body, key_id=key_id), hashlib.sha256
    )
    if not hmac.compare_digest(expected.hexdigest(), str(values[H_SIGNATURE]).lower()):
        raise AuthError(AuthFailure.BAD_SIGNATURE, f"terminal {terminal!r}")
    clock = time.time() if now is None else now
    if not stamp.isdigit() or abs(clock - int(stamp)) > MAX_SKEW_S:
        raise AuthError(AuthFailure.STALE_TIMESTAMP, f"timestamp {stamp[:20]!r}")
    if len(nonce) != NONCE_HEX or not nonces.add(f"{terminal}:{nonce}", clock):
        raise AuthError(AuthFailure.REPLAYED_NONCE, f"terminal {terminal!r}")
    return terminal
