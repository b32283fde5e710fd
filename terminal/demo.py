"""``sscard demo``: every persona as an emulated card behind a real pcscd, read by ``sscard read``.

If a pcscd already runs (with the vpcd driver) it is used; otherwise one is started for the
demo and stopped afterwards. Each card is inserted in vpcd slot 0, read by a separate
``sscard read --format ireadcardbas`` process (the real CLI through pyscard), and removed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from apdu.errors import ReaderUnavailable
from drivers.pcsc import PcscReader
from drivers.virtual.card import Behaviour
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.persona import load_persona
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.vpcd import VpcdBridge

READER = "Virtual PCD 00 00"


def _read_once(out: TextIO) -> None:
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
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.stdout.strip():
        print(f"  {done.stdout.strip()}", file=out)
    if done.returncode != 0:
        print(f"  (exit {done.returncode}) {done.stderr.strip()}", file=out)


def run_demo(personas: Path, out: TextIO) -> int:
    """Insert each persona in turn and print what ``sscard read`` prints for it.

    :param personas: the folder of persona TOML files
    :param out: where to print
    :returns: the exit status (0 when the daemon could be used)
    """
    files = sorted(personas.glob("*.toml"))
    if not files:
        print(f"sscard demo: no persona files in {personas}", file=sys.stderr)
        return 2
    daemon = None
    if running_pid() is None:
        daemon = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-demo-pcscd.log")
        try:
            daemon.start()
        except ReaderUnavailable as exc:
            print(f"sscard demo: {exc}", file=sys.stderr)
            return 2
    print(f"pcscd pid {running_pid()}; cards go into {READER!r}", file=out)
    try:
        with PcscReader() as readers:
            for path in files:
                persona = load_persona(path)
                for t0 in (False, True) if path.stem == "ordinary-2.0" else (False,):
                    card = VirtualSscCard(persona, Behaviour(t0=t0))
                    mode = "T=0" if t0 else "T=1"
                    print(f"\n[{persona.name}] {persona.description} ({mode})", file=out)
                    bridge = VpcdBridge(card, slot=0)
                    bridge.insert()
                    try:
                        _read_once(out)
                    finally:
                        bridge.remove()
                        readers.wait_for_removal(READER, timeout=3)
    finally:
        if daemon is not None:
            daemon.stop()
    return 0
