"""HSM two-step mode over real HTTP on loopback: the reference service
(drivers.virtual.hsm_service) and the client module (drivers.hsm).

Wire strings follow spec §4.4 (Step1: 8 fields each followed by ``|``; pKey:
``<cryptogram 16 hex><original 16 hex>|<external item or empty>|``); the expected cryptograms
are composed here from apdu.crypto primitives.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import requests
from fuzz_support import assert_problem, raw_exchange
from support import GZ_CARD, HZ_CARD, SSF33_CARD

from apdu import crypto
from apdu.sam import (
    AlgorithmNotSupported,
    AuthRequest,
    CardIdentity,
    RkssseMissing,
    SecurityModuleUnavailable,
    hsm_step1,
)
from config.settings import Settings
from drivers.hsm import HsmModule
from drivers.keyfile import RootKeys, load_root_keys, private_copy
from drivers.soft_sam import SoftSam
from drivers.virtual import TEST_KEYS
from drivers.virtual.hsm_service import CARD_AUTH_PATH, HEALTH_PATH, HsmService, HsmServiceError

pytestmark = pytest.mark.emulated

H = bytes.fromhex
TEST_ROOTS = TEST_KEYS / "test-roots.toml"
TOKEN = "test-token-3f9c"

REQUEST_2 = AuthRequest(GZ_CARD, H("1122334455667788"), H("0102030405060708"))
REQUEST_3 = AuthRequest(
    HZ_CARD,
    H("1122334455667788"),
    H("0102030405060708"),
    H("A1A2A3A4A5A6A7A8"),
    H("B1B2B3B4B5B6B7B8"),
)


def _service_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.is_alive() and (t.name == "hsm-service" or "process_request" in t.name)
    ]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> RootKeys:
    """The test roots, loaded as a site would: from a private (0600) copy."""
    return load_root_keys(private_copy(TEST_ROOTS, tmp_path_factory.mktemp("keys") / "r.toml"))


@pytest.fixture
def service(keys: RootKeys) -> Iterator[HsmService]:
    """The reference service on a free loopback port, requiring TOKEN; stopped and joined."""
    hsm = HsmService(keys, port=0, token=TOKEN)
    hsm.start()
    yield hsm
    hsm.stop()
    assert not _service_threads(), "the HSM service left threads behind"


@pytest.fixture
def module(service: HsmService) -> Iterator[HsmModule]:
    """The HSM client pointed at the service."""
    hsm = HsmModule(service.url, timeout=2.0, token=TOKEN)
    yield hsm
    hsm.close()


def post(service: HsmService, body: Any, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(service.url + CARD_AUTH_PATH, data=data, headers=headers, timeout=5)


def composed(
    alg: crypto.Algorithm, root: bytes, card: CardIdentity, random: bytes, orig: bytes
) -> bytes:
    """Auth data from the primitives: 3 levels of diversification, session key, auth data."""
    city = card.city_code
    l2 = city[:4].encode() + b"00sx" if city.startswith("33") else city.encode() + b"sx"
    key = root
    for factor in (city[:2].encode() + b"0000sh", l2, card.historical[5:13]):
        key = crypto.diversify(alg, key, factor)
    return crypto.auth_data(alg, crypto.session_key(alg, key, random), orig)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("request_", [REQUEST_2, REQUEST_3], ids=["2.0-des", "3.0-sm4"])
def test_a_round_trip_gives_exactly_the_software_sams_answer(
    module: HsmModule, keys: RootKeys, request_: AuthRequest
) -> None:
    module.check(request_.card)
    assert module.card == request_.card
    assert module.authenticate(request_) == SoftSam(keys, Settings()).authenticate(request_)


def test_the_connection_is_reused_for_several_authentications(module: HsmModule) -> None:
    first = module.authenticate(REQUEST_2)
    assert module.authenticate(REQUEST_2) == first
    assert module.authenticate(REQUEST_3).external_cryptogram is not None


def test_hsm_mode_has_no_terminal_number(module: HsmModule) -> None:
    assert module.kind == "hsm"
    assert module.terminal_number() == "000000000000"


def test_step1_and_pkey_wire_strings_for_a_fixed_2_0_request(service: HsmService) -> None:
    step1 = hsm_step1(REQUEST_2)
    assert step1 == (
        "440100|00814E43238697440100A1B2C3|01|440100D15600000500A1B2C35E6F7081|"
        "1122334455667788|0102030405060708|||"
    )
    expected = composed(
        crypto.Algorithm.DES,
        H("DEE24E50EF02A14BE9BF852D0C481B75"),
        GZ_CARD,
        H("1122334455667788"),
        H("0102030405060708"),
    )
    answer = post(service, {"step1": step1, "terminal": "T-01"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"pkey": expected.hex().upper() + "0102030405060708||"}


def test_step1_and_pkey_wire_strings_for_a_fixed_3_0_request(service: HsmService) -> None:
    step1 = hsm_step1(REQUEST_3)
    assert step1 == (
        "330100|00814E43238697330104112233|03|330100D15600000504112233FFFFFFFF|"
        "1122334455667788|0102030405060708|A1A2A3A4A5A6A7A8|B1B2B3B4B5B6B7B8|"
    )
    sm4 = crypto.Algorithm.SM4
    internal = composed(
        sm4, H("2984BB6AFD4A4A28D769EB529B9A987C"), HZ_CARD, H("1122334455667788"),
        H("0102030405060708"),
    )  # fmt: skip
    external = composed(
        sm4, H("E04B3B4DC7329326F7495534762AAE9B"), HZ_CARD, H("A1A2A3A4A5A6A7A8"),
        H("B1B2B3B4B5B6B7B8"),
    )  # fmt: skip
    answer = post(service, {"step1": step1})
    assert answer.json() == {
        "pkey": f"{internal.hex().upper()}0102030405060708|"
        f"{external.hex().upper()}B1B2B3B4B5B6B7B8|"
    }


def test_a_trailing_vendor_field_in_step1_is_tolerated(service: HsmService) -> None:
    answer = post(service, {"step1": hsm_step1(REQUEST_2) + "HDOS10011|"})
    assert answer.status_code == 200


# --- refusals ------------------------------------------------------------------------------


def test_a_wrong_token_is_refused_with_401(service: HsmService) -> None:
    module = HsmModule(service.url, timeout=2.0, token="not-the-token")
    try:
        with pytest.raises(SecurityModuleUnavailable, match="HTTP 401") as caught:
            module.authenticate(REQUEST_2)
    finally:
        module.close()
    assert "bearer token" in str(caught.value)
    assert GZ_CARD.card_id.hex().upper() not in str(caught.value)


def test_requests_without_the_token_get_401(service: HsmService) -> None:
    answer = post(service, {"step1": hsm_step1(REQUEST_2)}, token=None)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "pkey" not in answer.json()


@pytest.mark.parametrize(
    "body",
    [
        {"step1": "440100|00814E43|01|"},  # too few fields
        {"step1": hsm_step1(REQUEST_2).replace("|01|", "|07|")},  # no such algorithm
        {"step1": hsm_step1(REQUEST_2)[:-1]},  # not |-terminated
        {"step1": hsm_step1(REQUEST_2).replace("440100|", "440200|", 1)},  # region ≠ 卡识别码
        {"step1": hsm_step1(REQUEST_2).replace("00814E43238697440100A1B2C3", "0081")},  # short
        {"step1": 42},
        {"step1": hsm_step1(REQUEST_2), "extra": 1},
        {"step1": hsm_step1(REQUEST_2), "terminal": 7},
        {"terminal": "T-01"},
        ["not", "an", "object"],
        b"{not json",
        b"\xff\xfe",
    ],
    ids=[
        "few-fields",
        "algorithm",
        "unterminated",
        "region",
        "short-historical",
        "step1-not-string",
        "unknown-field",
        "terminal-not-string",
        "no-step1",
        "array",
        "bad-json",
        "not-utf8",
    ],
)
def test_malformed_requests_get_400_with_code_minus_23(service: HsmService, body: Any) -> None:
    answer = post(service, body)
    assert answer.status_code == 400
    document = answer.json()
    assert document["code"] == -23
    assert isinstance(document["error"], str) and document["error"]


STEP1_2 = hsm_step1(REQUEST_2).split("|")  # city, historical, alg, card id, 4 challenges, ""
STEP1_3 = hsm_step1(REQUEST_3).split("|")


def odd(fields: list[str], index: int) -> str:
    """The Step1 string with one hex field cut by one digit."""
    changed = list(fields)
    changed[index] = changed[index][:-1]
    return "|".join(changed)


@pytest.mark.parametrize(
    "step1",
    [
        odd(STEP1_2, 1),
        odd(STEP1_2, 3),
        odd(STEP1_2, 4),
        odd(STEP1_2, 5),
        odd(STEP1_3, 6),
        odd(STEP1_3, 7),
        "|".join([*STEP1_2[:4], "1122334455667788" + "0", *STEP1_2[5:]]),
    ],
    ids=["historical", "card-id", "int-factor", "int-original", "ext-factor", "ext-original",
         "17-digits"],
)  # fmt: skip
def test_a_hex_field_of_odd_length_is_400_minus_23(service: HsmService, step1: str) -> None:
    """parse_hsm_step1 let bytes.fromhex raise ValueError: a 500 (issue 10 finding 6)."""
    answer = post(service, {"step1": step1})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == -23 and "hex digits" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 8000 + b"]" * 8000, 400),  # 16 000 B: under the limit, far too deep
        (b'{"step1": ' * 1000 + b"1" + b"}" * 1000, 400),
        (b"[" * 30_000 + b"]" * 30_000, 413),  # the 60 KB of the finding: over the limit
        (b'{"step1": "\\ud800|"}', 400),
        (b'{"step1": "a", "terminal": "\\udfff"}', 400),
        (b'{"step1": 1e999}', 400),
    ],
    ids=["deep-array", "deep-object", "deep-60kb", "surrogate", "surrogate-terminal", "inf"],
)
def test_deep_or_broken_json_is_refused_with_a_problem_document(
    service: HsmService, body: bytes, status: int
) -> None:
    answer = post(service, body)
    assert answer.status_code == status, answer.text[:200]
    assert answer.headers["content-type"] == "application/problem+json"
    document = answer.json()
    assert document["status"] == status and document["detail"] == document["error"]


def raw(service: HsmService, data: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    return raw_exchange(host, int(port), data)


@pytest.mark.parametrize(
    ("length", "status"),
    [(b"\xb2", 400), (b"1\xb2", 400), (b"\xd9\xa3", 400), (b"-5", 400), (b"9" * 30, 413),
     (b"99999", 413)],
    ids=["superscript", "digit-superscript", "arabic-indic", "negative", "30-digits", "large"],
)  # fmt: skip
def test_a_content_length_off_its_format_is_refused(
    service: HsmService, length: bytes, status: int
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises: this answered 500."""
    answer = raw(
        service,
        b"POST /v1/hsm/card-auth HTTP/1.1\r\nHost: hsm\r\nContent-Length: " + length
        + b"\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n{}",
    )  # fmt: skip
    document = assert_problem(*_problem_parts(answer))
    assert answer[0] == status
    if status == 400:
        assert document["code"] == -23


def _problem_parts(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str, bytes]:
    status, headers, body = answer
    return status, headers.get("content-type", ""), body


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"BREW /v1/hsm/card-auth HTTP/1.1", 405),  # the stdlib answered 501 in HTML
        (b"BREW /nowhere HTTP/1.1", 404),
        (b"GET /v1/health HTTP/1.\xb2", 400),
        (b"GET /v1/health HTTP/x", 400),
        (b"GET  /a b c HTTP/1.1", 400),
        (b"POST /v1/hsm/card-auth", 400),  # an HTTP/0.9 POST
    ],
)
def test_requests_the_stdlib_refuses_are_problem_documents_too(
    service: HsmService, request_line: bytes, status: int
) -> None:
    answer = raw(service, request_line + b"\r\nHost: hsm\r\nContent-Length: 0\r\n\r\n")
    assert answer[0] == status
    assert_problem(*_problem_parts(answer))


def test_an_http_2_request_line_is_505_as_a_problem_document(service: HsmService) -> None:
    status, headers, body = raw(service, b"GET /v1/health HTTP/2.0\r\nHost: hsm\r\n\r\n")
    assert status == 505 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 505


def test_a_newline_in_the_path_and_esc_in_the_terminal_stay_on_one_quoted_line(
    service: HsmService, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="drivers.virtual.hsm_service"):
        raw(service, b"GET /v1/\x1b[2J\x1b[31mforged HTTP/1.1\r\nHost: hsm\r\n\r\n")
        post(service, {"step1": "garbage|", "terminal": "T1\x1b[31m\x1b]0;owned\x07\n"})
    lines = [r.getMessage() for r in caplog.records if r.name == "drivers.virtual.hsm_service"]
    assert len(lines) == 2
    assert 'path="/v1/\\x1b[2J\\x1b[31mforged"' in lines[0]
    assert 'terminal="T1\\x1b[31m\\x1b]0;owned\\x07\\n"' in lines[1]
    assert all(line.isprintable() for line in lines)


def test_an_unexpected_failure_is_a_bare_500_problem_without_its_trace(
    service: HsmService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    message = "forged\nERROR root key " + "-".join(["0123", "4567"])  # frames show source

    def broken(keys: RootKeys, payload: bytes) -> None:
        raise RuntimeError(message)

    monkeypatch.setattr("drivers.virtual.hsm_service.card_auth", broken)
    with caplog.at_level(logging.INFO, logger="drivers.virtual.hsm_service"):
        answer = post(service, {"step1": hsm_step1(REQUEST_2)})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "internal error"
    assert "0123-4567" not in answer.text and "Traceback" not in answer.text
    records = [r for r in caplog.records if r.name == "drivers.virtual.hsm_service"]
    [failed] = [r for r in records if "event=hsm_request_failed" in r.getMessage()]
    assert "error=RuntimeError" in failed.getMessage() and failed.exc_info is None
    for record in records:
        assert "0123-4567" not in record.getMessage() and record.getMessage().isprintable()


def test_ssf33_maps_back_to_algorithm_not_supported(module: HsmModule) -> None:
    request = AuthRequest(SSF33_CARD, REQUEST_2.internal_factor, REQUEST_2.internal_original)
    module.check(SSF33_CARD)  # the HSM decides, not the client
    with pytest.raises(AlgorithmNotSupported, match="PSAM or an HSM") as caught:
        module.authenticate(request)
    assert caught.value.code == -2202


def test_the_service_answers_422_with_the_national_code(service: HsmService) -> None:
    request = AuthRequest(SSF33_CARD, REQUEST_2.internal_factor, REQUEST_2.internal_original)
    answer = post(service, {"step1": hsm_step1(request)})
    assert answer.status_code == 422
    assert answer.json()["code"] == -2202


def test_missing_rkssse_maps_back_to_rkssse_missing(keys: RootKeys) -> None:
    irk_only = RootKeys(dict(keys.irk), source="irk-only")
    with HsmService(irk_only) as service:
        module = HsmModule(service.url, timeout=2.0)
        try:
            assert module.authenticate(REQUEST_2).external_cryptogram is None
            with pytest.raises(RkssseMissing) as caught:
                module.authenticate(REQUEST_3)
        finally:
            module.close()
    assert caught.value.code == -2203


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", CARD_AUTH_PATH, 405),
        ("PUT", CARD_AUTH_PATH, 405),
        ("POST", HEALTH_PATH, 405),
        ("DELETE", HEALTH_PATH, 405),
        ("POST", "/v1/hsm/other", 404),
        ("GET", "/", 404),
    ],
)
def test_other_paths_and_methods_get_404_or_405(
    service: HsmService, method: str, path: str, status: int
) -> None:
    answer = requests.request(method, service.url + path, timeout=5, data=b"{}")
    assert answer.status_code == status
    assert "error" in answer.json()


def test_health_needs_no_token(service: HsmService) -> None:
    answer = requests.get(service.url + HEALTH_PATH, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_an_oversized_body_gets_413(service: HsmService) -> None:
    answer = post(service, {"step1": "x" * 20000})
    assert answer.status_code == 413


# --- failures of the service ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_service_that_is_down_is_unavailable_within_the_timeout() -> None:
    module = HsmModule(f"http://127.0.0.1:{_closed_port()}", timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(SecurityModuleUnavailable, match="cannot be reached"):
            module.authenticate(REQUEST_2)
    finally:
        module.close()
    assert time.monotonic() - started < 1.0


def test_a_service_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        module = HsmModule(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(SecurityModuleUnavailable, match=r"did not answer within 0\.3 s"):
                module.authenticate(REQUEST_2)
        finally:
            module.close()
        assert time.monotonic() - started < 2.0


class _Scripted(BaseHTTPRequestHandler):
    """Answers every POST with the status and body the test put on the server."""

    server: Any

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts += 1
        status, body = self.server.reply
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[HTTPServer]:
    """A stand-in service whose answer each test scripts."""
    server = HTTPServer(("127.0.0.1", 0), _Scripted)
    server.posts = 0  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, name="scripted-hsm", kwargs={"poll_interval": 0.05}
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b'{"error": "HSM B0A5 failed"}', "HTTP 500: HSM B0A5 failed"),
        (503, b"<html>busy</html>", "HTTP 503: no error text"),
        (422, b'{"error": "odd", "code": -9}', "HTTP 422: odd"),
        (422, b'{"error": "odd", "code": [1]}', "HTTP 422: odd"),
        (200, b"<html>", "not JSON"),
        (200, b'{"pkey": 5}', "no pkey string"),
        (200, b'{"pkey": "00|"}', "does not fit"),
        (200, b'{"pkey": "11111111111111110000000000000000||"}', "another INTERNAL"),
        (200, b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # RecursionError escaped
        (422, b"[" * 100_000 + b"]" * 100_000, "HTTP 422: no error text"),
        (200, b'{"pkey": "' + b"0" * 31 + b'||"}', "does not fit"),  # odd hex: ValueError
    ],
)
def test_answers_that_are_not_a_pkey_for_this_request_are_unavailable(
    scripted: Any, status: int, body: bytes, message: str
) -> None:
    scripted.reply = (status, body)
    module = HsmModule(f"http://127.0.0.1:{scripted.server_address[1]}/", timeout=2.0)
    try:
        with pytest.raises(SecurityModuleUnavailable, match=message):
            module.authenticate(REQUEST_2)
    finally:
        module.close()
    assert scripted.posts == 1  # never retried: new challenges would be needed


# --- the service itself ----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "hsm.example"])
def test_the_service_refuses_a_non_loopback_bind_without_the_flag(
    keys: RootKeys, host: str
) -> None:
    with pytest.raises(HsmServiceError, match="allow_remote"):
        HsmService(keys, host=host)


def test_the_flag_allows_a_non_loopback_bind(keys: RootKeys) -> None:
    HsmService(keys, host="0.0.0.0", allow_remote=True)  # constructed; not started


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_loopback_addresses_are_accepted(keys: RootKeys, host: str) -> None:
    HsmService(keys, host=host)


def test_the_service_serves_on_ipv6_loopback(keys: RootKeys) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        service = HsmService(keys, host="::1")
        url = service.start()
    except HsmServiceError:
        pytest.skip("IPv6 loopback unavailable")
    try:
        assert url.startswith("http://[::1]:")
        assert requests.get(url + HEALTH_PATH, timeout=5).json() == {"status": "ok"}
    finally:
        service.stop()


def test_an_empty_token_is_refused(keys: RootKeys) -> None:
    with pytest.raises(HsmServiceError, match="empty"):
        HsmService(keys, token="")


def test_the_url_needs_a_started_service_and_stop_is_idempotent(keys: RootKeys) -> None:
    service = HsmService(keys)
    with pytest.raises(HsmServiceError, match="not started"):
        _ = service.url
    service.start()
    with pytest.raises(HsmServiceError, match="already started"):
        service.start()
    service.stop()
    service.stop()
    assert not _service_threads()


def test_stop_closes_idle_keep_alive_connections(keys: RootKeys) -> None:
    service = HsmService(keys)
    module = HsmModule(service.start(), timeout=2.0)
    try:
        module.authenticate(REQUEST_2)  # leaves a keep-alive connection open
        started = time.monotonic()
        service.stop()
        assert time.monotonic() - started < 2.0
        assert not _service_threads()
    finally:
        module.close()


def test_one_log_line_per_request_with_the_card_masked(
    service: HsmService, module: HsmModule, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="drivers.virtual.hsm_service"):
        module.authenticate(REQUEST_3)
        post(service, {"step1": "garbage|"})
    lines = [r.getMessage() for r in caplog.records if r.name == "drivers.virtual.hsm_service"]
    assert len(lines) == 2
    ok, bad = lines
    assert "event=hsm_request" in ok and "status=200" in ok and "card=330100…" in ok
    assert "status=400" in bad and "card=-" in bad
    text = "\n".join(lines)
    for secret in (HZ_CARD.card_id.hex().upper(), "A1A2A3A4A5A6A7A8", TOKEN):
        assert secret not in text


def test_credentials_in_the_url_stay_out_of_messages() -> None:
    module = HsmModule(f"http://user:secret@127.0.0.1:{_closed_port()}/", timeout=1.0)
    try:
        with pytest.raises(SecurityModuleUnavailable) as caught:
            module.authenticate(REQUEST_2)
    finally:
        module.close()
    assert "secret" not in str(caught.value)
    assert "http://127.0.0.1:" in str(caught.value)
