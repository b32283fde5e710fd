"""Request signing (sync/auth.py): what a signature covers and every way it is refused."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tracemalloc

import pytest

from sync.auth import (
    H_KEY_ID,
    H_NONCE,
    H_SIGNATURE,
    H_TERMINAL,
    H_TIMESTAMP,
    MAX_SKEW_S,
    AuthError,
    AuthFailure,
    Credentials,
    NonceCache,
    NonceLimit,
    canonical,
    verify_request,
)

KEY = bytes(range(32))
NOW = 1_795_000_000.0


def keys(terminal: str, key_id: str) -> bytes | None:
    return KEY if (terminal, key_id) == ("T-1", "k1") else None


def signed(method: str = "POST", path: str = "/v1/journal/batch", body: bytes = b"{}", **kw):
    return Credentials("T-1", "k1", KEY).sign(method, path, body, now=NOW, **kw)


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
    other = Credentials("T-2", "k1", KEY).sign("GET", "/v1/time", b"", now=NOW)
    with pytest.raises(AuthError) as info:
        check(other, method="GET", path="/v1/time", body=b"")
    assert info.value.failure == AuthFailure.UNKNOWN_KEY
    nonces = NonceCache()
    headers = signed()
    assert check(headers, nonces=nonces) == "T-1"
    with pytest.raises(AuthError) as info:
        check(headers, nonces=nonces)
    assert info.value.failure == AuthFailure.REPLAYED_NONCE


def test_a_nonce_is_kept_until_its_timestamp_expires() -> None:
    cache = NonceCache()
    assert cache.remember("T1", "ab" * 16, 1000, now=900)
    assert not cache.remember("T1", "ab" * 16, 1000, now=1000)  # 1000 is still accepted
    assert cache.remember("T2", "ab" * 16, 1000, now=1000)  # another terminal's nonce
    assert cache.remember("T1", "ab" * 16, 1400, now=1001)  # its timestamp is over


def test_one_terminal_cannot_push_another_terminals_nonces_out() -> None:
    """The old cache was one pool of 10^6: a terminal sending that many requests flushed
    everybody's nonces, whose requests could then be replayed (issue 10 finding 8)."""
    cache = NonceCache(per_terminal=3)
    assert cache.remember("victim", "01" * 16, 1300, now=1000)
    for n in range(3):
        assert cache.remember("flood", f"{n:032x}", 1300, now=1000)
    with pytest.raises(NonceLimit) as info:
        cache.remember("flood", "ff" * 16, 1300, now=1000)
    assert info.value.retry_after_s == 301 and not info.value.whole
    assert not cache.remember("victim", "01" * 16, 1300, now=1000)  # still refused
    assert not cache.remember("flood", f"{0:032x}", 1300, now=1000)  # nothing was evicted
    assert cache.remember("flood", "ff" * 16, 1700, now=1301)  # room once they expired
    assert cache.size == 1  # the expired ones are gone, the victim's too


def test_the_whole_cache_is_bounded_too() -> None:
    cache = NonceCache(per_terminal=10, limit=4)
    for n in range(4):
        assert cache.remember(f"T{n}", "ab" * 16, 1300, now=1000)
    with pytest.raises(NonceLimit) as info:
        cache.remember("T9", "ab" * 16, 1300, now=1000)
    assert info.value.whole
    assert cache.remember("T9", "ab" * 16, 1700, now=1301)


def test_a_remembered_nonce_costs_about_120_bytes() -> None:
    """docs/sync.md §10 states the figure; the single pool of "terminal:nonce" strings with
    float times it replaced cost about 220 bytes a nonce."""
    nonces = [secrets.token_hex(16) for _ in range(20_000)]
    tracemalloc.start()
    try:
        cache = NonceCache(per_terminal=len(nonces))
        for n, nonce in enumerate(nonces):
            cache.remember("440100-T0001", nonce, 1_795_000_300 + n % 600, now=NOW)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used / len(nonces) < 140


@pytest.mark.parametrize(
    ("header", "value", "failure"),
    [
        (H_TIMESTAMP, "²", AuthFailure.STALE_TIMESTAMP),  # isdigit() but not int() (finding 6)
        (H_TIMESTAMP, "١٧٩٥٠٠٠٠٠٠", AuthFailure.STALE_TIMESTAMP),  # Arabic-Indic digits
        (H_TIMESTAMP, "9" * 5000, AuthFailure.STALE_TIMESTAMP),  # int() refuses 4300+ digits
        (H_TIMESTAMP, " 1795000000", AuthFailure.STALE_TIMESTAMP),
        (H_NONCE, "AB" * 16, AuthFailure.REPLAYED_NONCE),  # upper case
        (H_NONCE, "ab" * 15, AuthFailure.REPLAYED_NONCE),
        (H_NONCE, "ab" * 17, AuthFailure.REPLAYED_NONCE),
        (H_NONCE, "xy" * 16, AuthFailure.REPLAYED_NONCE),
    ],
)
def test_a_signed_header_off_its_format_is_refused(
    header: str, value: str, failure: AuthFailure
) -> None:
    """Signed correctly over the odd value, so only its format can refuse it."""
    headers = dict(signed())
    headers[header] = value
    text = canonical(
        "POST", "/v1/journal/batch", headers[H_TIMESTAMP], headers[H_NONCE], b"{}", key_id="k1"
    )
    headers[H_SIGNATURE] = hmac.new(KEY, text, hashlib.sha256).hexdigest()
    with pytest.raises(AuthError) as info:
        check(headers)
    assert info.value.failure == failure


@pytest.mark.parametrize("signature", ["é" * 64, "g" * 64, "ab", "ａ" * 64])
def test_a_signature_that_is_not_hex_is_a_bad_signature(signature: str) -> None:
    """hmac.compare_digest raised TypeError on a str holding non-ASCII characters."""
    headers = {**signed(), H_SIGNATURE: signature}
    with pytest.raises(AuthError) as info:
        check(headers)
    assert info.value.failure == AuthFailure.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("header", "value"), [(H_TERMINAL, "T-1\x00"), (H_TERMINAL, "T" * 33), (H_KEY_ID, "k\n1")]
)
def test_ids_off_their_format_are_unknown_without_a_lookup(header: str, value: str) -> None:
    looked_up: list[tuple[str, str]] = []

    def key_for(terminal: str, key_id: str) -> bytes | None:
        looked_up.append((terminal, key_id))
        return KEY

    headers = {**signed(), header: value}
    with pytest.raises(AuthError) as info:
        verify_request(
            "POST", "/v1/journal/batch", headers, b"{}", key_for=key_for, nonces=NonceCache(),
            now=NOW,
        )  # fmt: skip
    assert info.value.failure == AuthFailure.UNKNOWN_KEY
    assert looked_up == []
    assert "\n" not in str(info.value) and "\x00" not in str(info.value)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Credentials("T", "k", b"short").sign("GET", "/v1/time", b"")
