"""End to end: PSAMs whose keys sit at different numbers of levels, through the real pcscd
(vpcd slot 0: the card, slot 1: the PSAM).

The level mixes run the real ``sscard read --sam-reader`` in a child process, as a terminal
does: a genuine 3.0 card reads and a forged one is refused as not genuine (−21), whatever mix
of IRK and RKSSSE levels the PSAM holds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from support import KEYS, READER0, READER1, load_test_roots, persona, run_sscard

from apdu.psam import KEY_IRK
from drivers.virtual.card import Behaviour
from drivers.virtual.persona import PersonaKeys
from drivers.virtual.psam import VirtualPsam, load_psam
from drivers.virtual.ssc_card import VirtualSscCard

pytestmark = pytest.mark.e2e

H = bytes.fromhex
V3 = persona("v3-sm4")  # Hangzhou 330100, SM4
V3_LINE = (
    "330100|310000197811203384|E55120706|330100D15600000504112233FFFFFFFF|李晓梅|"
    "00814A44468660330104112233|3.00|20240520|20340519|330100000042||"
)


def psam(tmp_path: Path, irk: int, rkssse: int) -> VirtualPsam:
    """A PSAM issued for Hangzhou with its IRK and RKSSSE at their own numbers of levels."""
    path = tmp_path / "psam.toml"
    path.write_text(
        'test_keys = true\nterminal_number = "330100000042"\n'
        f"levels = {{ irk = {irk}, rkssse = {rkssse}, purchase = 2 }}\n"
        'issued_for = "330100"\nalgorithms = ["des", "sm4"]\n'
        f'roots = "{KEYS / "test-roots.toml"}"\n'
    )
    return VirtualPsam(load_psam(path), Behaviour(t0=True))


def card(algorithm: str, forged: bool) -> VirtualSscCard:
    base = replace(V3, algorithm_id=0x01) if algorithm == "des" else V3
    if forged:
        base = replace(base, keys=PersonaKeys(forged=True))
    return VirtualSscCard(base, Behaviour(t0=True), load_test_roots())


def bf_de(device: VirtualPsam) -> list[tuple[int, int, str]]:
    return [(c[2], c[3], r[-2:].hex().upper()) for c, r in device.log if c[:2] == H("BFDE")]


@pytest.mark.parametrize(
    ("irk", "rkssse", "algorithm"),
    [(3, 2, "sm4"), (2, 3, "sm4"), (3, 2, "des"), (1, 3, "des")],
    ids=["irk3-rkssse2-sm4", "irk2-rkssse3-sm4", "irk3-rkssse2-des", "irk1-rkssse3-des"],
)
def test_a_genuine_3_0_card_reads_and_a_forged_one_is_21_with_mixed_levels(
    cards, tmp_path: Path, irk: int, rkssse: int, algorithm: str
) -> None:
    # a forged card first: not genuine (-21), not a PSAM status word (-27264 before the fix)
    cards.insert(psam(tmp_path, irk, rkssse), slot=1)
    cards.insert(card(algorithm, forged=True))
    done = run_sscard(
        "read", "--reader", READER0, "--sam-reader", READER1, "--format", "json",
        "--timeout", "10",
    )  # fmt: skip
    out = json.loads(done.stdout)
    assert (done.returncode, out["code"]) == (2, -21), done.stderr
    assert "card" not in out and "-21" in done.stderr
    cards.remove_all()
    device = cards.insert(psam(tmp_path, irk, rkssse), slot=1)
    cards.insert(card(algorithm, forged=False))
    done = run_sscard(
        "read", "--reader", READER0, "--sam-reader", READER1, "--format", "ireadcardbas",
        "--timeout", "10",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == V3_LINE
    # the IRK was tried on its own from 3 down, never at the count RKSSSE needed
    irk_usages = [usage >> 5 for usage, key, _ in bf_de(device) if key == KEY_IRK]
    assert irk_usages == list(range(3, irk - 1, -1))
