"""The reference platform's HTTP API on loopback (a real uvicorn server on a thread): request
signatures, the journal batch (idempotency, conflicts, broken hashes and chains, gaps, the ack
cursor), the signed deny and trust lists imported by a real offline store, catalogue, secrets,
heartbeat, e-card decode, and the problem documents of every refusal."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import statistics
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_support import (
    NOW,
    PERSONAS,
    TEST_KEYS,
    Clock,
    LivePlatform,
    chain_rows,
    live_platform,
    record,
    seal,
)

from ecard import (
    PrivateKey,
    QrRefused,
    issue_credential,
    make_code,
    parse_trust_list,
    save_trust_list,
    verify_code,
)
from ecard.keys import Alg, load_private_key
from offline_store import DenyReason, JournalEntry, Store, canonical_card_id, ed25519_verifier
from offline_store.chain import GENESIS_HASH
from platform_server import batch
from platform_server.terminals import decrypt_secrets

pytestmark = pytest.mark.emulated

PEPPER_FILE = "pepper.key"


@pytest.fixture
def live(platform_db: str | None, tmp_path: Path) -> Iterator[LivePlatform]:
    terminals = {"T1": ("gate",), "T2": ("gate", "hotel"), "H1": ("hotel",)}
    with live_platform(tmp_path, terminals, db_url=platform_db) as running:
        yield running


def problem_code(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert body["type"] == "about:blank" and body["status"] == response.status_code  # type: ignore[attr-defined]
    return str(body["code"])


# --- health, time, routing ---------------------------------------------------------------


def test_health_answers_unsigned_and_every_other_route_needs_a_signature(live) -> None:
    client = live.client()
    health = client.get("/v1/health", sign=False)
    assert health.status_code == 200 and health.json()["ok"] is True
    for method, path in [
        ("GET", "/v1/time"),
        ("GET", "/v1/deny"),
        ("GET", "/v1/trust"),
        ("GET", "/v1/catalogue"),
        ("GET", "/v1/secrets"),
        ("POST", "/v1/journal/batch"),
        ("POST", "/v1/heartbeat"),
        ("POST", "/v1/ecard/decode"),
    ]:
        answer = client.request(method, path, b"{}", sign=False)
        assert answer.status_code == 401, path
        assert problem_code(answer) == "unsigned"


def test_time_is_the_platform_clock(live) -> None:
    answer = live.client().get("/v1/time")
    assert answer.status_code == 200
    assert answer.json() == {"server_time": NOW}
    assert "date" in answer.headers


def test_small_answers_are_not_held_back_by_nagle_and_delayed_acks(live) -> None:
    """A listening socket made without IPPROTO_TCP loses asyncio's TCP_NODELAY: every
    answer then waited ~40 ms for the client's delayed ACK."""
    assert live.server.socket.proto == socket.IPPROTO_TCP
    client = live.client()
    timings = []
    for _ in range(15):
        started = time.perf_counter()
        assert client.get("/v1/time").status_code == 200
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.030


def test_unknown_route_and_method_are_problem_documents(live) -> None:
    client = live.client()
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and problem_code(missing) == "not_found"
    wrong = client.request("PUT", "/v1/time", sign=False)
    assert wrong.status_code == 405 and problem_code(wrong) == "method_not_allowed"


# --- request signatures ------------------------------------------------------------------


def test_an_unknown_terminal_or_key_is_refused_as_unknown_key(live) -> None:
    client = live.client()
    other_key = client.get("/v1/time", headers={"X-Sscard-Key-Id": "k00000000"})
    assert other_key.status_code == 401 and problem_code(other_key) == "unknown_key"
    stranger = client.get("/v1/time", headers={"X-Sscard-Terminal": "T9"})
    assert problem_code(stranger) == "unknown_key"


def test_a_wrong_key_or_a_changed_body_or_path_is_a_bad_signature(live) -> None:
    client = live.client()
    assert problem_code(client.get("/v1/time", secret=b"\x07" * 32)) == "bad_signature"
    rows = chain_rows("T1", 2)
    signed = client.upload(rows[:1])
    assert signed.status_code == 200
    # the same headers over another body: the body hash is signed
    body = json.dumps({"rows": rows}).encode()
    headers = {k: v for k, v in signed.request.headers.items() if k.startswith("X-Sscard")}
    headers["X-Sscard-Nonce"] = "1" * 32
    tampered = client.request("POST", "/v1/journal/batch", body, sign=False, headers=headers)
    assert problem_code(tampered) == "bad_signature"
    # a signature made for /v1/deny?since=1 does not serve /v1/deny?since=2
    first = client.get("/v1/deny?since=1")
    moved = {k: v for k, v in first.request.headers.items() if k.startswith("X-Sscard")}
    moved["X-Sscard-Nonce"] = "2" * 32
    assert problem_code(client.get("/v1/deny?since=2", sign=False, headers=moved)) == (
        "bad_signature"
    )


def test_a_timestamp_more_than_300_s_away_is_stale(live) -> None:
    client = live.client()
    assert client.get("/v1/time", now=NOW - 299).status_code == 200
    old = client.get("/v1/time", now=NOW - 301)
    assert old.status_code == 401 and problem_code(old) == "stale_timestamp"
    assert problem_code(client.get("/v1/time", now=NOW + 301)) == "stale_timestamp"
    # the Date header lets the terminal estimate its offset even from the refusal
    assert "date" in old.headers


def test_a_replayed_nonce_is_refused(live) -> None:
    client = live.client()
    nonce = "ab" * 16
    assert client.get("/v1/time", nonce=nonce).status_code == 200
    again = client.get("/v1/time", nonce=nonce)
    assert again.status_code == 401 and problem_code(again) == "replayed_nonce"
    # the same nonce from another terminal is another nonce
    assert live.client("T2").get("/v1/time", nonce=nonce).status_code == 200


# --- journal batches ---------------------------------------------------------------------


def test_a_batch_is_idempotent_by_terminal_and_seq(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 10)
    first = client.upload(rows)
    assert first.status_code == 200
    assert first.json() == {"ack_seq": 10, "accepted": 10, "duplicates": 0, "rejected": []}
    again = client.upload(rows)
    assert again.json() == {"ack_seq": 10, "accepted": 0, "duplicates": 10, "rejected": []}
    # a row twice in one batch counts once
    more = chain_rows("T1", 2, start=11, prev_hash=rows[-1]["hash"])
    inside = client.upload([more[0], more[0], more[1]])
    assert inside.json() == {"ack_seq": 12, "accepted": 2, "duplicates": 1, "rejected": []}
    [summary] = live.platform.verify_chains("T1")
    assert (summary.rows, summary.counted, summary.ok) == (12, 12, True)


def test_the_same_seq_with_another_hash_is_a_conflict(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 3)
    client.upload(rows)
    forged = seal(record("T1", 2, outcome="refuse", reason_code="deny_lost"), rows[0]["hash"])
    answer = client.upload([forged]).json()
    assert answer == {
        "ack_seq": 3,
        "accepted": 0,
        "duplicates": 0,
        "rejected": [{"seq": 2, "code": "conflict"}],
    }
    [stored] = [r for r in live.platform.transactions("T1") if r.seq == 2]
    assert stored.outcome == "accept"


def test_a_row_whose_hash_does_not_match_is_rejected_and_not_stored(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 3)
    rows[1] = {**rows[1], "amount": "500"}  # edited after hashing
    answer = client.upload(rows).json()
    assert answer["rejected"] == [{"seq": 2, "code": "bad_hash"}]
    assert answer["accepted"] == 2 and answer["ack_seq"] == 1


def test_another_terminals_row_is_rejected(live) -> None:
    client = live.client()
    answer = client.upload(chain_rows("T2", 1)).json()
    assert answer == {
        "ack_seq": 0,
        "accepted": 0,
        "duplicates": 0,
        "rejected": [{"seq": 1, "code": "terminal_mismatch"}],
    }


def test_a_row_that_does_not_chain_to_its_predecessor_is_stored_and_flagged(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 3)
    client.upload(rows)
    detached = seal(record("T1", 4), "f" * 64)  # self-consistent, but not linked to row 3
    answer = client.upload([detached]).json()
    assert answer == {"ack_seq": 4, "accepted": 1, "duplicates": 0, "rejected": []}
    [row] = [r for r in live.platform.transactions("T1") if r.seq == 4]
    assert row.chain_break and not row.gap
    [summary] = live.platform.verify_chains("T1")
    assert summary.chain_breaks == 1 and summary.first_breaks == (4,) and not summary.ok


def test_a_first_row_that_does_not_start_from_genesis_is_a_chain_break(live) -> None:
    client = live.client()
    client.upload([seal(record("T1", 1), "e" * 64)])
    [summary] = live.platform.verify_chains("T1")
    assert summary.first_breaks == (1,)


def test_a_gap_holds_the_ack_cursor_until_it_is_filled(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 20)
    assert client.upload(rows[:5]).json()["ack_seq"] == 5
    late = client.upload(rows[8:]).json()  # 6..8 missing
    assert late["ack_seq"] == 5 and late["accepted"] == 12
    flagged = {r.seq: r.gap for r in live.platform.transactions("T1")}
    assert flagged[9] and not flagged[10]
    [summary] = live.platform.verify_chains("T1")
    assert summary.missing == 3 and summary.missing_ranges == ((6, 8),)
    assert client.upload(rows[5:7]).json()["ack_seq"] == 7  # still one missing
    filled = client.upload(rows[7:8]).json()
    assert filled["ack_seq"] == 20
    flagged = {r.seq: (r.gap, r.chain_break) for r in live.platform.transactions("T1")}
    assert not any(gap or broken for gap, broken in flagged.values())
    [summary] = live.platform.verify_chains("T1")
    assert summary.ok and summary.rows == summary.counted == 20


def test_a_row_filling_a_gap_that_does_not_link_flags_its_successor(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 4)
    client.upload([rows[0], rows[2], rows[3]])
    other = seal(record("T1", 2, reason_code="other"), rows[0]["hash"])  # not rows[1]
    assert client.upload([other]).json()["ack_seq"] == 4
    flags = {r.seq: r.chain_break for r in live.platform.transactions("T1")}
    assert flags == {1: False, 2: False, 3: True, 4: False}


def test_a_pruned_journal_is_acknowledged_from_its_first_uploaded_seq(live) -> None:
    client = live.client()
    rows = chain_rows("T1", 110)[100:]  # the terminal pruned 1..100 elsewhere
    answer = client.upload(rows).json()
    assert answer == {"ack_seq": 110, "accepted": 10, "duplicates": 0, "rejected": []}
    [summary] = live.platform.verify_chains("T1")
    assert summary.first_seq == 101 and summary.ok


def test_rows_of_a_real_offline_store_chain_on_the_platform(live, tmp_path: Path) -> None:
    """Rows appended by the terminal's own journal, personal ciphertext included."""
    store = Store.open(tmp_path / "store.db", journal_key=bytes(range(32)), pepper=b"p" * 32)
    try:
        for n in range(5):
            store.journal.append(
                journal_entry(n, personal={"name": "x", "room": str(n)} if n % 2 else {})
            )
        rows = [
            {**row.record(), "prev_hash": row.prev_hash, "hash": row.hash}
            for row in store.journal.rows()
        ]
    finally:
        store.close()
    assert rows[1]["personal_ct"] is not None
    answer = live.client().upload(rows).json()
    assert answer == {"ack_seq": 5, "accepted": 5, "duplicates": 0, "rejected": []}
    assert live.platform.verify_chains("T1")[0].ok


def journal_entry(n: int, personal: dict[str, str]) -> JournalEntry:
    return JournalEntry(
        scenario="gate",
        catalogue_item=None,
        credential_token="5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f",
        outcome="accept",
        reason_code="ok",
        amount=200 * n if n else None,
        personal=personal,
        terminal_id="T1",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b'{"rows": NaN}', "bad_json"),
        (b"[]", "invalid_body"),
        (b'{"rows": [], "more": 1}', "invalid_body"),
        (b'{"rows": [1]}', "invalid_body"),
    ],
)
def test_a_malformed_batch_is_a_400_problem(live, body: bytes, code: str) -> None:
    answer = live.client().request("POST", "/v1/journal/batch", body)
    assert answer.status_code == 400 and problem_code(answer) == code


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 3),
        ("seq", "03"),
        ("seq", "1234567890123456789"),
        ("uuid", "not-a-uuid"),
        ("outcome", "maybe"),
        ("scenario", ""),
        ("scenario", "gate\n"),
        ("credential_token", "440100D2143569X"),
        ("amount", 5),
        ("personal_fields", ["ssn", "ssn"]),
        ("personal_ct", "not base64!"),
        ("hash", "A" * 64),
        ("v", "sscard-journal/2"),
    ],
)
def test_a_row_off_its_format_refuses_the_whole_batch(live, field: str, value: object) -> None:
    rows = chain_rows("T1", 2)
    rows[1] = {**rows[1], field: value}
    answer = live.client().upload(rows)
    assert answer.status_code == 400 and problem_code(answer) == "invalid_body"
    assert f"rows[1].{field}" in answer.json()["detail"]
    assert live.platform.transactions("T1") == []


def test_a_row_with_a_missing_or_extra_key_refuses_the_batch(live) -> None:
    rows = chain_rows("T1", 1)
    missing = {k: v for k, v in rows[0].items() if k != "uuid"}
    assert problem_code(live.client().upload([missing])) == "invalid_body"
    extra = {**rows[0], "card_number": "A01023450"}
    answer = live.client().upload([extra])
    assert problem_code(answer) == "invalid_body"
    assert "A01023450" not in answer.text  # a value is never repeated


def test_more_than_5000_rows_or_8_mib_is_refused(live) -> None:
    client = live.client()
    too_many = client.upload(chain_rows("T1", batch.MAX_BATCH_ROWS + 1))
    assert too_many.status_code == 400 and problem_code(too_many) == "invalid_body"
    huge = b'{"rows": [' + b" " * (batch.MAX_BATCH_BYTES + 1) + b"]}"
    answer = client.request("POST", "/v1/journal/batch", huge)
    assert answer.status_code == 413 and problem_code(answer) == "too_large"


def test_a_body_that_is_not_json_by_type_is_415(live) -> None:
    answer = live.client().request(
        "POST", "/v1/heartbeat", b"x=1", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415 and problem_code(answer) == "unsupported_media_type"


def test_too_many_batches_at_once_are_told_to_retry_after(live) -> None:
    slots = live.server.server.config.app.state.batch_slots
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        answer = live.client().upload(chain_rows("T1", 1))
    finally:
        for _ in range(taken):
            slots.release()
    assert answer.status_code == 503 and problem_code(answer) == "busy"
    assert answer.headers["retry-after"] == "1"
    assert live.client().upload(chain_rows("T1", 1)).status_code == 200


# --- deny list ---------------------------------------------------------------------------


def deny_keys(live: LivePlatform) -> tuple[bytes, object]:
    pepper = bytes.fromhex((live.keys_dir / PEPPER_FILE).read_text().strip())
    verify = ed25519_verifier((live.keys_dir / "deny-signing.pub.pem").read_bytes())
    return pepper, verify


def test_the_deny_list_is_a_signed_snapshot_then_deltas_then_204(live, tmp_path: Path) -> None:
    client = live.client()
    pepper, verify = deny_keys(live)
    first = client.get("/v1/deny")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/x-ndjson"
    assert first.headers["x-sscard-deny-kind"] == "snapshot"
    signature = base64.b64decode(first.headers["x-sscard-deny-signature"])
    verify(first.content, signature)  # type: ignore[operator]
    lost = canonical_card_id("440100", "A01023450")
    store = Store.open(tmp_path / "terminal.db", pepper=pepper, clock=live.clock)
    try:
        assert store.deny.import_bytes(first.content, signature, verify).version == 1  # type: ignore[arg-type]
        assert client.get("/v1/deny?since=1").status_code == 204
        live.platform.deny(lost, DenyReason.LOST, dt.date(2026, 11, 20))
        delta = client.get("/v1/deny?since=1")
        assert delta.headers["x-sscard-deny-kind"] == "delta"
        header, entry = (json.loads(line) for line in delta.content.splitlines())
        assert header["base_version"] == 1 and header["version"] == 2
        assert entry == {
            "op": "add",
            "hash": store.card_hash(lost),
            "reason": "lost",
            "effective": "2026-11-20",
        }
        signed = base64.b64decode(delta.headers["x-sscard-deny-signature"])
        store.deny.import_bytes(delta.content, signed, verify)  # type: ignore[arg-type]
        assert store.deny.lookup(store.card_hash(lost), dt.date(2026, 11, 29)) is not None
        # 解挂: unlisting reaches the terminal as a remove
        live.platform.deny(canonical_card_id("440100", "B01023450"), DenyReason.FRAUD)
        signed_v3 = client.get("/v1/deny?since=2")
        store.deny.import_bytes(
            signed_v3.content,
            base64.b64decode(signed_v3.headers["x-sscard-deny-signature"]),
            verify,  # type: ignore[arg-type]
        )
        live.platform.undeny(lost)
        removal = client.get("/v1/deny?since=3")
        assert b'"op": "remove"' in removal.content
        signed = base64.b64decode(removal.headers["x-sscard-deny-signature"])
        store.deny.import_bytes(removal.content, signed, verify)  # type: ignore[arg-type]
        assert store.deny.lookup(store.card_hash(lost), dt.date(2026, 11, 29)) is None
        assert client.get("/v1/deny?since=4").status_code == 204
    finally:
        store.close()


def test_a_delta_nets_out_changes_and_a_big_one_becomes_a_snapshot(live) -> None:
    client = live.client()
    cards = [canonical_card_id("440100", f"A0102345{n}") for n in range(3)]
    live.platform.deny(cards[0], DenyReason.LOST)  # v2
    live.platform.deny(cards[1], DenyReason.FRAUD)  # v3
    live.platform.undeny(cards[1])  # v4: listed and unlisted since v2
    live.platform.deny(cards[0], DenyReason.CANCELLED)  # v5: reason changed
    delta = client.get("/v1/deny?since=2")
    lines = [json.loads(line) for line in delta.content.splitlines()]
    assert lines[0]["kind"] == "delta" and lines[0]["entries"] == 1
    assert lines[1]["op"] == "add" and lines[1]["reason"] == "cancelled"
    live.platform.deny(cards[1], DenyReason.LOST)  # v6
    live.platform.deny(cards[2], DenyReason.LOST)  # v7: three listed
    live.platform.undeny(cards[1])
    live.platform.undeny(cards[2])  # v9: one listed
    # from v7 the delta removes two cards: more lines than the one-entry snapshot
    assert client.get("/v1/deny?since=7").headers["x-sscard-deny-kind"] == "snapshot"
    assert client.get("/v1/deny?since=8").headers["x-sscard-deny-kind"] == "delta"
    # a version the platform never had, and none at all, get the snapshot
    assert client.get("/v1/deny?since=99").headers["x-sscard-deny-kind"] == "snapshot"
    assert client.get("/v1/deny?since=0").headers["x-sscard-deny-kind"] == "snapshot"


def test_the_same_deny_file_is_served_byte_for_byte(live) -> None:
    client = live.client()
    live.platform.deny(canonical_card_id("440100", "A01023450"), DenyReason.LOST)
    first, second = client.get("/v1/deny"), client.get("/v1/deny")
    assert first.content == second.content
    assert first.headers["x-sscard-deny-signature"] == second.headers["x-sscard-deny-signature"]


@pytest.mark.parametrize("query", ["since=-1", "since=x", "since=1&since=2", "other=1", "since="])
def test_a_malformed_deny_query_is_400(live, query: str) -> None:
    answer = live.client().get(f"/v1/deny?{query}")
    assert answer.status_code == 400 and problem_code(answer) == "invalid_query"


# --- trust list and key rotation ---------------------------------------------------------


def test_the_trust_list_verifies_with_the_root_and_rotation_keeps_old_keys_for_the_grace(
    live, tmp_path: Path
) -> None:
    client = live.client()
    root = (live.keys_dir / "trust-root.pub.pem").read_bytes()
    first = client.get("/v1/trust")
    assert first.status_code == 200 and first.headers["content-type"] == "application/cbor"
    trust = parse_trust_list(first.content, root, live.clock())
    assert trust.version == 1 and len(trust.keys) == 2
    assert client.get("/v1/trust?since=1").status_code == 204
    old_es256 = load_private_key((TEST_KEYS / "qr-platform-es256-test.pem").read_bytes())
    rotation = live.platform.rotate_keys(Alg.ES256, grace_s=3600)
    assert rotation.retiring == (old_es256.kid.hex(),)
    second = client.get("/v1/trust?since=1")
    listed = parse_trust_list(second.content, root, live.clock())
    assert listed.version == 2 and {k.kid.hex() for k in listed.keys} >= {
        rotation.kid,
        old_es256.kid.hex(),
    }
    store = Store.open(tmp_path / "terminal.db", clock=live.clock)
    try:
        save_trust_list(store, second.content, root, live.clock())
    finally:
        store.close()
    new_key = load_private_key((live.keys_dir / f"qr-es256-{rotation.kid}.pem").read_bytes())
    old_code = code_signed_by(old_es256, live.clock())
    new_code = code_signed_by(new_key, live.clock())
    verify_code(old_code, listed, live.clock())
    verify_code(new_code, listed, live.clock())
    live.clock.now += 3601  # the grace is over: the old key leaves the next list
    third = client.get("/v1/trust?since=2")
    after = parse_trust_list(third.content, root, live.clock())
    assert after.version == 3 and old_es256.kid.hex() not in {k.kid.hex() for k in after.keys}
    with pytest.raises(QrRefused):
        verify_code(code_signed_by(old_es256, live.clock()), after, live.clock())
    verify_code(code_signed_by(new_key, live.clock()), after, live.clock())


def code_signed_by(platform_key: PrivateKey, now: float) -> str:
    device = PrivateKey.generate(platform_key.alg)
    credential = issue_credential(
        platform_key,
        token="7c1f" * 16,
        region="440100",
        category="3",
        not_before=int(now) - 60,
        not_after=int(now) + 86_400,
        device_public_key=device.public_key,
    )
    return make_code(credential, device, timestamp=int(now), counter=1)


def test_the_trust_list_is_renewed_before_it_expires(live) -> None:
    client = live.client()
    first = client.get("/v1/trust")
    live.clock.now += 3 * 86_400
    assert client.get("/v1/trust?since=1").status_code == 204
    live.clock.now += 1 * 86_400  # past half of the seven days
    renewed = client.get("/v1/trust?since=1")
    assert renewed.status_code == 200 and renewed.headers["x-sscard-trust-version"] == "2"
    assert renewed.content != first.content


# --- catalogue, secrets, heartbeat -------------------------------------------------------


def test_the_catalogue_serves_the_items_of_a_region_with_an_etag(live, tmp_path: Path) -> None:
    assert live.platform.load_catalogue("tests/catalogue.toml") > 0
    client = live.client()
    answer = client.get("/v1/catalogue?region=440100")
    assert answer.status_code == 200
    document = answer.json()
    assert document["format"] == "sscard-catalogue/1" and document["items"]
    for item in document["items"]:
        assert any(r in ("440100", "44", "*") for r in item["regions"])
    elsewhere = client.get("/v1/catalogue?region=110100").json()
    assert all("440100" not in item["regions"] for item in elsewhere["items"])
    assert client.get("/v1/catalogue").json() == document  # the terminal's own region
    etag = answer.headers["etag"]
    same = client.get("/v1/catalogue?region=440100", headers={"If-None-Match": etag})
    assert same.status_code == 304
    store = Store.open(tmp_path / "terminal.db")
    try:
        assert store.catalogue.load_bytes(answer.content, "json", "platform") == len(
            document["items"]
        )
    finally:
        store.close()
    bad = client.get("/v1/catalogue?region=4401")
    assert bad.status_code == 400 and problem_code(bad) == "invalid_region"


def test_secrets_decrypt_with_the_terminal_key_and_carry_audience_keys_by_scenario(live) -> None:
    gate = live.client("T1").get("/v1/secrets")
    assert gate.status_code == 200 and gate.headers["cache-control"] == "no-store"
    envelope = gate.json()
    assert envelope["alg"] == "A256GCM" and len(base64.b64decode(envelope["iv"])) == 12
    plain = decrypt_secrets(envelope, live.terminals["T1"].key, "T1")
    assert plain["pepper"] == (live.keys_dir / PEPPER_FILE).read_text().strip()
    assert plain["deny_public_key"] == (live.keys_dir / "deny-signing.pub.pem").read_text()
    assert plain["trust_root_key"] == (live.keys_dir / "trust-root.pub.pem").read_text()
    assert plain["audience_keys"] == {}
    hotel = decrypt_secrets(
        live.client("H1").get("/v1/secrets").json(), live.terminals["H1"].key, "H1"
    )
    expected = (TEST_KEYS / "qr-audience-hotel-test.key").read_text().strip()
    assert hotel["audience_keys"] == {"hotel-test": expected}
    # bound to the terminal: another terminal's key does not open it
    with pytest.raises(Exception, match="do not decrypt"):
        decrypt_secrets(envelope, live.terminals["T2"].key, "T1")


def test_a_heartbeat_is_stored_with_the_platform_time(live) -> None:
    report = {
        "software_version": "0.1.0",
        "deny_version": 3,
        "trust_version": None,
        "backlog": 120,
        "clock_offset_s": -1.5,
    }
    answer = live.client().post("/v1/heartbeat", report)
    assert answer.status_code == 200 and answer.json() == {"server_time": NOW}
    [info] = live.platform.list_terminals("T1")
    assert info.last_heartbeat_at == NOW and info.clock_offset_s == -1.5
    assert info.heartbeat == report


@pytest.mark.parametrize(
    "change",
    [
        {"backlog": -1},
        {"backlog": 1.5},
        {"deny_version": 0},
        {"deny_version": True},
        {"clock_offset_s": "1"},
        {"software_version": ""},
        {"extra": 1},
    ],
)
def test_a_malformed_heartbeat_is_400(live, change: dict[str, object]) -> None:
    report = {
        "software_version": "0.1.0",
        "deny_version": 3,
        "trust_version": 1,
        "backlog": 0,
        "clock_offset_s": 0.0,
        **change,
    }
    answer = live.client().post("/v1/heartbeat", report)
    assert answer.status_code == 400 and problem_code(answer) == "invalid_body"


# --- e-card decode -----------------------------------------------------------------------


def persona(name: str = "ordinary-2.0") -> dict[str, object]:
    return tomllib.loads((PERSONAS / f"{name}.toml").read_text(encoding="utf-8"))


def test_an_issued_code_decodes_with_identity_only_for_an_identity_scenario(live) -> None:
    issued = live.platform.issue_ecard(persona())
    assert not issued.code.startswith("SSC1:")
    gate = live.client("T2").post(
        "/v1/ecard/decode", {"code": issued.code, "terminal_id": "T2", "scenario": "gate"}
    )
    assert gate.status_code == 200
    answer = gate.json()
    assert answer == {
        "ok": True,
        "token": issued.token,
        "region": "440100",
        "category": "3",
        "not_after": "2031-03-14",
    }
    hotel = live.client("T2").post(
        "/v1/ecard/decode", {"code": issued.code, "terminal_id": "T2", "scenario": "hotel"}
    )
    identity = hotel.json()["identity"]
    assert set(identity) == {"name", "ssn", "sex", "birth_date", "ethnicity"}
    assert identity["birth_date"] == "1990-03-07"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"code": "CNSSCNOSUCHCODE", "terminal_id": "T1", "scenario": "gate"}, "unknown_code"),
        ({"code": "ISSUED", "terminal_id": "T2", "scenario": "gate"}, "terminal_mismatch"),
        ({"code": "ISSUED", "terminal_id": "T1", "scenario": "hotel"}, "scenario_not_allowed"),
    ],
)
def test_a_code_the_platform_does_not_decode_is_422_ok_false(
    live, body: dict[str, str], reason: str
) -> None:
    issued = live.platform.issue_ecard(persona())
    if body["code"] == "ISSUED":
        body = {**body, "code": issued.code}
    answer = live.client("T1").post("/v1/ecard/decode", body)
    assert answer.status_code == 422 and answer.json() == {"ok": False, "reason": reason}


def test_an_expired_code_is_refused(live) -> None:
    issued = live.platform.issue_ecard(persona(), valid_s=60)
    live.clock.now += 61
    answer = live.client("T1").post(
        "/v1/ecard/decode", {"code": issued.code, "terminal_id": "T1", "scenario": "gate"}
    )
    assert answer.json() == {"ok": False, "reason": "code_expired"}


def test_a_malformed_decode_request_is_a_400_problem(live) -> None:
    answer = live.client().post("/v1/ecard/decode", {"code": "x"})
    assert answer.status_code == 400 and problem_code(answer) == "invalid_body"


def test_requests_signed_with_a_clock_far_from_the_platform_are_refused_after_a_jump(
    live,
) -> None:
    """The platform's own clock decides: moving it makes a fresh signature stale."""
    client = live.client()
    signed_at = live.clock()
    live.clock.now += 600
    answer = client.get("/v1/time", now=signed_at)
    assert problem_code(answer) == "stale_timestamp"


def test_a_platform_clock_injected_by_the_test_drives_every_answer(tmp_path: Path) -> None:
    clock = Clock(NOW + 12.5)
    with live_platform(tmp_path, {"T1": ("gate",)}, clock) as running:
        assert running.client().get("/v1/time").json() == {"server_time": NOW + 12.5}
        assert running.client().upload([seal(record("T1", 1), GENESIS_HASH)]).status_code == 200
