"""Request signing (sync/auth.py): what a signature covers and every way it is refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from sync.auth import (
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    MAX_SKEW_S,
    AuthError,
    AuthFailure,
    NonceCache,
    canonical,
    sign_request,
    verify_request,
)

KEY = bytes(range(32))
NOW = 1_795_000_000.0


def keys(terminal: str, key_id: str) -> bytes | None:
    return KEY if (terminal, key_id) == ("T-1", "k1") else None


def signed(method: str = "POST", path: str = "/v1/journal/batch", body: bytes = b"{}", **kw):
    return sign_request(
        method, path, body, terminal_id="T-1", key_id="k1", secret=KEY, now=NOW, **kw
    )


def check(headers, *, method="POST", path="/v1/journal/batch", body=b"{}", now=NOW, nonces=None):
    return verify_request(
        method, path, headers, body, key_for=keys, nonces=nonces or NonceCache(), now=now
    )


def test_the_canonical_string_is_six_lines() -> None:
    text = canonical("post", "/v1/deny?since=7", "1795000000", "ab" * 16, b"", key_id="k1")
    empty = hashlib.sha256(b"").hexdigest()
    assert text == f"POST\n/v1/deny?since=7\n1795000000\n{'ab' * 16}\n{empty}\nk1".encode()


def test_a_signed_request_verifies_and_names_its_terminal() -> None:
    headers = signed()
    expected = hmac.new(
        KEY,
        canonical("POST", "/v1/journal/batch", headers[H_TIMESTAMP], headers[H_NONCE], b"{}",
                  key_id="k1"),
        hashlib.sha256,
    ).hexdigest()  # fmt: skip
    assert headers[H_SIGNATURE] == expected
    assert check(headers) == "T-1"


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"drop": H_SIGNATURE}, AuthFailure.UNSIGNED),
        ({"body": b'{"rows": []}'}, AuthFailure.BAD_SIGNATURE),
        ({"path": "/v1/journal/batch?x=1"}, AuthFailure.BAD_SIGNATURE),
        ({"method": "PUT"}, AuthFailure.BAD_SIGNATURE),
        ({"now": NOW + MAX_SKEW_S + 1}, AuthFailure.STALE_TIMESTAMP),
        ({"now": NOW - MAX_SKEW_S - 1}, AuthFailure.STALE_TIMESTAMP),
    ],
)
def test_each_tampering_is_refused_with_its_code(change: dict, failure: AuthFailure) -> None:
    headers = dict(signed())
    if "drop" in change:
        del headers[change["drop"]]
    args = {k: v for k, v in change.items() if k != "drop"}
    with pytest.raises(AuthError) as info:
        check(headers, **args)
    assert info.value.failure == failure


def test_an_unknown_key_and_a_replayed_nonce() -> None:
    other = sign_request(
        "GET", "/v1/time", b"", terminal_id="T-2", key_id="k1", secret=KEY, now=NOW
    )
    with pytest.raises(AuthError) as info:
        check(other, method="GET", path="/v1/time", body=b"")
    assert info.value.failure == AuthFailure.UNKNOWN_KEY
    nonces = NonceCache()
    headers = signed()
    assert check(headers, nonces=nonces) == "T-1"
    with pytest.raises(AuthError) as info:
        check(headers, nonces=nonces)
    assert info.value.failure == AuthFailure.REPLAYED_NONCE


def test_the_nonce_cache_forgets_after_its_window_and_stays_bounded() -> None:
    cache = NonceCache(window_s=10, limit=3)
    assert cache.add("a", 0) and not cache.add("a", 5)
    assert cache.add("a", 11)  # forgotten after the window
    for name in "bcd":
        assert cache.add(name, 12)
    assert cache.add("a", 12)  # the oldest went first to stay within the limit


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sign_request("GET", "/v1/time", b"", terminal_id="T", key_id="k", secret=b"short")
