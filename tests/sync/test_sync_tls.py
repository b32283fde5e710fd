"""TLS between the sync client and the platform: a pinned certificate digest, checked on every
connection, or a CA file; a certificate that matches neither is refused at once, never retried.

The first tests use a small HTTPS server of their own (to count connections); the last one
runs the whole sync against ``sscard platform serve --tls-cert``. Certificates are made at test
time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sync_support import PlatformProcess, fill_journal, register

from offline_store import Store
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.errors import SyncTlsError
from sync.transport import Credentials, RetryPolicy

pytestmark = pytest.mark.e2e


def make_certificate(folder: Path, name: str) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1: (cert PEM, key PEM, SHA-256 of the DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return cert_path, key_path, digest


class _Server(ThreadingHTTPServer):
    """Counts the TCP connections it accepts (a handshake that fails still counts)."""

    accepted = 0
    failed = 0

    def get_request(self) -> tuple[object, object]:
        self.accepted += 1
        return super().get_request()

    def handle_error(self, request: object, client_address: object) -> None:
        self.failed += 1  # a handshake the client broke off: expected, not printed


class _TimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"server_time": 1_800_000_000.0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[str, Path, str, _Server]]:
    cert, key, digest = make_certificate(tmp_path, "platform")
    server = _Server(("127.0.0.1", 0), _TimeHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # the handshake happens in the handler's thread, so a failed one does not stop the server
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, name="https-test", daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", cert, digest, server
    server.shutdown()
    server.server_close()
    thread.join(5)


def client(tmp_path: Path, url: str, **tls: object) -> SyncClient:
    store = Store.open(tmp_path / "store.db")
    config = SyncConfig(url=url, credentials=Credentials("T1", "k1", bytes(32)), **tls)  # type: ignore[arg-type]
    return SyncClient(config, store, policy=RetryPolicy(attempts=4, base_s=0.01))


def test_a_pinned_certificate_is_accepted_and_checked_on_every_connection(
    tmp_path: Path, https: tuple[str, Path, str, _Server]
) -> None:
    url, _, digest, server = https
    sync = client(tmp_path, url, pinned_cert_sha256=digest)
    try:
        assert sync.sync_time().server_time == 1_800_000_000.0
        sync.transport.session.close()  # drop the pooled connection: a new one is checked
        assert sync.sync_time().server_time == 1_800_000_000.0
        assert server.accepted == 2
    finally:
        sync.close()
        sync.store.close()


def test_another_certificate_than_the_pinned_one_is_refused_without_retrying(
    tmp_path: Path, https: tuple[str, Path, str, _Server]
) -> None:
    url, _, _, server = https
    sync = client(tmp_path, url, pinned_cert_sha256=hashlib.sha256(b"another").hexdigest())
    try:
        with pytest.raises(SyncTlsError, match="Fingerprints did not match"):
            sync.sync_time()
        assert server.accepted == 1  # not retried
    finally:
        sync.close()
        sync.store.close()


def test_a_ca_file_is_used_when_given_and_the_system_cas_do_not_know_the_test_ca(
    tmp_path: Path, https: tuple[str, Path, str, _Server]
) -> None:
    url, cert, _, _ = https
    trusted = client(tmp_path / "a", url, ca_file=cert)
    try:
        assert trusted.sync_time().server_time == 1_800_000_000.0
    finally:
        trusted.close()
        trusted.store.close()
    untrusted = client(tmp_path / "b", url)
    try:
        with pytest.raises(SyncTlsError, match="certificate verify failed"):
            untrusted.sync_time()
    finally:
        untrusted.close()
        untrusted.store.close()


def test_a_whole_sync_with_the_reference_platform_over_pinned_tls(tmp_path: Path) -> None:
    cert, key, digest = make_certificate(tmp_path, "reference")
    platform = PlatformProcess(tmp_path / "platform")
    platform.init()
    platform.start("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        url = platform.url.replace("http://", "https://")
        terminal = register(platform, tmp_path / "terminal", "440100-T0001")
        terminal.write_settings(url, pinned_cert_sha256=f'"{digest}"')
        fill_journal(terminal.store_path, 50, "440100-T0001")
        done = terminal.sync_once()
        assert done.returncode == 0, done.stdout + done.stderr
        assert "50 rows acknowledged" in done.stdout
        terminal.write_settings(url, pinned_cert_sha256=f'"{hashlib.sha256(b"x").hexdigest()}"')
        refused = terminal.sync_once()
        assert refused.returncode == 2
        assert "certificate was refused" in refused.stdout
    finally:
        platform.stop()
