"""Benchmark: APDUs per scenario against the fewest the card specification allows.

Each scenario taps the ``ordinary-2.0`` persona — an emulated 2.0 card (T=1) with the software
SAM — through the real pipeline (``terminal.pipeline.Pipeline``) with the shipped profile, on a
real store file, and counts the commands the card received (its APDU log). The purchase counts
card and PSAM commands (``bench_purchase``). Each count is set beside a minimum derived from
the shared card specification notes, ssc-card-spec.md (§ numbers below), with the addressing
the spec's own sequence uses (SELECT the EF, READ RECORD by identifier, §3.2–3.3):

* transit identity and gate (no personal field, ``require_genuine``): SELECT SSSE (§3.3 step 2),
  SELECT EF05 (step 3), READ 01 卡识别码 (the card's region and the L2 diversification factor,
  §3.5), READ 02 卡的类别 (the free and reduced fares), READ 03 规范版本 (2.0 or 3.0 rules),
  READ 06 有效期 (expiry), READ 07 卡号 (the deny-list identity), INTERNAL AUTHENTICATE (§3.4:
  the process factor and the original data are bytes the terminal sends; a GET CHALLENGE is
  needed only for EXTERNAL AUTHENTICATE) — **8**;
* hotel (name, SSN, sex, ethnicity, birth date): those 8, READ 05 发卡日期 (a tap that reads the
  SSN and the name answers a front desk with the ``iReadCardBas`` string, whose field 8 it is,
  §4.3), SELECT EF06 and READ 08, 09, 4E (the name extension, 2.0+, §2.5), 0A, 0B, 0D — **16**;
* hospital (name, SSN, sex, birth date, three medical fields, PIN): those 8, READ 05 (as the
  hotel), VERIFY (§5), SELECT EF06 and READ 08, 09, 4E, 0A, 0D, SELECT the medical DF and its EF,
  three READ RECORD — **21**;
* purchase (T=1 card, T=0 PSAM): see ``bench_purchase`` — **7**.

Nothing is asserted. Run: ``.venv/bin/python bench/bench_apdus.py``.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shape import Row, print_rows, row

from offline_store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import bench_purchase
from pipeline_support import PEPPER, Clock, World
from support import CATALOGUE

PERSONA = "ordinary-2.0"
#: scenario → (profile, tap options, spec minimum)
SCENARIOS: dict[str, tuple[str, dict[str, str], int]] = {
    "transit identity": ("transit", {}, 8),
    "gate": ("gate", {}, 8),
    "hotel": ("hotel", {"room": "1208"}, 16),
    "hospital": ("hospital", {"pin": "123456"}, 21),
}


def count_taps() -> dict[str, tuple[int, str]]:
    """Tap each scenario once; the commands the card received and the decision."""
    folder = Path(tempfile.mkdtemp(prefix="sscard-bench-apdus-"))
    try:
        clock = Clock()
        with Store.open(folder / "store.db", journal_key=os.urandom(32), pepper=PEPPER,
                        clock=clock) as store:  # fmt: skip
            store.catalogue.load_file(CATALOGUE)
            world = World(store, clock, Ed25519PrivateKey.generate(), folder, io.StringIO())
            world.deny("snapshot", 1, [])
            counts = {}
            for scenario, (profile, options, _) in SCENARIOS.items():
                decision, card = world.tap(profile, PERSONA, **options)
                counts[scenario] = (len(card.log), f"{decision.outcome} {decision.reason}")
            return counts
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(quick: bool) -> list[Row]:
    """APDUs per scenario beside the spec minimum (counts do not vary: quick changes nothing).

    :param quick: unused; a count is the same in both forms
    """
    found = []
    for scenario, (sent, decided) in count_taps().items():
        minimum = SCENARIOS[scenario][2]
        found.append(
            row("apdus", f"APDUs per tap, {scenario} (2.0 card, T=1)", sent, "APDUs",
                goal=minimum, comparison="<=", note=f"{decided}; spec minimum {minimum}")
        )  # fmt: skip
    purchase = bench_purchase.run(0.0, False, 3)
    found.append(
        row("apdus", "APDUs per purchase (card T=1 + PSAM T=0)", purchase["apdus"], "APDUs",
            goal=purchase["minimum"], comparison="<=", note="see bench_purchase")
    )  # fmt: skip
    return found


if __name__ == "__main__":
    print_rows(measure(quick=False))
