"""``sscard demo``: every persona as an emulated card behind a real pcscd, read by ``sscard read``.

If a pcscd already runs (with the vpcd driver) it is used; otherwise one is started for the
demo and stopped afterwards. Each card is inserted in vpcd slot 0, read by a separate
``sscard read --format ireadcardbas`` process (the real CLI through pyscard), and removed.
Then a virtual PSAM goes into slot 1 and the cards that need one (3.0, and a forged card) are
read again with ``--sam-reader``: the 3.0 card opens EF06, the forged one is refused (−21).
Last, a bus validator decides taps with ``sscard tap`` (:mod:`terminal.demo_tap`).
The cards' keys and the PSAM derive from the TEST KEYS under ``drivers/virtual/test_keys/``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from config.settings import Settings
from drivers.keyfile import RootKeys, load_root_keys
from drivers.readers import Reader
from drivers.virtual import TEST_KEYS
from drivers.virtual.card import Behaviour
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.persona import Persona, load_persona
from drivers.virtual.psam import VirtualPsam, load_psam
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.vpcd import VpcdBridge
from terminal.compose import open_reader
from terminal.demo_tap import bus_validator

READER = "Virtual PCD 00 00"
PSAM_READER = "Virtual PCD 00 01"
#: the personas read a second time with the virtual PSAM in slot 1
WITH_PSAM = ("v3-sm4", "forged")


def _read_once(out: TextIO, *extra: str) -> None:
    command = [
        sys.executable,
        "-m",
        "terminal.cli",
        "read",
        "--reader",
        READER,
        "--format",
        "ireadcardbas",
        "--timeout",
        "10",
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.stdout.strip():
        print(f"  {done.stdout.strip()}", file=out)
    if done.returncode != 0:
        print(f"  (exit {done.returncode}) {done.stderr.strip()}", file=out)


def run_demo(personas: Path, out: TextIO, keys: Path = TEST_KEYS) -> int:
    """Insert each persona in turn and print what ``sscard read`` prints for it.

    :param personas: the folder of persona TOML files
    :param out: where to print
    :param keys: the folder of the TEST KEYS the cards and the PSAM derive from
    :returns: the exit status (0 when the daemon could be used)
    :raises ReaderUnavailable: pcscd is not running and cannot be started
    :raises SscardError: the TEST KEYS cannot be read
    """
    files = sorted(personas.glob("*.toml"))
    if not files:
        print(f"sscard: no persona files in {personas}", file=sys.stderr)
        return 2
    roots = load_root_keys(keys / "test-roots.toml", require_private=False)  # before pcscd starts
    daemon = None
    if running_pid() is None:
        daemon = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-demo-pcscd.log")
        daemon.start()
    print(f"pcscd pid {running_pid()}; cards go into {READER!r}", file=out)
    try:
        with open_reader(Settings(), name=READER) as reader:  # vpcd slot 0, through pcscd
            slot = _Slot(reader, roots)
            for path in files:
                for t0 in (False, True) if path.stem == "ordinary-2.0" else (False,):
                    _show(slot, path, out, t0=t0)
            psam = VirtualPsam(load_psam(keys / "psam-national.toml"), Behaviour(t0=True))
            print(f"\nvirtual PSAM (TEST KEYS) in {PSAM_READER!r}", file=out)
            psam_bridge = VpcdBridge(psam, slot=1)
            psam_bridge.insert()
            try:
                for name in WITH_PSAM:
                    _show(slot, personas / f"{name}.toml", out, psam=True)

                insert = _inserter(slot, personas)
                bus_validator(insert, PSAM_READER, READER, out)
            finally:
                psam_bridge.remove()
    finally:
        if daemon is not None:
            daemon.stop()
    return 0


@dataclass(frozen=True)
class _Slot:
    """vpcd slot 0 as the demo uses it: a persona's card put in, then taken out again.

    :param reader: the reader of slot 0, through pcscd
    :param roots: the TEST KEYS the cards derive from
    """

    reader: Reader
    roots: RootKeys

    def insert(self, persona: Persona, *, t0: bool = False) -> Callable[[], None]:
        """Put a persona's card in; the function that takes it out and waits until the reader
        has seen it go."""
        bridge = VpcdBridge(VirtualSscCard(persona, Behaviour(t0=t0), self.roots), slot=0)
        bridge.insert()

        def remove() -> None:
            bridge.remove()
            self.reader.wait_for_removal(timeout=3)

        return remove


def _show(slot: _Slot, path: Path, out: TextIO, *, t0: bool = False, psam: bool = False) -> None:
    """Insert one persona in slot 0, read it with the CLI, print the answer, remove it."""
    persona = load_persona(path)
    mode = "T=0" if t0 else "T=1"
    how = ", with the PSAM" if psam else ""
    print(f"\n[{persona.name}] {persona.description} ({mode}{how})", file=out)
    remove = slot.insert(persona, t0=t0)
    try:
        _read_once(out, *(("--sam-reader", PSAM_READER) if psam else ()))
    finally:
        remove()


def _inserter(slot: _Slot, personas: Path) -> Callable[[str], Callable[[], None]]:
    """A function that inserts a persona's card in slot 0, waits until the reader sees it, and
    returns its remover."""

    def insert(name: str) -> Callable[[], None]:
        remove = slot.insert(load_persona(personas / f"{name}.toml"))
        slot.reader.wait_for_card(5).close()
        return remove

    return insert
