"""Fault campaign: a damaged store file — a page overwritten, a row's JSON broken.

A page of the journal's table is overwritten with random bytes (a bad sector, a torn write
below SQLite): ``sscard doctor`` and ``sscard journal verify`` say so in one line each, without
a traceback; ``sscard run`` starts, checks the file and the chain (``Journal.check_sound``),
raises the operator's alarm naming the first row it cannot vouch for — every row before it
verifies — and goes on deciding, chained after the journal's head. A row whose JSON column no
longer decodes is a chain break at that row, never an exception. The short form damages a
store of 400 rows, the long one (``make faults``) one of 20,000; ``$SSCARD_FAULTS_SEED``
picks the page.

Recovery (docs/offline-store.md §5.8): three quarters of a store's rows are uploaded to a real
reference platform (``sscard platform serve``), then a page of those rows and a page of the
rows never uploaded are damaged. ``sscard journal recover`` plans, and with ``--yes`` rebuilds:
the new file verifies, every acknowledged row is back with its hash unchanged (salvaged from
the file or re-fetched from the platform), the unuploaded rows from the second damaged page on
are declared lost by seq, the damaged file is kept aside. ``sscard run`` starts on the new file
without the alarm, a tap chains on after the gap, and the daemon's sync uploads both: the
platform accepts the gap and ``platform tx verify`` reports the lost seqs as declared.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_support import PEPPER, DaemonProcess, TerminalFolder, make_terminal
from fault_support import seeded, size
from support import make_card
from sync_support import PlatformProcess, daemon_terminal, fill_journal, run, sscard

from offline_store import Store

pytestmark = pytest.mark.e2e

ROWS = size(400, 20_000)
UPLOADED = ROWS * 3 // 4
TERMINAL_ID = "T-RECOVER"
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


def _hashes(path: Path) -> dict[int, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT seq, hash FROM journal"))
    finally:
        conn.close()


def _uuid_of(path: Path, seq: int) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT uuid FROM journal WHERE seq = ?", (seq,)).fetchone()[0])
    finally:
        conn.close()


def test_recover_keeps_the_acknowledged_rows_declares_the_lost_ones_and_the_platform_takes_the_gap(
    tmp_path: Path, pcscd, cards
) -> None:
    seed, rng = seeded(2)
    platform = PlatformProcess(tmp_path / "platform")
    platform.init()
    platform.start()
    try:
        terminal = daemon_terminal(platform, tmp_path / "terminal", TERMINAL_ID)
        path = terminal.folder / "store.db"
        fill_journal(path, UPLOADED, TERMINAL_ID)
        run(sscard("sync", "--once", "--no-prune", "--config", str(terminal.config)), timeout=300)
        assert platform.ack_seq(TERMINAL_ID) == UPLOADED
        fill_journal(path, ROWS - UPLOADED, TERMINAL_ID)  # never uploaded
        before = _hashes(path)
        acked_page = rng.randrange(UPLOADED // 4, UPLOADED // 2)
        tail = ROWS - UPLOADED
        unuploaded_page = rng.randrange(UPLOADED + tail // 4, ROWS - tail // 4)
        for seq in (acked_page, unuploaded_page):
            _damage_page_of(path, _uuid_of(path, seq), rng)

        damaged = path.read_bytes()
        with Store.open(path):  # a process holds the store: recovery refuses, in one line
            said = _one_line_no_traceback(_sscard("journal", "recover", "--config",
                                                  str(terminal.config)))  # fmt: skip
        assert "is in use by process" in said and "stop the daemon first" in said, said

        planned = _sscard("journal", "recover", "--config", str(terminal.config))
        assert planned.returncode == 0, planned.stdout + planned.stderr
        lines = planned.stdout.splitlines()
        assert lines[0].startswith("journal damaged at seq ") and lines[2].startswith(
            "kept: seq 1-"
        )
        assert (
            lines[-1] == "run again with --yes to write a new store file (the damaged one is kept)"
        )
        assert path.read_bytes() == damaged  # a plan changes nothing

        done = _sscard("journal", "recover", "--yes", "--json", "--config", str(terminal.config))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
        plan = json.loads(done.stdout)
        first_lost = int(plan["lost_seqs"].split("-")[0])
        assert UPLOADED < first_lost <= unuploaded_page, f"seed {seed}: {plan}"
        assert plan["lost_seqs"] == f"{first_lost}-{ROWS}" and plan["gap_seq"] == ROWS + 1
        assert plan["refetched"] > 0 and plan["rebuilt"] and plan["unreadable"] == []
        assert plan["kept"] + plan["refetched"] + plan["lost"] == ROWS
        assert Path(plan["damaged_file"]).read_bytes() == damaged  # kept aside, as it was

        recovered = _hashes(path)
        assert {s: h for s, h in recovered.items() if s <= ROWS} == {
            s: h for s, h in before.items() if s < first_lost
        }  # every acknowledged row, and every row before the loss, exactly as it was
        with Store.open(path) as store:
            report = store.journal.check_sound()
            assert report.ok and report.gaps == ((first_lost, ROWS, ROWS + 1),), report
            assert store.journal.backlog().acked_seq == UPLOADED
        verified = _sscard("journal", "verify", "--config", str(terminal.config))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"declared gap: seqs {first_lost}-{ROWS} lost" in verified.stdout

        daemon = DaemonProcess(terminal)
        try:
            daemon.wait_notification("READY=1")
            daemon.wait_state("waiting_card")
            cards.insert(make_card("ordinary-2.0", t0=True))
            assert daemon.wait_shown(1) == ["ok"]
            deadline = time.monotonic() + 60
            while platform.ack_seq(TERMINAL_ID) < ROWS + 2:  # the gap row, then the tap
                assert time.monotonic() < deadline, daemon.err()[-3000:]
                time.sleep(0.2)
            assert daemon.stop() == 0
            assert "ALARM" not in daemon.err() and "Traceback" not in daemon.err()
        finally:
            daemon.close()
        stored = dict(platform.journal(TERMINAL_ID))
        assert set(stored) == set(range(1, first_lost)) | {ROWS + 1, ROWS + 2}
        assert all(stored[s] == before[s] for s in range(1, first_lost))
        checked = _sscard("platform", "tx", "verify", "--db", str(platform.db)).stdout
        assert f"{ROWS - first_lost + 1} declared lost ({first_lost}-{ROWS}): ok" in checked
        with Store.open(path) as store:
            assert store.journal.check_sound().ok
    finally:
        platform.stop()


def test_recover_says_nothing_to_recover_or_why_not_in_one_line(tmp_path: Path) -> None:
    terminal = make_terminal(tmp_path)
    _fill(terminal, 20)
    sound = _sscard("journal", "recover", "--config", str(terminal.config))
    assert (sound.returncode, sound.stdout) == (
        0, "nothing to recover: journal chain verified: 20 rows\n"
    )  # fmt: skip
    conn = sqlite3.connect(terminal.folder / "store.db")
    with conn:
        conn.execute("UPDATE journal SET flags = '[\"stale' WHERE seq = 7")
    conn.close()
    said = _one_line_no_traceback(_sscard("journal", "recover", "--config", str(terminal.config)))
    assert "[sync] needs url, key_file, key_id" in said, said  # rows 7-20 must be asked for
