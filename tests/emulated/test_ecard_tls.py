"""Decoding national e-card codes goes through the terminal's one transport to the platform:
the ``[sync]`` pin or CA file hold for it, a certificate that matches neither never gets the
code (the profile then refuses or defers, and no identity is ever taken from it), and nothing
in the environment — ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``,
``HTTPS_PROXY`` — overrides them. A real TLS server on loopback, certificates made at run time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import World
from tls_support import Certificate, CountingListener, HttpsPlatform, make_ca_and_server

from config.settings import Settings, load_settings
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.errors import SyncConfigError, SyncTlsError
from terminal.ecard_flow import process_code, verifier_from_settings
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

KEY = bytes(range(32))
CODE = "CNSSC" + base64.b32encode(b"tls-test-code-000001").decode()
IDENTITY = {
    "name": "陈静怡",
    "ssn": "440000199003071027",
    "sex": "2",
    "ethnicity": "01",
    "birth_date": "1990-03-07",
}
ENVIRONMENT = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _answer(code: str) -> tuple[int, dict[str, Any]]:
    if code != CODE:
        return 422, {"ok": False, "reason": "unknown_code"}
    return 200, {
        "ok": True,
        "token": "7c1f" * 16,
        "region": "440100",
        "category": "3",
        "not_after": "2030-01-01",
        "identity": IDENTITY,
    }


@dataclass
class Pki:
    ca: Certificate
    server: Certificate
    rogue_ca: Certificate
    rogue: Certificate


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, server = make_ca_and_server(tmp_path, "platform")
    rogue_ca, rogue = make_ca_and_server(tmp_path, "rogue")
    return Pki(ca, server, rogue_ca, rogue)


@pytest.fixture
def https(pki: Pki) -> Iterator[HttpsPlatform]:
    served = HttpsPlatform(pki.server, _answer)
    yield served
    served.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENVIRONMENT, *PROXIES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def settings(folder: Path, url: str, decode_url: str | None = None, **sync: str) -> Settings:
    """The terminal's settings file: [sync] with its key, and the TLS keys given."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "sync.key"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o600)
    lines = [
        '[terminal]\nid = "T-TEST-01"',
        f'[ecard]\ndecode_url = "{decode_url}"' if decode_url else "",
        f'[sync]\nurl = "{url}"\nkey_id = "k1"\nkey_file = "sync.key"',
        *(f'{name} = "{value}"' for name, value in sync.items()),
    ]
    path = folder / "terminal.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_settings(path)


def decide(world: World, config: Settings, profile: str) -> Any:
    return process_code(world.pipeline(profile), verifier_from_settings(config), CODE, room="1")


def test_the_pinned_certificate_decodes(world: World, tmp_path: Path, pki: Pki, https) -> None:
    config = settings(tmp_path, https.url, pinned_cert_sha256=pki.server.sha256)
    decision = decide(world, config, "hotel")
    assert decision.reason == Reason.OK and decision.record["name"] == "陈静怡"
    assert [path for path, _ in https.requests] == ["/v1/ecard/decode"]


def test_another_certificate_than_the_pinned_one_never_gets_the_code(
    world: World, tmp_path: Path, pki: Pki, https
) -> None:
    config = settings(tmp_path, https.url, pinned_cert_sha256=pki.rogue.sha256)
    refused = decide(world, config, "hotel")
    assert refused.reason == Reason.QR_ONLINE_UNAVAILABLE and refused.record is None
    deferred = decide(world, config, "gate")  # the gate defers, with no identity at all
    assert deferred.reason == Reason.QR_DEFERRED and deferred.record is None
    assert https.requests == []  # the TLS handshake failed: not one request was sent


def test_the_ca_file_decides(world: World, tmp_path: Path, pki: Pki, https) -> None:
    other = settings(tmp_path / "b", https.url, ca_file=str(pki.rogue_ca.cert))
    refused = decide(world, other, "hotel")
    assert refused.reason == Reason.QR_ONLINE_UNAVAILABLE and refused.record is None
    assert https.requests == []
    trusted = settings(tmp_path / "a", https.url, ca_file=str(pki.ca.cert))
    assert decide(world, trusted, "hotel").reason == Reason.OK


def test_the_environment_does_not_override_the_ca_file(
    world: World, tmp_path: Path, pki: Pki, https, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENVIRONMENT[:3]:
        monkeypatch.setenv(name, str(pki.ca.cert))  # would make the server trusted
    monkeypatch.setenv("SSL_CERT_DIR", str(pki.ca.cert.parent))
    config = settings(tmp_path, https.url, ca_file=str(pki.rogue_ca.cert))
    refused = decide(world, config, "hotel")
    assert refused.reason == Reason.QR_ONLINE_UNAVAILABLE and refused.record is None
    assert https.requests == []


def test_the_environment_does_not_override_the_pin(
    world: World, tmp_path: Path, pki: Pki, https, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENVIRONMENT[:3]:
        monkeypatch.setenv(name, str(pki.ca.cert))
    config = settings(tmp_path, https.url, pinned_cert_sha256=pki.rogue.sha256)
    assert decide(world, config, "hotel").reason == Reason.QR_ONLINE_UNAVAILABLE
    assert https.requests == []


def test_a_ca_bundle_in_the_environment_trusts_nothing_by_itself(
    world: World, tmp_path: Path, pki: Pki, https, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca.cert))
    config = settings(tmp_path, https.url)  # neither pin nor CA file: the shipped CAs only
    assert decide(world, config, "hotel").reason == Reason.QR_ONLINE_UNAVAILABLE
    assert https.requests == []


def test_a_proxy_in_the_environment_is_not_used(
    world: World, tmp_path: Path, pki: Pki, https, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = CountingListener()
    try:
        for name in PROXIES:
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        config = settings(tmp_path, https.url, pinned_cert_sha256=pki.server.sha256)
        assert decide(world, config, "hotel").reason == Reason.OK
    finally:
        proxy.stop()
    assert proxy.accepted == 0


def test_sync_and_decoding_share_one_transport(
    world: World, tmp_path: Path, pki: Pki, https
) -> None:
    config = settings(tmp_path, https.url, pinned_cert_sha256=pki.rogue.sha256)
    transport = SyncConfig.from_settings(config).transport()
    client = SyncClient(SyncConfig.from_settings(config), world.store, transport=transport)
    verifier = verifier_from_settings(config, transport)
    try:
        assert client.transport is verifier.transport is transport
        with pytest.raises(SyncTlsError):
            client.sync_time()
        decision = process_code(world.pipeline("hotel"), verifier, CODE, room="1")
        assert decision.reason == Reason.QR_ONLINE_UNAVAILABLE
    finally:
        transport.close()
    assert https.requests == []


def test_a_decode_url_of_its_own_is_held_to_the_same_pin(
    world: World, tmp_path: Path, pki: Pki, https
) -> None:
    nowhere = "https://127.0.0.1:9/"  # the sync's URL: nothing listens there
    other = settings(tmp_path / "b", nowhere, https.url, pinned_cert_sha256=pki.rogue.sha256)
    assert decide(world, other, "hotel").reason == Reason.QR_ONLINE_UNAVAILABLE
    assert https.requests == []
    pinned = settings(tmp_path / "a", nowhere, https.url, pinned_cert_sha256=pki.server.sha256)
    assert decide(world, pinned, "hotel").reason == Reason.OK
    assert [path for path, _ in https.requests] == ["/v1/ecard/decode"]


def test_a_pin_or_ca_file_with_plain_http_is_a_configuration_error(
    tmp_path: Path, pki: Pki
) -> None:
    plain = settings(tmp_path / "a", "http://127.0.0.1:9/", pinned_cert_sha256=pki.server.sha256)
    with pytest.raises(SyncConfigError, match=r"need an https:// URL"):
        verifier_from_settings(plain)
    mixed = settings(
        tmp_path / "b", "https://127.0.0.1:9/", "http://127.0.0.1:9/", ca_file=str(pki.ca.cert)
    )
    with pytest.raises(SyncConfigError, match=r"need an https:// URL"):
        verifier_from_settings(mixed)


def test_decoding_without_the_sync_key_is_a_configuration_error(
    tmp_path: Path, https, pki: Pki
) -> None:
    path = tmp_path / "terminal.toml"
    path.write_text(f'[ecard]\ndecode_url = "{https.url}"\n')
    with pytest.raises(Exception, match=r"\[sync\] needs url, key_file, key_id"):
        verifier_from_settings(load_settings(path))
