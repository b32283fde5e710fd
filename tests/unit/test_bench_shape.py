"""The benchmark runner's shape (bench/run.py, bench/shape.py): one cheap bench in quick mode
through the runner, its JSON, the verdicts, and a bench that cannot run here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402 - bench/run.py
from shape import Verdict, row, unavailable  # noqa: E402

FIELDS = {"bench", "name", "value", "unit", "goal", "comparison", "verdict", "note"}


def test_a_quick_run_writes_one_row_per_measure_in_the_json_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--only", "sm2", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert {"date", "machine", "python", "quick", "seconds", "rows"} <= set(document)
    assert document["quick"] is True
    rows = document["rows"]
    assert rows and all(set(item) == FIELDS for item in rows)
    assert {item["bench"] for item in rows} == {"sm2"}
    native = [item for item in rows if item["name"] == "SM2 verify (tongsuopy)"]
    if native:  # the native backend is installed: its row carries issue 5's goal
        (item,) = native
        assert (item["goal"], item["comparison"], item["unit"]) == (1.0, "<=", "ms")
        assert item["verdict"] == ("met" if item["value"] <= 1.0 else "missed")
    printed = capsys.readouterr().out
    assert "SM2 verify" in printed and "rows, " in printed


def test_verdicts_follow_the_goal_and_the_comparison() -> None:
    assert row("x", "fast", 2.0, "ms", goal=3.0).verdict is Verdict.MET
    assert row("x", "slow", 4.0, "ms", goal=3.0).verdict is Verdict.MISSED
    assert row("x", "rate", 19_000, "rows/s", goal=20_000, comparison=">=").verdict is (
        Verdict.MISSED
    )
    assert row("x", "count", 7, "APDUs", goal=7, comparison="==").verdict is Verdict.MET
    assert row("x", "baseline", 1.0, "ms").verdict is Verdict.INFO


def test_a_bench_that_cannot_be_imported_is_an_unavailable_row_not_a_crash() -> None:
    rows, failed = run.run_one("no_such_bench", quick=True)
    (item,) = rows
    assert (item.verdict, item.value, failed) == (Verdict.UNAVAILABLE, None, False)
    assert "not importable" in item.note
    assert unavailable("read", "x", "no pcscd").to_dict()["verdict"] == "unavailable"


def test_the_markdown_table_has_a_line_per_row() -> None:
    rows = [row("qr", "p50", 2.5, "ms", goal=3.0), unavailable("read", "pcscd", "no pcscd")]
    lines = run.markdown(rows)
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| qr | p50 | 2.5 ms | ≤ 3 ms | met |")
