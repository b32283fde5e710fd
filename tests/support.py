"""Helpers shared by the test modules (importable because setup.cfg puts tests/ on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from drivers.virtual.card import Behaviour
from drivers.virtual.persona import Persona, load_persona
from drivers.virtual.ssc_card import VirtualSscCard

PERSONAS = Path(__file__).parent / "personas"
READER0 = "Virtual PCD 00 00"
READER1 = "Virtual PCD 00 01"


def persona_path(name: str) -> Path:
    """The file of a persona by stem."""
    return PERSONAS / f"{name}.toml"


def persona(name: str) -> Persona:
    """Load a persona by stem."""
    return load_persona(persona_path(name))


def all_persona_names() -> list[str]:
    """Every persona stem under tests/personas."""
    return sorted(p.stem for p in PERSONAS.glob("*.toml"))


def make_card(name: str, **behaviour: object) -> VirtualSscCard:
    """An emulated card for a persona with the given behaviours."""
    return VirtualSscCard(persona(name), Behaviour(**behaviour))  # type: ignore[arg-type]


def run_sscard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real ``sscard`` CLI in a child process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
