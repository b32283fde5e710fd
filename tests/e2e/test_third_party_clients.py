"""Clients no one here wrote agree with the emulator: pcsc-tools' ``pcsc_scan`` and ``scriptor``.

``scriptor`` sends raw APDUs through pcsc-lite and prints the card's answers; the expected
answers are written out by hand from the spec (doc §2.2, §3.1–§3.3), byte for byte.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support import READER0, make_card

pytestmark = pytest.mark.e2e

SELECT_SSSE = "00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make test` installs pcsc-tools")
    return path


def scriptor(lines: list[str], tmp_path) -> list[str]:
    script = tmp_path / "script.txt"
    script.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [tool("scriptor"), "-r", READER0, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # answers start with "< "; a long answer continues on the next line
    answers: list[str] = []
    for line in done.stdout.splitlines():
        if line.startswith("< "):
            answers.append(line[2:])
        elif answers and not line.startswith((">", "Using")) and ":" not in answers[-1]:
            answers[-1] += line
    return [a.split(":")[0].replace(" ", "").upper() for a in answers]


def test_pcsc_scan_shows_the_emulated_atr(cards) -> None:
    card = cards.insert(make_card("ordinary-2.0"))
    done = subprocess.run(
        [tool("pcsc_scan"), "-c", "-n", "-t", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    atr = " ".join(f"{b:02X}" for b in card.atr)
    assert f"ATR: {atr}" in done.stdout, done.stdout
    assert atr.startswith("3B ED 00 00 81 31 FE 45 00 81")  # T=1 ATR with the SSC hist bytes


def test_scriptor_t0_session_gets_spec_answers(cards, tmp_path) -> None:
    cards.insert(make_card("ordinary-2.0", t0=True))
    answers = scriptor(
        [
            SELECT_SSSE,
            "00 C0 00 00 1E",
            "00 A4 02 00 02 EF 05",
            "00 B2 07 00 00",  # spec: READ RECORD with Le 00 answers 6Cxx on T=0
            "00 B2 07 00 0B",
            "00 B2 03 00 06",
            "00 A4 02 00 02 EF 06",
            "00 B2 08 00 14",
            "00 B2 0A 00 03",
            "00 B2 55 00 03",  # no such record
            "00 C0 00 00 10",  # nothing pending
            "00 CA 00 00 00",  # unknown instruction
        ],
        tmp_path,
    )
    assert answers == [
        "611E",
        # spec doc §2.2 layout, algorithm 01 (DES) for this 2.0 card
        "6F1C840F7378312E73682EC9E7BBE1B1A3D5CFA50988011E9F0C038601019000",
        "9000",
        "6C0B",
        "0709" + b"A01023450".hex().upper() + "9000",
        "0304" + b"2.00".hex().upper() + "9000",
        "9000",
        "0812" + b"440000199003071027".hex().upper() + "9000",
        "0A01329000",
        "6A83",
        "6985",
        "6D00",
    ]


def test_scriptor_3_0_card_guards_ef06(cards, tmp_path) -> None:
    cards.insert(make_card("v3-sm4"))
    answers = scriptor(
        [
            SELECT_SSSE + " 00",
            "00 A4 02 00 02 EF 05",
            "00 B2 03 00 06",
            "00 A4 02 00 02 EF 06",
            "00 B2 08 00 14",
        ],
        tmp_path,
    )
    assert answers[0].endswith("9F0C038601039000")  # SM4 announced in the FCI
    assert answers[2] == "0304" + b"3.00".hex().upper() + "9000"
    assert answers[4] == "6982"  # security status not satisfied until RKSSSE
