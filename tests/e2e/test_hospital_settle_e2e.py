"""End to end (issue 15): ``POST /v1/hospital/settle`` on ``sscard host serve`` over real HTTP,
pcscd+vpcd and the emulated card's medical account, with the development SAM: the account
debited once, the ``iDoDebit`` answer, the hospital rows in the store; a wrong PIN and a
malformed bill settle nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from host_support import serve_host
from support import make_card

pytestmark = pytest.mark.e2e

BILL = "95.00|30.00+60.00|20261129101500|"


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("settle")


@pytest.fixture(scope="module")
def api(host_dir: Path, pcscd: object) -> Iterator[str]:
    yield from serve_host(host_dir)


def reasons(folder: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{folder / 'store.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT scenario, reason_code FROM journal ORDER BY seq")
        return [(str(a), str(b)) for a, b in rows]


def settle(api: str, pin: str, pay_info: str = BILL) -> requests.Response:
    body = {"pin": pin, "pay_info": pay_info, "wait": 5}
    return requests.post(api + "/v1/hospital/settle", json=body, timeout=30)


def test_a_bill_is_settled_once_and_answers_idodebit(api: str, host_dir: Path, cards) -> None:
    card = cards.insert(make_card("ordinary-2.0", t0=True))
    assert card.medical_account is not None
    before = card.medical_account.balances.account
    wrong = settle(api, "000000")
    assert wrong.status_code == 422 and wrong.json()["code"] == -51
    assert card.medical_account.balances.account == before
    bad = settle(api, "123456", "10.00|30.00|20261129101500|")
    assert bad.status_code == 422 and bad.json()["result"] == ""
    out = settle(api, "123456")
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["code"] == 0 and body["decision"]["reason"] == "ok"
    fields = body["result"].split("|")
    assert fields[2] == "30.00" and fields[6] == "20261129101500" and len(fields[7]) == 8
    assert "123456" not in out.text and "card_serial" not in out.text
    assert card.medical_account.balances.account == before - 3000
    assert reasons(host_dir)[-2:] == [("hospital", "purse_pending"), ("hospital", "ok")]
    assert "123456" not in (host_dir / "serve.err").read_text()
