"""The one shape every benchmark reports in: a :class:`Row` per measured quantity, beside its
goal from issue 16, and the helpers the bench modules share to fill it.

Each ``bench/bench_*.py`` exposes ``measure(quick: bool) -> list[Row]``; ``bench/run.py``
collects the rows into one table (and JSON, and the README's Markdown). A bench whose
prerequisite is missing returns one :func:`unavailable` row instead of failing.
"""

from __future__ import annotations

import argparse
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """Whether a row meets its goal."""

    MET = "met"
    MISSED = "missed"
    INFO = "info"  # no goal: a baseline or a figure printed for context
    UNAVAILABLE = "unavailable"  # the prerequisite is missing here


COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True, slots=True)
class Row:
    """One measured quantity and its goal.

    :param bench: the benchmark module's short name (``read``, ``qr``, …)
    :param name: what was measured
    :param value: the measurement (``None`` when unavailable)
    :param unit: its unit (``ms``, ``µs``, ``rows/s``, ``×``, ``%``, ``APDUs``, …)
    :param goal: the goal in the same unit, or ``None`` for a row without one
    :param comparison: how ``value`` must compare with ``goal``: ``<=``, ``>=`` or ``==``
    :param verdict: met, missed, info or unavailable
    :param note: the baseline, the sample count or why the row is unavailable
    """

    bench: str
    name: str
    value: float | None
    unit: str
    goal: float | None
    comparison: str
    verdict: Verdict
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON values."""
        return asdict(self) | {"verdict": str(self.verdict)}


def row(
    bench: str,
    name: str,
    value: float,
    unit: str,
    *,
    goal: float | None = None,
    comparison: str = "<=",
    note: str = "",
) -> Row:
    """A measured row; its verdict is decided here from ``goal`` and ``comparison``.

    :param bench: the benchmark's short name
    :param name: what was measured
    :param value: the measurement
    :param unit: its unit
    :param goal: the goal, or ``None`` for an informative row
    :param comparison: ``<=``, ``>=`` or ``==``
    :param note: the baseline or the sample count
    :raises KeyError: for an unknown comparison
    """
    check = COMPARE[comparison]
    if goal is None:
        verdict = Verdict.INFO
    else:
        verdict = Verdict.MET if check(value, goal) else Verdict.MISSED
    return Row(bench, name, value, unit, goal, comparison, verdict, note)


def unavailable(bench: str, name: str, why: str) -> Row:
    """The row of a bench that cannot run here.

    :param bench: the benchmark's short name
    :param name: what it would have measured
    :param why: the missing prerequisite
    """
    return Row(bench, name, None, "", None, "", Verdict.UNAVAILABLE, why)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample at ``fraction`` of the sorted samples (nearest rank).

    :param samples: at least one sample
    :param fraction: 0.5 for the median, 0.99 for p99
    :raises ValueError: with no samples
    """
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    """The wall time of each of ``rounds`` calls, in seconds, after one untimed warm-up call
    (a first call loads tables and fills caches that the rest find ready).

    :param fn: what to time
    :param rounds: how many calls
    """
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def rounds_option(doc: str | None, default: int, what: str) -> int:
    """The ``--rounds N`` option of a bench's own entry point, parsed from the command line.

    :param doc: the bench module's docstring (its first line is the help's description)
    :param default: the rounds of a full run
    :param what: what one round is, for the help (``reads per path``)
    """
    parser = argparse.ArgumentParser(description=(doc or "").partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=default, help=what)
    rounds: int = parser.parse_args().rounds
    return rounds


def print_rows(rows: Sequence[Row]) -> None:
    """Print rows as the table ``bench/run.py`` prints, for a bench's own entry point.

    :param rows: the rows
    """
    for line in table(rows):
        print(line)


def value_text(value: float | None) -> str:
    """A measurement with sensible digits."""
    if value is None:
        return "—"
    size = abs(value)
    if size >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def goal_text(item: Row) -> str:
    """``≤ 3 ms``, ``≥ 20 ×`` or empty."""
    if item.goal is None:
        return ""
    sign = {"<=": "≤", ">=": "≥", "==": "="}[item.comparison]
    return f"{sign} {value_text(item.goal)} {item.unit}".rstrip()


def table(rows: Sequence[Row]) -> list[str]:
    """The plain-text table, one line per row.

    :param rows: the rows
    """
    head = f"{'bench':<9} {'measure':<60} {'value':>12} {'unit':<7} {'goal':<16} {'verdict':<11}"
    lines = [head, "-" * len(head)]
    for item in rows:
        lines.append(
            f"{item.bench:<9} {item.name[:60]:<60} {value_text(item.value):>12} "
            f"{item.unit:<7} {goal_text(item):<16} {item.verdict!s:<11} {item.note}".rstrip()
        )
    return lines


def markdown(rows: Sequence[Row]) -> list[str]:
    """The README's Markdown table.

    :param rows: the rows
    """
    lines = ["| bench | measure | value | goal | verdict | note |", "|---|---|---:|---|---|---|"]
    for item in rows:
        value = f"{value_text(item.value)} {item.unit}".strip()
        note = item.note.replace("|", "/")
        lines.append(
            f"| {item.bench} | {item.name} | {value} | {goal_text(item)} | {item.verdict} "
            f"| {note} |"
        )
    return lines
