"""Fault campaign: a damaged store file — a page overwritten, a row's JSON broken.

A page of the journal's table is overwritten with random bytes (a bad sector, a torn write
below SQLite): ``sscard doctor`` and ``sscard journal verify`` say so in one line each, without
a traceback; ``sscard run`` starts, checks the file and the chain (``Journal.check_sound``),
raises the operator's alarm naming the first row it cannot vouch for — every row before it
verifies — and goes on deciding, chained after the journal's head. A row whose JSON column no
longer decodes is a chain break at that row, never an exception. The short form damages a
store of 400 rows, the long one (``make faults``) one of 20,000; ``$SSCARD_FAULTS_SEED``
picks the page.
"""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_support import PEPPER, DaemonProcess, TerminalFolder, make_terminal
from fault_support import seeded, size
from support import make_card
from sync_support import fill_journal

from offline_store import Store

pytestmark = pytest.mark.e2e

ROWS = size(400, 20_000)
TABLE_LEAF = 0x0D  # the first byte of a b-tree table leaf page (SQLite file format §1.6)


def _open(terminal: TerminalFolder) -> Store:
    key = bytes.fromhex((terminal.folder / "journal.key").read_text())
    return Store.open(terminal.folder / "store.db", journal_key=key, pepper=PEPPER)


def _fill(terminal: TerminalFolder, rows: int) -> list[str]:
    """Journal ``rows`` decisions (quickly: :func:`sync_support.fill_journal`); their uuids."""
    path = terminal.folder / "store.db"
    fill_journal(path, rows, "E2E-RUN")
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT uuid FROM journal ORDER BY seq")]
    finally:
        conn.close()


def _sscard(*args: str) -> subprocess.CompletedProcess[str]:
    """An sscard command whose output names a random page: not a golden call."""
    return subprocess.run([sys.executable, "-m", "terminal.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def _damage_page_of(path: Path, marker: str, rng: random.Random) -> None:
    """Overwrite, with random bytes, the table leaf page that holds ``marker``."""
    data = path.read_bytes()
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    for found in re.finditer(re.escape(marker.encode()), data):
        start = found.start() // page_size * page_size
        if start and data[start] == TABLE_LEAF:
            with path.open("r+b") as out:
                out.seek(start)
                out.write(rng.randbytes(page_size))
            return
    raise AssertionError(f"no table page holds {marker}")


def _one_line_no_traceback(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_damaged_page_is_found_at_start_the_rows_before_it_verify(
    tmp_path: Path, pcscd, cards
) -> None:
    seed, rng = seeded(1)
    terminal = make_terminal(tmp_path)
    uuids = _fill(terminal, ROWS)
    target = rng.randrange(ROWS // 4, ROWS - ROWS // 4)  # seq target + 1: not the last page
    _damage_page_of(terminal.folder / "store.db", uuids[target], rng)

    said = _one_line_no_traceback(_sscard("journal", "verify", "--config", str(terminal.config)))
    broken = re.search(r"journal chain broken at seq (\d+)", said)
    assert broken, said
    first_bad = int(broken.group(1))
    assert 1 < first_bad <= target + 1, f"seed {seed}: {said}"
    said = _one_line_no_traceback(_sscard("doctor", "--config", str(terminal.config)))
    assert "fail  store: " in said and "database disk image is malformed" in said, said
    assert "sscard: doctor: 1 failed: store" in said

    daemon = DaemonProcess(terminal)
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
        assert f"sscard: ALARM: journal is down: damaged at seq {first_bad}" in daemon.err()
        assert f"({first_bad - 1} rows before it verify)" in daemon.err()
        cards.insert(make_card("ordinary-2.0", t0=True))
        assert daemon.wait_shown(1) == ["ok"]  # decisions go on after the head
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.err()
    finally:
        daemon.close()
    with _open(terminal) as store:
        report = store.journal.check_sound()
        assert (report.ok, report.first_bad_seq, report.rows) == (False, first_bad, first_bad - 1)
        assert store.journal.backlog().last_seq == ROWS + 1


def test_a_row_whose_json_does_not_decode_is_a_chain_break(tmp_path: Path) -> None:
    terminal = make_terminal(tmp_path)
    _fill(terminal, 20)
    conn = sqlite3.connect(terminal.folder / "store.db")
    with conn:
        conn.execute("UPDATE journal SET flags = '[\"stale' WHERE seq = 7")
    conn.close()
    with _open(terminal) as store:
        report = store.journal.check_sound()
    assert (report.ok, report.first_bad_seq, report.rows) == (False, 7, 6)
    assert report.problem == "row does not decode: JSONDecodeError"
    said = _one_line_no_traceback(_sscard("journal", "verify", "--config", str(terminal.config)))
    assert "sscard: journal chain broken at seq 7: row does not decode" in said
