"""docs/integrators.md works as written: its example runs, and the rows it makes hold what the
document says they hold (a decision journaled without a card)."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from store_support import raw

from drivers.indicators import ConsoleIndicator
from offline_store import JournalError, Store
from terminal.pipeline import Pipeline
from terminal.profiles import load_profile
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrators.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_documented_example_runs_and_its_rows_are_as_described(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (example,) = python_blocks(DOC.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(DOC), "exec"), {})  # the document's own code, as written
    with Store.open(tmp_path / "integration-test.db") as store:
        rows = list(store.journal.rows())
        assert [(r.scenario, r.catalogue_item, r.terminal_id) for r in rows] == [
            ("gate", "0501", "TEST-01"),
            ("gate", "0501", "TEST-01"),
        ]
        assert [(r.outcome, r.reason_code) for r in rows] == [
            ("accept", "ok"),
            ("refuse", "capacity_full"),
        ]
        assert all(r.credential_token == "" and r.personal_fields == () for r in rows)
        assert store.audit.rows() == []
        today = dt.date.today()
        assert store.day_counts.get("entries:gate", today) == 1  # the accept counts


def test_amount_flags_signal_and_what_is_not_counted(tmp_path: Path) -> None:
    console = io.StringIO()
    with Store.open(tmp_path / "s.db") as store:
        bus = Pipeline(
            load_profile("transit"), store, terminal_id="T", indicator=ConsoleIndicator(console)
        )
        ride = bus.record_without_card(
            Reason.OK, flags=("stale_list:deny_list",), fare_fen=200, concession=None
        )
        retry = bus.record_without_card(Reason.CARD_REMOVED)
        meals = Pipeline(load_profile("meal-point"), store, terminal_id="T")
        meals.record_without_card(Reason.OK, subsidy_category="elderly_60", meals_left=1)
        rows = list(store.journal.rows())
        assert [(r.outcome, r.amount, r.flags) for r in rows] == [
            ("accept", 200, ("stale_list:deny_list",)),
            ("refuse", None, ()),  # "try again" is journaled as a refusal
            ("accept", None, ()),
        ]
        assert (ride.outcome, retry.outcome) == ("accept", "attention")
        with pytest.raises(JournalError, match="flag"):
            bus.record_without_card(Reason.OK, flags=("Not A Flag",))
    assert "ACCEPT" in console.getvalue() and "请重新刷卡" in console.getvalue()
    with raw(tmp_path / "s.db") as conn:  # no per-holder meal count without a card hash
        assert conn.execute("SELECT COUNT(*) FROM day_count").fetchone() == (0,)
