"""The fleet simulator (tools/fleet.py), in its short form: a few dozen terminals uploading
through a platform on PostgreSQL that is SIGKILLed once; nothing lost, nothing doubled."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import fleet  # noqa: E402


def test_a_small_fleet_survives_a_platform_kill_without_losing_or_doubling_a_row(
    postgres_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fleet.json"
    argv = ["--terminals", "40", "--seconds", "6", "--interval", "1.5", "--kills", "1"]
    status = fleet.main([*argv, "--outage", "1", "--db", postgres_server, "--json", str(out)])
    result = json.loads(out.read_text())
    assert status == 0, capsys.readouterr().out
    assert result["ok"] is True
    assert result["rows_made"] >= 40 * 6
    assert result["rows_on_platform"] == result["rows_made"]
    # a kill after a batch's commit and before its answer: sent again, answered as duplicates
    assert result["accepted"] <= result["rows_made"] <= result["accepted"] + result["duplicates"]
    assert result["terminals_short"] == result["terminals_over"] == 0
    assert result["lag_p99_s"] >= result["lag_p50_s"] > 0
    assert "no row lost, none doubled" in capsys.readouterr().out


def test_nonsense_arguments_are_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        fleet.main(["--terminals", "0"])
    assert stop.value.code == 2
    assert "must be positive" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("counts", "ok"),
    [
        ({"accepted": 600_000, "duplicates": 0}, True),
        ({"accepted": 599_980, "duplicates": 20}, True),  # the 10,000-terminal run's answers
        ({"accepted": 599_980, "duplicates": 0}, False),  # 20 rows never acknowledged
        ({"accepted": 600_020, "duplicates": 0}, False),  # 20 rows stored as new twice
        ({"accepted": 600_000, "rows_on_platform": 599_999, "terminals_short": 1}, False),
        ({"accepted": 600_000, "rejected": 1}, False),
    ],
)
def test_the_verdict_counts_retried_rows_once(counts: dict[str, int], ok: bool) -> None:
    result = fleet.Result(10_000, 60, 2, rows_made=600_000, rows_on_platform=600_000)
    for name, value in counts.items():
        # the answers' counts are the fleet's Answers; the rows' are the result's own
        setattr(result.answered if hasattr(result.answered, name) else result, name, value)
    assert result.ok is ok
