"""End to end: ``sscard host serve`` over real HTTP, pcscd+vpcd and an emulated card.

Expected card values come from the persona file; the security rules (Host header, Origin
allow-list, bearer token) are checked by what a foreign client actually gets back.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from host_support import ALLOWED, serve_host
from support import READER0, make_card, persona_path
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

FOREIGN = "http://evil.example"
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("host")


@pytest.fixture(scope="module")
def api(host_dir: Path, pcscd: object) -> Iterator[str]:
    yield from serve_host(host_dir)


def audit_rows(folder: Path) -> list[tuple[str, str, list[str], str]]:
    with sqlite3.connect(f"file:{folder / 'store.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT who, terminal_id, fields, purpose FROM audit ORDER BY id")
        return [(who, tid, json.loads(fields), purpose) for who, tid, fields, purpose in rows]


@pytest.fixture(scope="module")
def api_token(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("host-token")
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    yield from serve_host(tmp, "--token-file", str(token_file))


def test_card_read_ireadcardbas_and_events(api: str, host_dir: Path, cards) -> None:
    holder = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    ws_url = api.replace("http://", "ws://") + "/v1/ws"
    with (
        connect(ws_url, additional_headers={"Origin": ALLOWED}) as ws,
        requests.get(api + "/v1/events", stream=True, timeout=10) as sse,
    ):
        assert json.loads(ws.recv(5)) == {"type": "subscribed"}
        lines = sse.iter_lines(decode_unicode=True)
        assert next(lines) == ": subscribed"
        cards.insert(make_card("elderly"))
        got = requests.get(api + "/v1/readers", timeout=10).json()["readers"]
        assert {"name": READER0, "card_present": True, "state": "card"} in got
        out = requests.get(
            api + "/v1/card", params={"wait": 5}, headers={"Origin": ALLOWED}, timeout=20
        )
        assert out.status_code == 200, out.text
        assert out.headers["access-control-allow-origin"] == ALLOWED
        body = out.json()
        assert body["ok"] is True and body["code"] == 0
        assert body["card"]["card_number"] == holder["card"]["card_number"]
        assert body["card"]["name"] == holder["holder"]["name"]
        line = requests.get(api + "/v1/card/ireadcardbas", timeout=20).json()
        assert line["code"] == 0
        assert holder["card"]["card_number"] in line["result"].split("|")
        ws_events = [json.loads(ws.recv(5)) for _ in range(3)]
        sse_events = []
        while len(sse_events) < 3:
            row = next(lines)
            if row.startswith("data: "):
                sse_events.append(json.loads(row[6:]))
    for events in (ws_events, sse_events):
        assert [e["type"] for e in events] == ["card.inserted", "card.read", "card.read"]
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert all(holder["holder"]["name"] not in json.dumps(e) for e in events)
    metrics = requests.get(api + "/metrics", timeout=5).text
    assert 'sscard_host_reads_total{ok="true"} 2' in metrics
    audited = audit_rows(host_dir)
    assert [(who, purpose) for who, _t, _f, purpose in audited] == [
        (f"host-api {ALLOWED}", "GET /v1/card"),
        ("host-api local 127.0.0.1", "GET /v1/card/ireadcardbas"),
    ]
    assert all(tid == "HOST-01" and "name" in fields for _w, tid, fields, _p in audited)
    assert holder["holder"]["name"] not in json.dumps(audited)


def test_no_card_is_a_national_code(api: str, cards) -> None:
    out = requests.get(api + "/v1/card", params={"wait": 0.3}, timeout=10)
    assert out.status_code == 422
    assert out.json()["code"] < 0 and out.json()["reason"]
    assert requests.get(api + "/healthz", timeout=5).json()["ok"] is True


def test_foreign_origin_and_rebinding_are_refused(api: str, host_dir: Path, cards) -> None:
    cards.insert(make_card("elderly"))
    out = requests.get(api + "/v1/card", headers={"Origin": FOREIGN}, timeout=10)
    assert out.status_code == 403
    assert "access-control-allow-origin" not in out.headers
    assert "card" not in out.json()
    pre = requests.options(api + "/v1/card", headers={"Origin": FOREIGN}, timeout=10)
    assert "access-control-allow-origin" not in pre.headers
    rebound = requests.get(api + "/v1/card", headers={"Host": "evil.example:8321"}, timeout=10)
    assert rebound.status_code == 421
    ws_url = api.replace("http://", "ws://") + "/v1/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, additional_headers={"Origin": FOREIGN})
    assert refused.value.response.status_code == 403
    metrics = requests.get(api + "/metrics", timeout=5).text
    assert 'sscard_host_reads_total{ok="true"} 2' in metrics  # the refused reads never ran
    assert len(audit_rows(host_dir)) == 2


def test_bearer_token(api_token: str, cards) -> None:
    assert requests.get(api_token + "/v1/readers", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(api_token + "/v1/readers", headers=wrong, timeout=5).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(api_token + "/v1/readers", headers=right, timeout=5).status_code == 200


def test_non_loopback_bind_needs_a_token() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "host", "serve", "--host", "0.0.0.0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "bearer token is required" in done.stderr
    assert "Traceback" not in done.stderr


def test_python_client(api: str, cards) -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "clients"))
    try:
        from sscard_client import SscardApiError, SscardClient
    finally:
        sys.path.pop(0)
    holder = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    client = SscardClient(api)
    with pytest.raises(SscardApiError) as missing:
        client.card()
    assert missing.value.status == 422 and missing.value.code < 0
    cards.insert(make_card("elderly"))
    assert client.card(wait=5)["card"]["card_number"] == holder["card"]["card_number"]
    assert holder["card"]["card_number"] in client.ireadcardbas(wait=5).split("|")
    assert client.healthz()["ok"] is True


def test_pin_verify_and_its_rate_limit(api: str, cards) -> None:
    pin = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))["pin"]["value"]
    cards.insert(make_card("elderly"))
    url = api + "/v1/card/pin/verify"
    headers = {"Origin": ALLOWED}
    right = requests.post(url, json={"pin": pin}, headers=headers, timeout=10)
    assert right.status_code == 200 and right.json()["code"] == 0, right.text
    wrong = requests.post(url, json={"pin": "000000"}, headers=headers, timeout=10)
    assert wrong.status_code == 422
    assert wrong.json()["tries_left"] == 2 and wrong.json()["code"] < 0
    bad = requests.post(url, json={"wait": 1}, headers=headers, timeout=10)
    assert bad.status_code == 400 and bad.json()["reason"].startswith("bad request: body.pin")
    for _ in range(3):  # five attempts a minute (the one refused as malformed does not count)
        requests.post(url, json={"pin": pin}, headers=headers, timeout=10)
    limited = requests.post(url, json={"pin": pin}, headers=headers, timeout=10)
    assert limited.status_code == 429 and limited.json()["code"] == -1
    other_client = requests.post(url, json={"pin": pin}, timeout=10)
    assert other_client.status_code == 200


def test_hotel_checkin(api: str, host_dir: Path, cards) -> None:
    holder = tomllib.loads(persona_path("elderly").read_text(encoding="utf-8"))
    cards.insert(make_card("elderly"))
    before = len(audit_rows(host_dir))
    out = requests.post(
        api + "/v1/hotel/checkin",
        json={"room": "1208", "wait": 5},
        headers={"Origin": ALLOWED},
        timeout=20,
    )
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["outcome"] == "accept", body
    assert holder["holder"]["name"] in json.dumps(body, ensure_ascii=False)
    audited = audit_rows(host_dir)[before:]
    assert [(who, purpose) for who, _t, _f, purpose in audited] == [
        ("scenario:hotel", "hotel decision"),  # the pipeline's own entry
        (f"host-api {ALLOWED}", "POST /v1/hotel/checkin"),  # who received the record
    ]
    assert body["record"]["room"] == "1208" and body["detail"]["room"] == "1208"
    empty_room = requests.post(api + "/v1/hotel/checkin", json={"room": ""}, timeout=10)
    assert empty_room.status_code == 400
