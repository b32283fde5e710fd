"""Helpers shared by the test modules (importable because setup.cfg puts tests/ on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import golden

from apdu.records import CardAlgorithm, CardContents, Generation
from apdu.sam import CardIdentity, SecurityModule
from apdu.transport import Connection
from drivers.virtual import PERSONAS as VIRTUAL_PERSONAS
from drivers.virtual import TEST_KEYS as VIRTUAL_TEST_KEYS
from drivers.virtual.card import Behaviour
from drivers.virtual.persona import Persona, load_persona
from drivers.virtual.ssc_card import VirtualSscCard

PERSONAS = VIRTUAL_PERSONAS  # the package's own files: the tests and `sscard demo` share them
READER0 = "Virtual PCD 00 00"
READER1 = "Virtual PCD 00 01"

# card identities for the security-module tests (what a module sees of a card)
# Guangzhou 2.0 DES card: 卡识别码 = city ‖ D156000005 ‖ serial ‖ auth code (spec §4.3 example)
GZ_CARD = CardIdentity(
    CardAlgorithm.DES,
    bytes.fromhex("440100D15600000500A1B2C35E6F7081"),
    bytes.fromhex("00814E43238697440100A1B2C3"),
    Generation.V2,
)
# Hangzhou 3.0 SM4 card: Zhejiang's city factor is the exception of spec §3.5
HZ_CARD = CardIdentity(
    CardAlgorithm.SM4,
    bytes.fromhex("330100D15600000504112233FFFFFFFF"),
    bytes.fromhex("00814E43238697330104112233"),
    Generation.V3,
)
SSF33_CARD = CardIdentity(
    CardAlgorithm.SSF33,
    bytes.fromhex("110100D15600000501020304A0B0C0D0"),
    bytes.fromhex("00814E43238697110101020304"),
    Generation.V2,
)


@dataclass(frozen=True)
class AuthenticatedRead:
    """What the national flow read, and from which module."""

    contents: CardContents
    terminal_number: str
    module: str


def read_authenticated(
    connection: Connection, historical: bytes, module: SecurityModule | None
) -> AuthenticatedRead:
    """The ``iReadCardBas`` flow of ``sscard read`` with a module, its errors raised."""
    from terminal.reading import read_contents

    contents = read_contents(connection, historical, module, authenticate=True)
    assert module is not None  # read_contents raised NoSecurityModule otherwise
    return AuthenticatedRead(contents, module.terminal_number(), module.kind)


def persona_path(name: str) -> Path:
    """The file of a persona by stem."""
    return PERSONAS / f"{name}.toml"


def persona(name: str) -> Persona:
    """Load a persona by stem."""
    return load_persona(persona_path(name))


def all_persona_names() -> list[str]:
    """Every persona stem of the package's personas (drivers/virtual/personas)."""
    return sorted(p.stem for p in PERSONAS.glob("*.toml"))


KEYS = VIRTUAL_TEST_KEYS
CATALOGUE = Path(__file__).parent / "catalogue.toml"
TEST_ROOTS = KEYS / "test-roots.toml"


def load_test_roots():
    """The test root keys (the committed file; the virtual cards need no 0600)."""
    from drivers.keyfile import load_root_keys

    return load_root_keys(TEST_ROOTS, require_private=False)


def make_card(name: str, *, keys: bool = True, **behaviour: object) -> VirtualSscCard:
    """An emulated card for a persona, with keys derived from the test roots."""
    roots = load_test_roots() if keys else None
    return VirtualSscCard(persona(name), Behaviour(**behaviour), roots)  # type: ignore[arg-type]


def make_psam(name: str, **behaviour: object):
    """An emulated PSAM from drivers/virtual/test_keys/<name>.toml (T=0 like real PSAMs)."""
    from drivers.virtual.psam import VirtualPsam, load_psam

    behaviour.setdefault("t0", True)
    return VirtualPsam(load_psam(KEYS / f"{name}.toml"), Behaviour(**behaviour))  # type: ignore[arg-type]


def run_sscard(
    *args: str, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``sscard`` CLI in a child process (its output is checked against the golden
    files, :mod:`golden`)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env=env,
        check=False,
    )
    return golden.completed(done, stdin)
