"""Unit tests of the sync client's pure parts: back-off and Retry-After, the clock offset at
the round trip's midpoint, the secrets document, atomic private files, the answers it checks,
the exit status of a report and the terminal key file."""

from __future__ import annotations

import base64
import email.utils
import json
import os
import random
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import parse_settings
from sync.answers import batch_answer, deny_signature, server_time
from sync.config import SyncConfig, load_terminal_key
from sync.errors import SyncConfigError, SyncProtocolError
from sync.provisioning import (
    audience_keys_toml,
    open_secrets,
    secrets_key,
    write_private_file,
)
from sync.reports import StepStatus, SyncReport, TimeReport
from sync.transport import Exchange, RetryPolicy, _retry_after

KEY = bytes(range(32))
TERMINAL = "440100-T0001"


def exchange(body: object, *, sent_at: float = 1000.0, rtt_s: float = 0.2) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(200, {}, raw, sent_at, rtt_s, 1)


# --- back-off --------------------------------------------------------------------------------


def test_full_jitter_stays_under_the_exponential_cap() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=8.0)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # the whole range is used, not a fixed delay


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert _retry_after("7", 0.0) == 7.0
    assert _retry_after(" 0 ", 0.0) == 0.0
    date = email.utils.formatdate(1_800_000_030, usegmt=True)
    assert _retry_after(date, 1_800_000_000.0) == pytest.approx(30.0)
    assert _retry_after(date, 1_800_000_100.0) == 0.0  # already past
    assert _retry_after(None, 0.0) is None
    assert _retry_after("soon", 0.0) is None


# --- the clock -------------------------------------------------------------------------------


def test_the_offset_is_taken_at_the_round_trips_midpoint() -> None:
    # sent at local 1000.0, answered 0.4 s later: the server read its clock at local 1000.2
    answer = exchange({"server_time": 1010.2}, sent_at=1000.0, rtt_s=0.4)
    assert answer.midpoint == pytest.approx(1000.2)
    report = TimeReport(1010.2, 1010.2 - answer.midpoint, answer.rtt_s, limit_s=120.0)
    assert report.offset_s == pytest.approx(10.0)
    assert not report.alarm


@pytest.mark.parametrize(("offset", "alarm"), [(120.0, False), (120.5, True), (-121.0, True)])
def test_an_offset_beyond_the_limit_is_an_alarm_either_way(offset: float, alarm: bool) -> None:
    assert TimeReport(0.0, offset, 0.01, limit_s=120.0).alarm is alarm


def test_the_server_time_must_be_a_number() -> None:
    assert server_time(exchange({"server_time": 5})) == 5.0
    for bad in ({"server_time": "5"}, {"server_time": True}, {}, [], b"{cut"):
        with pytest.raises(SyncProtocolError):
            server_time(exchange(bad))


# --- answers ---------------------------------------------------------------------------------


def test_a_batch_answer_is_checked_strictly() -> None:
    answer = batch_answer(
        exchange(
            {
                "ack_seq": 9,
                "accepted": 3,
                "duplicates": 1,
                "rejected": [{"seq": 10, "code": "conflict"}],
            }
        )
    )
    assert (answer.ack_seq, answer.accepted, answer.duplicates) == (9, 3, 1)
    assert [(r.seq, r.code) for r in answer.rejected] == [(10, "conflict")]
    good = {"ack_seq": 0, "accepted": 0, "duplicates": 0, "rejected": []}
    for bad in (
        good | {"ack_seq": -1},
        good | {"accepted": "3"},
        good | {"duplicates": None},
        good | {"rejected": {}},
        good | {"rejected": [{"seq": "1", "code": "x"}]},
        {k: v for k, v in good.items() if k != "ack_seq"},
    ):
        with pytest.raises(SyncProtocolError):
            batch_answer(exchange(bad))
    with pytest.raises(SyncProtocolError, match="not JSON"):
        batch_answer(exchange(b'{"ack_seq": 1, "acc'))  # a body cut short


def test_the_deny_signature_header() -> None:
    assert deny_signature(None) is None
    assert deny_signature(base64.b64encode(b"\x01" * 64).decode()) == b"\x01" * 64
    assert deny_signature("not base64!") == b""  # refused by the verifier, never skipped


# --- secrets ---------------------------------------------------------------------------------


def _pem(private: Ed25519PrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def seal(plaintext: dict, key: bytes = KEY, terminal: str = TERMINAL) -> dict:
    iv = os.urandom(12)
    ct = AESGCM(secrets_key(key, terminal)).encrypt(iv, json.dumps(plaintext).encode(), None)
    return {
        "alg": "A256GCM",
        "iv": base64.b64encode(iv).decode(),
        "ct": base64.b64encode(ct).decode(),
    }


def plaintext() -> dict:
    return {
        "pepper": "11" * 32,
        "deny_public_key": _pem(Ed25519PrivateKey.generate()),
        "trust_root_key": _pem(Ed25519PrivateKey.generate()),
        "audience_keys": {"hotel-test": "22" * 32},
    }


def test_secrets_open_with_the_key_derived_for_this_terminal() -> None:
    opened = open_secrets(seal(plaintext()), KEY, TERMINAL)
    assert opened.pepper == b"\x11" * 32
    assert opened.audience_keys == {"hotel-test": b"\x22" * 32}
    assert opened.deny_public_key.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert "11" * 32 not in repr(opened) and "22" * 32 not in repr(opened)


def test_secrets_for_another_terminal_or_key_do_not_open() -> None:
    with pytest.raises(SyncProtocolError, match="do not decrypt"):
        open_secrets(seal(plaintext(), terminal="440100-T0002"), KEY, TERMINAL)
    with pytest.raises(SyncProtocolError, match="do not decrypt"):
        open_secrets(seal(plaintext(), key=bytes(32)), KEY, TERMINAL)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"pepper": "11" * 8}, "at least 16 bytes"),
        ({"pepper": "xyz"}, "hex"),
        ({"deny_public_key": "not pem"}, "PEM"),
        ({"audience_keys": {"k": "22" * 16}}, "32 bytes"),
        ({"audience_keys": []}, "object"),
        ({"extra": 1}, "exactly"),
    ],
)
def test_secrets_off_the_contract_are_refused(change: dict, problem: str) -> None:
    with pytest.raises(SyncProtocolError, match=problem):
        open_secrets(seal(plaintext() | change), KEY, TERMINAL)


def test_a_deny_key_that_is_not_ed25519_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(SyncProtocolError, match="Ed25519"):
        open_secrets(seal(plaintext() | {"deny_public_key": ec_pem}), KEY, TERMINAL)


def test_a_malformed_envelope_is_refused() -> None:
    for bad in (
        {},
        {"alg": "A128GCM", "iv": "", "ct": ""},
        {"alg": "A256GCM", "iv": "!", "ct": ""},
    ):
        with pytest.raises(SyncProtocolError):
            open_secrets(bad, KEY, TERMINAL)


def test_the_audience_key_file_reads_back_as_the_terminal_reads_it(tmp_path: Path) -> None:
    from terminal.ecard_flow import load_audience_keys

    path = tmp_path / "audience.keys"
    write_private_file(path, audience_keys_toml({"hotel-test": b"\x22" * 32, "b.x": b"\x01" * 32}))
    assert load_audience_keys(path) == {"hotel-test": b"\x22" * 32, "b.x": b"\x01" * 32}


def test_private_files_are_replaced_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "pepper"
    assert write_private_file(path, b"one\n") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    assert write_private_file(path, b"one\n") is False  # unchanged: not rewritten
    assert path.stat().st_ino == inode
    assert write_private_file(path, b"two\n") is True
    assert path.read_bytes() == b"two\n" and path.stat().st_ino != inode  # renamed over
    path.chmod(0o644)
    assert write_private_file(path, b"two\n") is True  # a too-open file is rewritten 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pepper"]  # no temporary left


# --- reports ---------------------------------------------------------------------------------


def test_the_exit_status_of_a_sync() -> None:
    report = SyncReport()
    report.add("time", StepStatus.OK, "")
    report.add("catalogue", StepStatus.OK, "")
    assert report.exit_status == 0 and report.ok
    report.add("deny", StepStatus.REFUSED, "")
    assert report.exit_status == 1
    alarm = SyncReport()
    alarm.add("time", StepStatus.ALARM, "")
    assert alarm.exit_status == 1
    report.add("upload", StepStatus.FAILED, "")
    assert report.exit_status == 2
    assert report.step("deny") is not None and report.step("trust") is None
    assert len(report.lines()) == 4


# --- configuration ---------------------------------------------------------------------------


def test_the_terminal_key_file(tmp_path: Path) -> None:
    path = tmp_path / "sync.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o600)
    assert load_terminal_key(path) == KEY
    path.chmod(0o640)
    with pytest.raises(SyncConfigError, match="chmod 600"):
        load_terminal_key(path)
    path.chmod(0o600)
    path.write_text(KEY.hex()[:62])
    with pytest.raises(SyncConfigError, match="64 hex characters"):
        load_terminal_key(path)
    with pytest.raises(SyncConfigError, match="cannot read"):
        load_terminal_key(tmp_path / "absent")


def test_the_config_comes_from_the_settings(tmp_path: Path) -> None:
    key = tmp_path / "sync.key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    settings = parse_settings(
        {
            "terminal": {"id": TERMINAL},
            "store": {"pepper_file": "pepper", "deny_public_key": "deny.pem"},
            "sync": {"url": "http://127.0.0.1:1/", "key_file": "sync.key", "key_id": "k1"},
        },
        base_dir=tmp_path,
    )
    config = SyncConfig.from_settings(settings)
    assert config.credentials.terminal_id == TERMINAL
    assert config.credentials.key == KEY and KEY.hex() not in repr(config)
    assert config.secret_files.pepper == tmp_path / "pepper"
    with pytest.raises(SyncConfigError, match="needs url, key_file, key_id"):
        SyncConfig.from_settings(parse_settings({}))
