"""The platform's side of payments (issue 15): purchases made with the real emulated transit
purses and transit PSAM (``apdu/purchase.py``, tearing and recovery included), journaled as
rows with their ``payment`` object, uploaded through the sync client's signed transport to the
platform served on loopback; its clearing (清分) must equal the drop of the purses' balances to
the fen, with every TAC verified — on SQLite and on PostgreSQL (``platform_db``).

``$SSCARD_CLEARING_PURCHASES`` sizes the campaign (300 by default; ``make faults``: 10,000).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import requests
from clearing_support import ISSUERS, RowJournal, run_campaign, upload
from payment_support import medical_settlement
from platform_support import LivePlatform, cli, live_platform, record, seal
from sqlalchemy import func, select

from platform_server.db import journal_payment

pytestmark = pytest.mark.emulated

DAY = "2026-11-29"
CAMPAIGN = int(os.environ.get("SSCARD_CLEARING_PURCHASES", "300"))


def _upload(live: LivePlatform, journal: RowJournal) -> None:
    upload(live.url, live.terminals["T1"], live.clock, journal.uploaded)


def _expected(journal: RowJournal, drops: list[int]) -> dict[str, int]:
    done = [r for r in journal.rows.values() if r.journal_state == "done"]
    assert sum(r.charge.amount for r in done) == sum(drops)  # the terminal's own account
    return {"count": len(done), "sum_fen": sum(drops)}


def _check_report(report: dict, journal: RowJournal, drops: list[int]) -> None:
    expected = _expected(journal, drops)
    total = report["total"]
    assert (total["count"], total["sum_fen"]) == (expected["count"], expected["sum_fen"])
    assert total["tac_ok"] == total["count"], "every TAC verifies"
    assert total["tac_failed"] == total["tac_unchecked"] == total["unresolved"] == 0
    by_issuer = {row["issuer"]: row["sum_fen"] for row in report["issuers"]}
    for parity, issuer in enumerate(ISSUERS):
        assert by_issuer.get(issuer, 0) == sum(drops[parity::2])
    assert [t["terminal_id"] for t in report["terminals"]] == ["T1"]
    assert report["terminals"][0]["sum_fen"] == expected["sum_fen"]


@pytest.fixture
def live(platform_db: str | None, tmp_path: Path):
    with live_platform(tmp_path, {"T1": ("transit",)}, db_url=platform_db) as run:
        yield run


def test_150_purchases_clear_to_the_fen_and_a_tampered_tac_is_reported(
    live: LivePlatform, tmp_path: Path
) -> None:
    journal, drops = run_campaign(150, cards=6, seed=15)
    _upload(live, journal)
    report = live.platform.clearing(DAY).to_json()
    _check_report(report, journal, drops)
    states = Counter(r["payment"]["state"] for r in journal.uploaded)
    assert states["torn"] and states["done"] > 120, states  # tearing happened, most paid

    _upload(live, journal)  # the same rows again: duplicates, nothing counted twice
    assert live.platform.clearing(DAY).to_json() == report
    # the chain hash covered each object's digest: the stored chain verifies; the objects are kept
    [summary] = live.platform.verify_chains("T1")
    assert summary.ok and summary.rows == len(journal.uploaded)
    with live.platform.engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(journal_payment)).scalar()
    assert kept == len(journal.uploaded)
    # a row hashed over the object itself, not its digest, is not the terminal's: bad_hash
    seq = len(journal.uploaded) + 1
    wrong = seal(record("T1", seq, payment=journal.uploaded[-1]["payment"]), journal.prev_hash)
    answer = live.client().upload([wrong]).json()
    assert answer["rejected"] == [{"seq": seq, "code": "bad_hash"}]

    # a row restating the last purchase with a forged TAC: the latest row wins, and its TAC fails
    forged = dict(journal.uploaded[-1]["payment"])
    assert forged["state"] == "done"
    forged["tac"] = f"{int(forged['tac'], 16) ^ 1:08X}"
    upload(live.url, live.terminals["T1"], live.clock, [journal.append(forged)])
    tampered = live.platform.clearing(DAY).to_json()["total"]
    assert tampered["count"] == report["total"]["count"]
    assert (tampered["tac_failed"], tampered["tac_ok"]) == (1, report["total"]["count"] - 1)

    # the operator's HTTP route, with and without the bearer token
    token = (live.keys_dir / "operator.token").read_text().strip()
    url = f"{live.url.rstrip('/')}/v1/clearing?day={DAY}"
    assert requests.get(url, timeout=30).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer " + "0" * 64}, timeout=30)
    assert wrong.status_code == 401 and wrong.json()["code"] == "operator_token"
    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["total"] == tampered
    bad_day = requests.get(
        url.replace(DAY, "2026-13-01"), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert bad_day.status_code == 400


def test_a_campaign_with_tearing_kills_and_retaps_clears_exactly(live: LivePlatform) -> None:
    journal, drops = run_campaign(CAMPAIGN, cards=20, seed=16)
    _upload(live, journal)
    _check_report(live.platform.clearing(DAY).to_json(), journal, drops)


def test_the_clearing_command_and_a_day_without_purchases(tmp_path: Path) -> None:
    with live_platform(tmp_path, {"T1": ("transit",)}) as live:
        journal, drops = run_campaign(40, cards=2, seed=17)
        _upload(live, journal)
    db = f"sqlite:///{tmp_path / 'platform.db'}"
    done = cli("clearing", "--day", DAY, "--format", "json", "--db", db)
    assert done.returncode == 0, done.stderr
    _check_report(json.loads(done.stdout), journal, drops)
    text = cli("clearing", "--day", DAY, "--db", db)
    assert text.returncode == 0 and text.stdout.startswith(f"clearing {DAY}: ")
    empty = cli("clearing", "--day", "2026-11-30", "--db", db)
    assert empty.returncode == 0 and "0 purchases 0.00 yuan" in empty.stdout
    refused = cli("clearing", "--day", "29/11/2026", "--db", db)
    assert refused.returncode == 2
    assert refused.stderr == "sscard: the clearing day is a date YYYY-MM-DD\n"


def test_production_refuses_the_test_tac_roots(tmp_path: Path) -> None:
    db, keys = f"sqlite:///{tmp_path / 'platform.db'}", tmp_path / "keys"
    assert cli("init", "--test-keys", "--db", db, "--keys", str(keys)).returncode == 0
    for name in ("payment-roots.toml", "operator.token"):
        assert (keys / name).stat().st_mode & 0o777 == 0o600
    refused = cli("serve", "--production", "--port", "0", "--db", db, "--keys", str(keys))
    assert refused.returncode == 2
    assert "TEST KEY payment roots: a production platform refuses them" in refused.stderr
    assert refused.stdout == ""


def test_a_medical_settlement_an_unknown_issuer_and_a_torn_purchase_each_have_their_line(
    live: LivePlatform,
) -> None:
    rec, card_id = medical_settlement()
    assert rec.tac is not None and rec.terminal_number is not None
    medical = {
        "kind": "medical",
        "state": "done",
        "amount_fen": rec.charge.amount,
        "self_pay_fen": rec.charge.self_pay,
        "pooled_fen": rec.charge.pooled,
        "balance_before": rec.balance_before,
        "balance_after": rec.balance_after,
        "card_sequence": rec.card_sequence,
        "terminal_sequence": rec.terminal_sequence,
        "tac": rec.tac.hex().upper(),
        "time": rec.when.strftime("%Y%m%d%H%M%S"),
        "terminal_number": rec.terminal_number,
        "card_serial": card_id.upper(),
        "issuer": None,
    }
    journal, _ = run_campaign(3, cards=1, seed=18)
    stranger = {**journal.uploaded[-1]["payment"], "issuer": "9999000000000000"}
    torn = {**stranger, "card_sequence": 7, "state": "torn", "tac": None, "issuer": ISSUERS[0]}
    for extra in (medical, stranger, torn):
        journal.append(extra)
    # the platform clears for the two issuers of the campaign only: the stranger has no key
    roots = live.keys_dir / "payment-roots.toml"
    listed = ", ".join(f'"{issuer}"' for issuer in ISSUERS)
    roots.write_text(roots.read_text().replace("[transit]\n", f"[transit]\nissuers = [{listed}]\n"))
    live.restart()
    _upload(live, journal)
    report = live.platform.clearing(DAY).to_json()
    issuers = {(row["kind"], row["issuer"]): row for row in report["issuers"]}
    city = card_id[:6]
    assert issuers[("medical", city)]["sum_fen"] == 3000
    assert issuers[("medical", city)]["tac_ok"] == 1
    assert issuers[("transit", "9999000000000000")]["tac_unchecked"] == 1  # no key: said so
    assert report["total"]["unresolved"] == 1  # the torn purchase the card never came back for
