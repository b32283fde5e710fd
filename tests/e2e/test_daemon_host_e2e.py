"""End to end: the host API served by ``sscard run`` ([host] enabled), over real HTTP, with the
daemon as a child process, a real pcscd with vpcd and emulated cards.

The API answers from the daemon's own taps (the daemon owns the reader): a card is decided and
journaled once, and ``GET /v1/card`` shows that decision; a hotel check-in or a medical
settlement (with the SSC PSAM in slot 1) is one more tap through the daemon's decision worker,
journaled like any other. Expected values come from the
persona files; the security rules are checked by what a foreign client gets back.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from daemon_support import DaemonProcess, TerminalFolder, make_terminal
from host_support import ALLOWED, start_daemon_host
from support import READER0, READER1, make_card, make_psam, persona_path
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from apdu.medical_payment import ireaddebitrecord_output

pytestmark = pytest.mark.e2e

FOREIGN = "http://evil.example"
BILL = "95.00|30.00+60.00|20261129101500|"  # account 30.00, pooled 60.00, self-pay 5.00


@pytest.fixture
def terminal(tmp_path: Path, pcscd) -> TerminalFolder:
    return make_terminal(tmp_path)


@pytest.fixture
def hall(terminal: TerminalFolder) -> Iterator[tuple[DaemonProcess, str]]:
    """A service-hall daemon: it reads the holder's name and SSN at every tap."""
    daemon, base = start_daemon_host(terminal, "service-hall")
    try:
        yield daemon, base
    finally:
        daemon.close()


@pytest.fixture
def hotel(terminal: TerminalFolder) -> Iterator[tuple[DaemonProcess, str]]:
    daemon, base = start_daemon_host(terminal, "hotel")
    try:
        yield daemon, base
    finally:
        daemon.close()


def python_client(base: str) -> Any:
    """``clients/sscard_client.py``'s client of the API at ``base``."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "clients"))
    try:
        from sscard_client import SscardClient
    finally:
        sys.path.pop(0)
    return SscardClient(base)


def audit(folder: Path) -> list[tuple[str, list[str], str]]:
    with sqlite3.connect(f"file:{folder / 'store.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT who, fields, purpose FROM audit ORDER BY id").fetchall()
    return [(who, json.loads(fields), purpose) for who, fields, purpose in rows]


def holder(persona: str) -> dict[str, Any]:
    return tomllib.loads(persona_path(persona).read_text(encoding="utf-8"))


def sse_events(response: requests.Response, count: int) -> list[dict[str, Any]]:
    """The next ``count`` card and decision events of an event stream (a device coming up
    as the daemon starts may come first: it is not the card's)."""
    got: list[dict[str, Any]] = []
    for row in response.iter_lines(decode_unicode=True):
        if row.startswith("data: ") and not json.loads(row[6:])["type"].startswith("device."):
            got.append(json.loads(row[6:]))
            if len(got) == count:
                break
    return got


def ws_events(ws: Any, count: int) -> list[dict[str, Any]]:
    """The same over the WebSocket."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        event = json.loads(ws.recv(20))
        if not event["type"].startswith("device."):
            got.append(event)
    return got


def test_the_card_the_daemon_decided_is_what_the_api_shows(
    hall: tuple[DaemonProcess, str], terminal: TerminalFolder, cards
) -> None:
    daemon, base = hall
    person = holder("elderly")
    ws_url = base.replace("http://", "ws://") + "/v1/ws"
    with (
        connect(ws_url, additional_headers={"Origin": ALLOWED}) as ws,
        requests.get(base + "/v1/events", stream=True, timeout=30) as sse,
    ):
        assert json.loads(ws.recv(10)) == {"type": "subscribed"}
        cards.insert(make_card("elderly", t0=True))
        out = requests.get(
            base + "/v1/card", params={"wait": 20}, headers={"Origin": ALLOWED}, timeout=30
        )
        assert out.status_code == 200, out.text
        assert out.headers["access-control-allow-origin"] == ALLOWED
        body = out.json()
        assert body["ok"] is True and body["code"] == 0 and body["reader"] == READER0
        assert body["card"]["name"] == person["holder"]["name"]
        assert body["card"]["ssn"] == person["holder"]["ssn"]
        assert body["decision"]["outcome"] == "accept"
        line = requests.get(base + "/v1/card/ireadcardbas", timeout=30).json()
        assert line["code"] == 0
        assert line["result"].split("|")[1:3] == [
            person["holder"]["ssn"],
            person["card"]["card_number"],
        ]
        readers = requests.get(base + "/v1/readers", timeout=10).json()["readers"]
        assert readers == [{"name": READER0, "card_present": True, "state": "waiting_removal"}]
        cards.remove_all()
        over_ws = ws_events(ws, 3)
        events = sse_events(sse, 3)
    for got in (over_ws, events):
        assert [e["type"] for e in got] == ["card.inserted", "decision", "card.removed"]
        assert got[1]["outcome"] == "accept" and got[1]["seq"] == body["decision"]["seq"]
        assert all(person["holder"]["name"] not in json.dumps(e) for e in got)
    # decided once, by the daemon: the API's two reads took no card of their own
    rows = terminal.rows()
    assert [row[2:] for row in rows] == [("accept", "ok")]
    assert rows[0][0] == body["decision"]["seq"]
    assert [(who, purpose) for who, _f, purpose in audit(terminal.folder)][-2:] == [
        (f"host-api {ALLOWED}", "GET /v1/card"),
        ("host-api local 127.0.0.1", "GET /v1/card/ireadcardbas"),
    ]
    assert person["holder"]["name"] not in json.dumps(audit(terminal.folder))
    health = requests.get(base + "/healthz", timeout=10).json()
    assert health["ok"] is True and health["devices"][f"reader:{READER0}"] is True
    metrics = requests.get(base + "/metrics", timeout=10).text
    assert 'sscard_decisions_total{outcome="accept",reason="ok"} 1.0' in metrics
    assert "/v1/hotel/checkin" in requests.get(base + "/openapi.json", timeout=10).json()["paths"]
    assert daemon.stop() == 0


def test_concurrent_clients_see_the_same_presentation(
    hall: tuple[DaemonProcess, str], terminal: TerminalFolder, cards
) -> None:
    _daemon, base = hall
    answers: list[dict[str, Any]] = []

    def ask() -> None:
        answer = requests.get(base + "/v1/card", params={"wait": 30}, timeout=60)
        answers.append(answer.json())

    clients = [threading.Thread(target=ask) for _ in range(8)]
    for client in clients:
        client.start()
    cards.insert(make_card("v3-sm4", t0=True))
    for client in clients:
        client.join(60)
    assert len(answers) == 8
    assert {a["presentation"] for a in answers} == {1}
    assert all(a["ok"] and a["decision"]["outcome"] == "accept" for a in answers)
    assert len(terminal.rows()) == 1  # one tap, whatever the number of clients


def test_no_card_foreign_origin_rebinding_and_token(terminal: TerminalFolder, cards) -> None:
    token = terminal.folder / "host.token"
    token.write_text("a-test-token-for-the-daemon-host-api")
    token.chmod(0o600)
    daemon, base = start_daemon_host(terminal, "service-hall", 'token_file = "host.token"\n')
    try:
        auth = {"Authorization": "Bearer a-test-token-for-the-daemon-host-api"}
        none = requests.get(base + "/v1/card", params={"wait": 0.2}, headers=auth, timeout=10)
        assert none.status_code == 422 and none.json()["code"] < 0
        assert requests.get(base + "/v1/readers", timeout=10).status_code == 401
        cards.insert(make_card("elderly", t0=True))
        daemon.wait_state("waiting_removal")
        foreign = requests.get(base + "/v1/card", headers={"Origin": FOREIGN, **auth}, timeout=10)
        assert foreign.status_code == 403 and "card" not in foreign.json()
        assert "access-control-allow-origin" not in foreign.headers
        rebound = requests.get(
            base + "/v1/card", headers={"Host": "evil.example", **auth}, timeout=10
        )
        assert rebound.status_code == 421
        ws_url = base.replace("http://", "ws://") + "/v1/ws"
        with pytest.raises(InvalidStatus):
            connect(ws_url, additional_headers={"Origin": FOREIGN})
        ok = requests.get(base + "/v1/card", headers={"Origin": ALLOWED, **auth}, timeout=10)
        assert ok.status_code == 200 and ok.json()["card"]["name"]
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_hotel_desk_checks_in_through_the_daemon(
    hotel: tuple[DaemonProcess, str], terminal: TerminalFolder, cards
) -> None:
    daemon, base = hotel
    person = holder("elderly")
    cards.insert(make_card("elderly", t0=True))  # before the clerk asks: it waits, undecided
    daemon.wait_state("waiting_removal")
    waiting = requests.get(base + "/v1/card", timeout=10)
    assert waiting.status_code == 422 and "waits for the desk" in waiting.json()["reason"]
    assert terminal.rows() == []
    body = python_client(base).hotel_checkin("0801", wait=20)  # the repository's client
    assert body["outcome"] == "accept" and body["record"]["room"] == "0801"
    assert body["shown"]["name"] != person["holder"]["name"]  # masked for the clerk
    rows = terminal.rows()
    assert [(r[1], r[2], r[3]) for r in rows] == [("hotel", "accept", "ok")]
    assert body["seq"] == rows[-1][0]
    cards.remove_all()
    daemon.wait_state("waiting_card")
    # asked first, then the guest taps: the next card serves the request
    answers: list[requests.Response] = []
    asking = threading.Thread(
        target=lambda: answers.append(
            requests.post(base + "/v1/hotel/checkin", json={"room": "12A", "wait": 30}, timeout=60)
        )
    )
    asking.start()
    cards.insert(make_card("v3-sm4", t0=True))
    asking.join(60)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].json()["record"]["room"] == "12A"
    assert [r[2:] for r in terminal.rows()] == [("accept", "ok"), ("accept", "ok")]
    assert [purpose for _w, _f, purpose in audit(terminal.folder)].count(
        "POST /v1/hotel/checkin"
    ) == 2
    assert daemon.stop() == 0


def test_a_hospital_desk_registers_with_the_pin_through_the_daemon(
    terminal: TerminalFolder, cards
) -> None:
    daemon, base = start_daemon_host(terminal, "hospital", "pin_attempts_per_minute = 3\n")
    try:
        cards.insert(make_card("ordinary-2.0", t0=True))
        daemon.wait_state("waiting_removal")
        register = base + "/v1/hospital/register"
        checked = requests.post(
            base + "/v1/card/pin/verify", json={"pin": "123456", "wait": 20}, timeout=40
        )
        assert checked.status_code == 200 and checked.json()["code"] == 0, checked.text
        assert terminal.rows() == []  # a PIN check decides nothing
        wrong = requests.post(register, json={"pin": "000000", "wait": 20}, timeout=40)
        assert wrong.status_code == 200, wrong.text
        assert wrong.json()["reason"] == "pin_wrong"
        assert wrong.json()["detail"] == {"tries_left": 2}
        right = requests.post(register, json={"pin": "123456", "wait": 20}, timeout=40).json()
        assert right["outcome"] == "accept" and right["record"]["medical.insurance_type"]
        assert "123456" not in daemon.err()
        limited = requests.post(register, json={"pin": "123456", "wait": 1}, timeout=40)
        assert limited.status_code == 429  # the fourth PIN of the minute from this client
        rows = terminal.rows()
        assert [(r[1], r[3]) for r in rows] == [("hospital", "pin_wrong"), ("hospital", "ok")]
        assert right["seq"] == rows[-1][0]
        assert daemon.stop() == 0
    finally:
        daemon.close()


def settle(base: str, pin: str, wait: float = 20) -> requests.Response:
    body = {"pin": pin, "pay_info": BILL, "wait": wait}
    return requests.post(base + "/v1/hospital/settle", json=body, timeout=40)


def test_a_hospital_daemon_settles_with_its_psam_and_bounds_pin_guessing(
    terminal: TerminalFolder, cards
) -> None:
    cards.insert(make_psam("psam-national"), slot=1)
    payments = "[payments]\ntear_window_s = 120\n"
    daemon, base = start_daemon_host(
        terminal, "hospital", "pin_attempts_per_minute = 3\n", sam_reader=READER1, tables=payments
    )
    try:
        card = cards.insert(make_card("ordinary-2.0", t0=True))
        assert card.medical_account is not None
        before = card.medical_account.balances.account
        daemon.wait_state("waiting_removal")
        wrong = settle(base, "000000")
        assert wrong.status_code == 422 and wrong.json()["code"] == -51, wrong.text
        assert card.medical_account.balances.account == before
        out = settle(base, "123456")
        assert out.status_code == 200, out.text
        body = out.json()
        assert body["code"] == 0 and body["decision"]["reason"] == "ok"
        assert body["result"].split("|")[2] == "30.00" and "123456" not in out.text
        assert card.medical_account.balances.account == before - 3000
        assert ireaddebitrecord_output(card.medical_account.records).endswith("^95.00^90.00^|")
        rows = terminal.rows()
        assert [(r[1], r[3]) for r in rows] == [
            ("hospital", "pin_wrong"),
            ("hospital", "purse_pending"),
            ("hospital", "ok"),
        ]
        assert body["decision"]["seq"] == rows[-1][0]
        checked = requests.post(base + "/v1/card/pin/verify", json={"pin": "000000"}, timeout=20)
        assert checked.status_code in (200, 422)  # the third PIN attempt of the minute
        limited = settle(base, "123456", wait=1)  # the fourth, whichever route sent the others
        assert limited.status_code == 429 and limited.json()["code"] == -1
        assert len(terminal.rows()) == 3 and "123456" not in daemon.err()
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_hospital_daemon_without_its_psam_refuses_to_settle(terminal: TerminalFolder) -> None:
    daemon, base = start_daemon_host(terminal, "hospital", sam_reader=READER1)
    try:
        out = settle(base, "123456", wait=1)
        assert out.status_code == 422, out.text
        assert out.json()["code"] == -2201 and "SSC PSAM" in out.json()["reason"]
        assert terminal.rows() == []
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_an_action_of_another_scenario_is_refused(
    hall: tuple[DaemonProcess, str], terminal: TerminalFolder
) -> None:
    _daemon, base = hall
    out = requests.post(base + "/v1/hotel/checkin", json={"room": "0801", "wait": 1}, timeout=20)
    assert out.status_code == 422
    assert out.json()["reason"].endswith("this terminal decides for service-hall, not hotel")
    assert terminal.rows() == []


def test_sighup_serves_the_new_host_settings_and_refuses_a_bad_token_file(
    hall: tuple[DaemonProcess, str], terminal: TerminalFolder
) -> None:
    daemon, base = hall
    port = base.rsplit(":", 1)[1]
    other = "http://pms.example"

    assert allowed_now(base, ALLOWED) and not allowed_now(base, other)
    text = terminal.config.read_text(encoding="utf-8")
    terminal.config.write_text(text.replace(f'origins = ["{ALLOWED}"]', f'origins = ["{other}"]'))
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while not allowed_now(base, other):
        assert time.monotonic() < deadline, daemon.err()[-2000:]
        time.sleep(0.1)
    assert not allowed_now(base, ALLOWED)
    loose = terminal.folder / "loose.token"
    loose.write_text("a-token-anyone-on-this-machine-can-read")
    loose.chmod(0o644)
    terminal.config.write_text(
        terminal.config.read_text(encoding="utf-8").replace(
            f"port = {port}\n", f'port = {port}\ntoken_file = "loose.token"\n'
        )
    )
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "reload refused" not in daemon.err():
        assert time.monotonic() < deadline, daemon.err()[-2000:]
        time.sleep(0.1)
    assert "token_file" in daemon.err() and "must be 0600" in daemon.err()
    assert allowed_now(base, other)  # still served, without a token, as before the refused reload
    assert daemon.stop() == 0


def allowed_now(base: str, origin: str) -> bool:
    """The API answers ``origin`` (it may be restarting: then not yet)."""
    try:
        return requests.get(base + "/v1/readers", headers={"Origin": origin}, timeout=10).ok
    except requests.ConnectionError:
        return False


def test_device_down_and_up_are_events(
    hall: tuple[DaemonProcess, str], terminal: TerminalFolder, pcscd, cards
) -> None:
    daemon, base = hall
    with requests.get(base + "/v1/events", stream=True, timeout=60) as sse:
        lines = (json.loads(row[6:]) for row in sse.iter_lines(decode_unicode=True)
                 if row.startswith("data: "))  # fmt: skip
        pcscd.stop(crash=True)
        got: list[dict[str, Any]] = []
        while not any(e["type"] == "device.down" for e in got):
            got.append(next(lines))
        pcscd.start()
        while not any(e["type"] == "device.up" for e in got):
            got.append(next(lines))
    kinds = [(e["type"], e["device"]) for e in got]
    assert ("device.down", f"reader:{READER0}") in kinds
    assert kinds.index(("device.down", f"reader:{READER0}")) < len(kinds) - 1
    assert kinds[-1][0] == "device.up"
    cards.insert(make_card("elderly", t0=True))  # and the desk reads again
    assert requests.get(base + "/v1/card", params={"wait": 20}, timeout=30).json()["ok"]
    assert daemon.stop() == 0
