"""The repository's TEST KEYS are known by fingerprint, and a production terminal refuses them
wherever a key is loaded: the pinned trust root, the keys on a trust list, the audience keys
(issue 10, finding 5). A development terminal takes them."""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from config.settings import Settings
from config.settings_file import EcardTable
from drivers.virtual import TEST_KEYS as VIRTUAL_TEST_KEYS
from ecard import Alg, PrivateKey, TrustListError, parse_trust_list
from ecard.keys import load_private_key, load_public_key
from ecard.testkeys import (
    TEST_KEYS,
    RefusedTestKey,
    fingerprint,
    known_test_key,
    marked_test_key,
    public_key_der,
    refuse_test_key,
)
from ecard.trust import make_trust_list
from offline_store import Store
from sync.client import SyncClient
from sync.config import SecretFiles, SyncConfig
from sync.errors import SyncUnreachable
from sync.transport import Credentials, RetryPolicy
from terminal.ecard_flow import load_audience_keys, verifier_from_settings

TESTS = Path(__file__).resolve().parents[1]
KEYS = VIRTUAL_TEST_KEYS
KEY_FOLDERS = (KEYS, TESTS / "vectors" / "qr" / "keys")
ROOT = load_private_key((KEYS / "qr-root-test.pem").read_bytes())
PLATFORM = load_private_key((KEYS / "qr-platform-es256-test.pem").read_bytes())
HOTEL = bytes.fromhex((KEYS / "qr-audience-hotel-test.key").read_text().strip())
NOW = time.time()


def _material(path: Path) -> list[bytes]:
    """What the registry hashes for one key file."""
    data = path.read_bytes()
    if path.suffix == ".pem":
        if b"PRIVATE KEY" in data:
            return [load_private_key(data).public_key.spki]
        return [load_public_key(data).spki]
    if path.suffix == ".key":
        return [bytes.fromhex(data.decode().strip())]
    document = tomllib.loads(data.decode())
    return [
        bytes.fromhex(value)
        for table in ("des", "sm4", "transit")
        for value in document.get(table, {}).values()
        if isinstance(value, str)  # [transit] key_version is a number, not a key
    ]


def test_every_key_the_repository_ships_is_listed() -> None:
    files = sorted(
        p for folder in KEY_FOLDERS for p in folder.iterdir() if p.is_file() and p.suffix != ".md"
    )
    files.append(TESTS / "vectors" / "qr" / "root-public.pem")
    assert len(files) >= 14
    found: set[str] = set()
    for path in files:
        for material in _material(path):
            assert known_test_key(material) is not None, f"{path} is not in ecard.testkeys"
            found.add(fingerprint(material))
    assert found == set(TEST_KEYS)  # and nothing listed that is not a test key


def test_a_fresh_key_is_not_a_test_key() -> None:
    assert known_test_key(PrivateKey.generate(Alg.ES256).public_key.spki) is None
    assert known_test_key(os.urandom(32)) is None
    refuse_test_key(os.urandom(32), "a fresh key", production=True)  # no error


def test_a_test_key_is_refused_in_production_only() -> None:
    refuse_test_key(ROOT.public_key.spki, "the root", production=False)
    with pytest.raises(
        RefusedTestKey, match=r"the root is the public TEST KEY drivers/virtual/test_keys/qr-root"
    ):
        refuse_test_key(ROOT.public_key.spki, "the root", production=True)
    with pytest.raises(RefusedTestKey, match="production = true refuses test keys"):
        refuse_test_key(HOTEL, "audience key hotel-test", production=True)


def test_a_key_file_that_says_test_key_is_refused_too() -> None:
    fresh = PrivateKey.generate(Alg.ES256).public_key
    labelled = b"# TEST KEY made for a lab, never deploy\n" + fresh.to_pem()
    assert marked_test_key(labelled) and not marked_test_key(fresh.to_pem())
    assert public_key_der(labelled) == fresh.spki
    with pytest.raises(RefusedTestKey, match="marked TEST KEY in its file"):
        refuse_test_key(fresh.spki, "the root", production=True, text=labelled)


def test_the_comment_is_not_needed_the_fingerprint_is_the_mark() -> None:
    bare = ROOT.public_key.to_pem()  # the public half, copied without its "# TEST KEY" line
    assert not marked_test_key(bare)
    with pytest.raises(TrustListError, match="pinned trust root is the public TEST KEY"):
        parse_trust_list(_list(ROOT, [PLATFORM.public_key]), bare, NOW, production=True)


def _list(root: PrivateKey, keys: list) -> bytes:
    return make_trust_list(keys, root, 1, int(NOW) - 60, int(NOW) + 86_400)


def test_a_trust_list_under_the_test_root_is_refused_in_production() -> None:
    data = _list(ROOT, [PLATFORM.public_key])
    pem = ROOT.public_key.to_pem()
    assert parse_trust_list(data, pem, NOW).version == 1  # development: fine
    with pytest.raises(
        TrustListError, match=r"TEST KEY drivers/virtual/test_keys/qr-root-test\.pem"
    ):
        parse_trust_list(data, pem, NOW, production=True)


def test_a_test_key_on_a_production_trust_list_is_refused() -> None:
    root = PrivateKey.generate(Alg.ES256)
    fresh = PrivateKey.generate(Alg.SM2).public_key
    good = _list(root, [fresh])
    assert parse_trust_list(good, root.public_key.to_pem(), NOW, production=True).keys
    bad = _list(root, [fresh, PLATFORM.public_key])
    with pytest.raises(TrustListError, match=r"qr-platform-es256-test\.pem"):
        parse_trust_list(bad, root.public_key.to_pem(), NOW, production=True)


def _audience_file(folder: Path, key: bytes) -> Path:
    path = folder / "audience.keys"
    path.write_text(f'hotel = "{key.hex()}"\n')
    path.chmod(0o600)
    return path


def test_the_test_audience_key_is_refused_in_production(tmp_path: Path) -> None:
    path = _audience_file(tmp_path, HOTEL)
    assert load_audience_keys(path) == {"hotel": HOTEL}
    with pytest.raises(RefusedTestKey, match=r"audience key hotel in .* TEST KEY"):
        load_audience_keys(path, production=True)
    fresh = os.urandom(32)
    assert load_audience_keys(_audience_file(tmp_path, fresh), production=True) == {"hotel": fresh}


def test_a_production_terminal_refuses_the_test_root_before_reading_any_code(
    tmp_path: Path,
) -> None:
    root = tmp_path / "qr-root.pem"
    root.write_bytes(ROOT.public_key.to_pem())
    pinned = EcardTable(trust_root_key=str(root))
    assert verifier_from_settings(Settings(ecard=pinned)).root_key_pem is not None
    with pytest.raises(RefusedTestKey, match=r"\[ecard\] trust_root_key .* TEST KEY"):
        verifier_from_settings(Settings(production=True, ecard=pinned))
    audience = EcardTable(audience_keys=str(_audience_file(tmp_path, HOTEL)))
    with pytest.raises(RefusedTestKey, match="audience key hotel"):
        verifier_from_settings(Settings(production=True, ecard=audience))


def test_a_production_sync_refuses_a_deny_key_marked_test_before_any_request(
    tmp_path: Path,
) -> None:
    public = Ed25519PrivateKey.generate().public_key()
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    deny = tmp_path / "deny.pem"
    deny.write_bytes(b"# TEST KEY: signs the lab's deny lists\n" + pem)
    credentials = Credentials("T1", "k1", bytes(32))
    offline = "http://127.0.0.1:9/"  # nothing listens on the discard port
    once = RetryPolicy(attempts=1)
    with Store.open(tmp_path / "store.db") as store:
        keys = SecretFiles(deny_public_key=deny)
        config = SyncConfig(offline, credentials, secret_files=keys, production=True)
        refused = pytest.raises(RefusedTestKey, match=r"deny_public_key .* marked TEST KEY")
        with SyncClient(config, store, policy=once) as client, refused:
            client.update_deny()  # refused before any request
        config = SyncConfig(offline, credentials, secret_files=keys)  # development
        with SyncClient(config, store, policy=once) as client, pytest.raises(SyncUnreachable):
            client.update_deny()  # the key was taken: the request went out
