"""``sscard demo --daemon`` (``make demo``): the terminal daemon at a Guangzhou bus validator.

It starts what it needs and stops it again: pcscd with vpcd (unless one runs), the reference
platform (``sscard platform serve`` on loopback, TEST KEYS) with the terminal registered and a
student's card reported lost, a virtual PSAM in vpcd slot 1, and ``sscard run`` with the
validator's settings after one ``sscard sync --once`` (pepper, lists, catalogue, trust list).
Then it presents, one after the other, the cards and codes of :data:`PRESENTATIONS` — cards
through vpcd slot 0, e-card codes through the daemon's stdin scanner — and prints each decision
as the validator's indicator shows it, waits for the daemon's sync thread to hand the journal
to the platform, prints what the platform received, and stops everything. Exit status 0 when
every presentation got the decision it should and the platform holds exactly the journaled rows.
"""

from __future__ import annotations

import queue
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from apdu.errors import SscardError
from drivers.keyfile import load_root_keys
from drivers.pcsc import PcscReader
from drivers.virtual import PERSONAS, TEST_KEYS
from drivers.virtual.card import Behaviour
from drivers.virtual.pcscd import PcscdProcess, running_pid
from drivers.virtual.persona import load_persona
from drivers.virtual.psam import VirtualPsam, load_psam
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.vpcd import VpcdBridge
from terminal.demo_tap import CATALOGUE, LOST

READER, PSAM_READER = "Virtual PCD 00 00", "Virtual PCD 00 01"
TERMINAL_ID = "DEMO-RUN-01"
DECISION_TIMEOUT_S = 15.0
DEDUP_S = 3.2  # a scanner takes the same text again only after 3 s (drivers/scanners/base.py)
SIGNALS = ("ACCEPT", "REFUSE", "ATTENTION")


@dataclass(frozen=True, slots=True)
class Presentation:
    """One thing held to the validator.

    :param label: what the demo says it is
    :param persona: the persona's file stem
    :param kind: ``card``, ``code`` (a fresh e-card code) or ``replay`` (the last code again)
    :param reason: the reason code the validator must give
    :param tear_after: the card leaves the field after this many commands
    """

    label: str
    persona: str
    kind: str
    reason: str
    tear_after: int | None = None


PRESENTATIONS = (
    Presentation("valid 2nd-generation card", "ordinary-2.0", "card", "ok"),
    Presentation("valid 3rd-generation card", "v3-sm4", "card", "ok"),
    Presentation("card of another province (Nanchang)", "jiangxi-nanchang", "card", "ok"),
    Presentation("card reported lost (挂失)", "student", "card", "deny_lost"),
    Presentation("expired card", "expired", "card", "expired"),
    Presentation("forged card", "forged", "card", "not_genuine"),
    Presentation("valid e-card code", "elderly", "code", "ok"),
    Presentation("card pulled mid-read", "elderly", "card", "card_removed", tear_after=3),
    Presentation("the same e-card code replayed", "elderly", "replay", "qr_replay"),
)


def _sscard(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args], capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise SscardError(f"sscard {args[0]} {args[1]}: {done.stderr.strip()[-500:]}")
    return done


class _Lines:
    """The lines a child writes to a stream, read by a thread into a queue."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.all.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait(self, pattern: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if re.search(pattern, line):
                return line
        return None


def _platform(folder: Path, out: TextIO) -> tuple[subprocess.Popen[str], str, list[str]]:
    db, keys = ["--db", str(folder / "platform.db")], ["--keys", str(folder / "keys")]
    _sscard("platform", "init", "--test-keys", *db, *keys)
    catalogue = folder / "catalogue.toml"
    catalogue.write_text(CATALOGUE, encoding="utf-8")
    _sscard("platform", "catalogue", "load", str(catalogue), *db)
    _sscard("platform", "deny", "add", ":".join(LOST), "--reason", "lost", *db, *keys)
    server = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli", "platform", "serve", *db, *keys, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    first = server.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+/)", first)
    if not found:
        server.terminate()
        raise SscardError(f"the platform did not start: {first!r}")
    print(f"reference platform on {found.group(1)} (TEST KEYS); the student's card is lost",
          file=out)  # fmt: skip
    return server, found.group(1), db


def _terminal(folder: Path, url: str, db: list[str], out: TextIO) -> Path:
    folder.mkdir()
    added = _sscard(
        "platform", "terminal", "add", TERMINAL_ID, "--scenarios", "transit", "--region",
        "440100", "--key-out", str(folder / "sync.key"), "--url", url, *db,
    )  # fmt: skip
    key_id = re.search(r'key_id = "([^"]+)"', added.stdout)
    if key_id is None:
        raise SscardError(f"terminal add printed no key id: {added.stdout!r}")
    config = folder / "terminal.toml"
    config.write_text(
        f'[terminal]\nid = "{TERMINAL_ID}"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\ndeny_public_key = "deny.pem"\n'
        '[ecard]\ntrust_root_key = "qr-root.pem"\naudience_keys = "audience.keys"\n'
        f'[sync]\nurl = "{url}"\nkey_id = "{key_id.group(1)}"\nkey_file = "sync.key"\n'
        'region = "440100"\n'
    )
    synced = _sscard("sync", "--once", "--config", str(config), check=False)
    print(f"validator {TERMINAL_ID}: sscard sync --once → {synced.stdout.splitlines()[-1:]}",
          file=out)  # fmt: skip
    with config.open("a", encoding="utf-8") as settings:
        settings.write(
            "[indicators]\nconsole = true\nvoice = false\n"
            f'[daemon]\nscenario = "transit"\nreaders = ["{READER}"]\n'
            f'sam_reader = "{PSAM_READER}"\nscanners = ["stdin"]\nsync_interval_s = 1\n'
        )
    return config


def _decision(line: str) -> tuple[str, str, str]:
    """(signal, reason, prompt) of a console indicator line."""
    signal_name, _, rest = line.partition(" ")
    reason = line.rsplit("(", 1)[1].rstrip(")")
    prompt = rest.strip().split("  ")[0]
    return signal_name, reason, prompt


def run_daemon_demo(out: TextIO) -> int:
    """Run the daemon demo; see the module docstring.

    :param out: where to print
    :returns: 0 when every decision and the platform's rows are as they should be, else 1
    :raises SscardError: pcscd cannot be started, the TEST KEYS cannot be read
    """
    roots = load_root_keys(TEST_KEYS / "test-roots.toml", require_private=False)
    pcscd = None
    if running_pid() is None:
        pcscd = PcscdProcess(Path(tempfile.gettempdir()) / "sscard-demo-pcscd.log")
        pcscd.start()
    psam = VpcdBridge(VirtualPsam(load_psam(TEST_KEYS / "psam-national.toml"),
                                  Behaviour(t0=True)), slot=1)  # fmt: skip
    psam.insert()
    try:
        with tempfile.TemporaryDirectory(prefix="sscard-demo-run-") as name:
            folder = Path(name)
            server, url, db = _platform(folder, out)
            try:
                config = _terminal(folder / "terminal", url, db, out)
                return _run(config, folder, db, roots, out)
            finally:
                server.terminate()
                server.wait(15)
    finally:
        psam.remove()
        if pcscd is not None:
            pcscd.stop()


def _run(config: Path, folder: Path, db: list[str], roots: object, out: TextIO) -> int:
    started = time.monotonic()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli", "-v", "run", "--config", str(config)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert daemon.stdin is not None and daemon.stderr is not None
    lines = _Lines(daemon.stderr)
    ok = True
    try:
        if lines.wait("event=daemon_ready", 30) is None:
            print("sscard run did not start:\n" + "\n".join(lines.all[-20:]), file=out)
            return 1
        print(f"sscard run: ready in {time.monotonic() - started:.1f} s; the validator decides\n",
              file=out)  # fmt: skip
        print(f"  {'presented':<38} {'outcome':<9} {'reason':<14} indicator", file=out)
        ok = _present(daemon.stdin, lines, roots, out)
        ok = _uploaded(folder, db, len(PRESENTATIONS), out) and ok
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(30)
    print(f"sscard run: SIGTERM → exit status {status}", file=out)
    return 0 if ok and status == 0 else 1


def _present(stdin: IO[str], lines: _Lines, roots: object, out: TextIO) -> bool:
    ok = True
    code = ""
    code_sent = 0.0
    with PcscReader() as readers:
        for item in PRESENTATIONS:
            bridge = None
            if item.kind == "card":
                card = VirtualSscCard(load_persona(PERSONAS / f"{item.persona}.toml"),
                                      Behaviour(tear_after=item.tear_after), roots)  # type: ignore[arg-type]  # fmt: skip
                bridge = VpcdBridge(card, slot=0)
                bridge.insert()
            else:
                if item.kind == "code":
                    issued = _sscard("qr", "issue", "--persona",
                                     str(PERSONAS / f"{item.persona}.toml"))  # fmt: skip
                    code = issued.stdout.splitlines()[0].strip()
                else:
                    time.sleep(max(0.0, code_sent + DEDUP_S - time.monotonic()))
                stdin.write(code + "\n")
                stdin.flush()
                code_sent = time.monotonic()
            line = lines.wait(rf"^({'|'.join(SIGNALS)})\b", DECISION_TIMEOUT_S)
            if bridge is not None:
                bridge.remove()
                readers.wait_for_removal(READER, timeout=3)
            if line is None:
                print(f"  {item.label:<38} (no decision within {DECISION_TIMEOUT_S:g} s)", file=out)
                ok = False
                continue
            signal_name, reason, prompt = _decision(line)
            mark = "" if reason == item.reason else f"   ✗ expected {item.reason}"
            ok = ok and not mark
            print(f"  {item.label:<38} {signal_name.lower():<9} {reason:<14} {prompt}{mark}",
                  file=out)  # fmt: skip
    return ok


def _uploaded(folder: Path, db: list[str], expected: int, out: TextIO) -> bool:
    deadline = time.monotonic() + 20
    rows = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{folder / 'platform.db'}?mode=ro", uri=True, timeout=5) as c:
            rows = c.execute(
                "SELECT COUNT(*) FROM journal WHERE terminal_id = ?", (TERMINAL_ID,)
            ).fetchone()[0]
        if rows >= expected:
            break
        time.sleep(0.2)
    print(f"\nthe daemon's sync thread handed {rows} of {expected} journal rows to the platform:",
          file=out)  # fmt: skip
    listed = _sscard("platform", "tx", "list", "--terminal", TERMINAL_ID, *db, check=False)
    for line in listed.stdout.splitlines():
        print(f"  {line}", file=out)
    return rows == expected
