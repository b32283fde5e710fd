"""The sync client against the reference platform (``sscard platform serve`` in a child process,
its own database, on loopback): a day's backlog drains with no row lost and none counted twice
although the server is killed mid-batch, the client is killed mid-upload, or a proxy drops,
delays and cuts connections; deny lists are verified before anything changes; a card reported
lost at the platform is refused at the terminal after one sync and accepted again after the
next one once unlisted; signatures and the clock are checked.

"Exactly once" is checked three ways: the platform's own chain walk (``platform tx verify``:
rows, its row counter, gaps, breaks, hashes), the platform's stored (seq, hash) pairs against
the terminal's journal, and the terminal's cursor and chain.
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import golden
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pipeline_support import World
from proxies import ChaosProxy, TamperProxy
from store_support import Clock
from support import CATALOGUE
from sync_support import (
    BACKLOG_ROWS,
    TERMINAL_ID,
    PlatformProcess,
    TerminalSetup,
    copy_store,
    fill_journal,
    register,
    sscard,
)

from offline_store import DenySignatureError, Store, canonical_card_id, load_pepper_file
from sync.reports import StepStatus
from sync.transport import Credentials
from terminal.reasons import Reason

pytestmark = pytest.mark.e2e

LOST_CARD = ("440100", "A01023450")  # the persona ordinary-2.0


def local_rows(path: Path) -> list[tuple[int, str]]:
    """(seq, hash) of the rows a store file holds, read without taking the store's lock."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT seq, hash FROM journal ORDER BY seq").fetchall()


def assert_exactly_once(platform: PlatformProcess, expected: list[tuple[int, str]]) -> None:
    """The platform holds exactly these rows, each once, and its own chain walk agrees."""
    assert platform.journal(TERMINAL_ID) == expected
    count = len(expected)
    line = f"{TERMINAL_ID}: {count} rows (counted {count}), seq 1-{count}, ack {count}: ok"
    assert line in platform.verify()


# --- no row lost, none counted twice -----------------------------------------------------


def test_the_backlog_survives_the_server_killed_mid_batch_twice(
    platform: PlatformProcess, terminal: TerminalSetup, backlog_100k: Path
) -> None:
    copy_store(backlog_100k, terminal.store_path)
    kill_after = [30_000, 65_000]
    due = threading.Event()
    done = threading.Event()
    rng = random.Random(6)

    def progress(acknowledged: int, total: int) -> None:
        if kill_after and acknowledged >= kill_after[0]:
            kill_after.pop(0)
            due.set()

    def killer() -> None:
        while not done.is_set():
            if due.wait(0.05):
                due.clear()
                time.sleep(rng.uniform(0.01, 0.1))  # the next batch is on its way
                platform.kill()
                platform.restart()

    thread = threading.Thread(target=killer, name="platform-killer")
    thread.start()
    try:
        with Store.open(terminal.store_path) as store:
            report = terminal.client(store, prune=False).upload(progress)
            backlog = store.journal.backlog()
            assert store.journal.verify_chain().ok
            assert all(row.uploaded for row in store.journal.rows())
    finally:
        done.set()
        thread.join(30)
    assert platform.restarts == 2
    assert (report.acked_from, report.acked_seq) == (0, BACKLOG_ROWS)
    assert (backlog.acked_seq, backlog.pending) == (BACKLOG_ROWS, 0)
    assert_exactly_once(platform, local_rows(terminal.store_path))


def test_the_backlog_survives_the_client_killed_mid_upload(
    platform: PlatformProcess, terminal: TerminalSetup, backlog_100k: Path
) -> None:
    copy_store(backlog_100k, terminal.store_path)
    expected = local_rows(backlog_100k)
    argv = sscard("sync", "--once", "--config", str(terminal.config_file))
    killed_at = []
    for threshold in (25_000, 60_000):
        client = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while platform.ack_seq(TERMINAL_ID) < threshold:
            assert client.poll() is None, "the client ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.send_signal(signal.SIGKILL)
        golden.observed(argv, client.wait(10), None)
        killed_at.append(platform.ack_seq(TERMINAL_ID))
    assert killed_at[-1] < BACKLOG_ROWS
    final = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    # how many rows the last run sent, and how many came back as duplicates, depend on when
    # the kills landed: the golden file keeps the line, not those counts
    counts = re.compile(r"\d+ (rows acknowledged|duplicates)")
    golden.observed(argv, final.returncode, counts.sub(r"<n> \1", final.stdout), final.stderr)
    assert final.returncode == 0, final.stdout + final.stderr
    # the last run resumed from the terminal's cursor, which may trail the platform's by the
    # batch the platform stored just before the kill: that batch comes back as duplicates
    resumed = re.search(r"upload +ok +(\d+) rows acknowledged .*, (\d+) duplicates", final.stdout)
    assert resumed, final.stdout
    acknowledged, duplicates = int(resumed.group(1)), int(resumed.group(2))
    assert BACKLOG_ROWS - killed_at[-1] <= acknowledged <= BACKLOG_ROWS - 25_000
    assert acknowledged - duplicates == BACKLOG_ROWS - killed_at[-1]
    with Store.open(terminal.store_path) as store:
        backlog = store.journal.backlog()
        assert (backlog.last_seq, backlog.acked_seq, backlog.anchor_seq) == (BACKLOG_ROWS,) * 3
        assert store.journal.count() == 0  # pruned after the complete drain
        assert store.journal.verify_chain().ok
    assert_exactly_once(platform, expected)


def test_the_backlog_drains_through_a_proxy_that_drops_delays_and_cuts_connections(
    platform: PlatformProcess, terminal: TerminalSetup
) -> None:
    rows = 12_000
    fill_journal(terminal.store_path, rows, TERMINAL_ID)
    proxy = ChaosProxy(("127.0.0.1", platform.port), seed=2026)
    try:
        with Store.open(terminal.store_path) as store:
            client = terminal.client(store, url=proxy.url, batch_rows=200, prune=False)
            report = client.upload()
            assert store.journal.backlog().pending == 0
            assert store.journal.verify_chain().ok
    finally:
        proxy.close()
    assert report.acked_seq == rows
    spoiled = {fate: n for fate, n in proxy.fates.items() if fate != "pass"}
    assert {"refuse", "cut_request", "cut_answer"} <= set(spoiled), proxy.fates
    assert report.duplicates > 0  # an answer was cut after the platform stored its batch
    assert_exactly_once(platform, local_rows(terminal.store_path))


# --- lists ---------------------------------------------------------------------------------


def _flip(signature: str) -> str:
    return ("B" if signature[0] == "A" else "A") + signature[1:]


def test_a_deny_delta_with_a_bad_signature_is_refused_and_changes_nothing(
    platform: PlatformProcess, terminal: TerminalSetup
) -> None:
    with Store.open(terminal.store_path) as store:
        assert terminal.client(store).sync_once().ok
    platform.run("deny", "add", ":".join(LOST_CARD), "--reason", "lost", keys=True)
    pepper = load_pepper_file(terminal.folder / "pepper")
    proxy = TamperProxy(("127.0.0.1", platform.port), "X-Sscard-Deny-Signature", _flip)
    try:
        with Store.open(terminal.store_path, pepper=pepper) as store:
            card = store.card_hash(canonical_card_id(*LOST_CARD))
            before = store.deny.status()
            report = terminal.client(store, url=proxy.url).sync_once()
            deny = report.step("deny")
            assert deny is not None and deny.status is StepStatus.REFUSED
            assert "DenySignatureError" in deny.detail
            assert report.exit_status == 1
            assert {s.name for s in report.steps if s.status is StepStatus.OK} >= {
                "time", "secrets", "trust", "catalogue", "upload", "heartbeat",
            }  # fmt: skip
            assert store.deny.status() == before and store.deny.lookup(card) is None
            with pytest.raises(DenySignatureError):
                terminal.client(store, url=proxy.url).update_deny()
            assert proxy.tampered == 2
            applied = terminal.client(store).update_deny()  # straight to the platform
            assert applied.imported == ((2, "delta", 1),)
            hit = store.deny.lookup(card)
            assert hit is not None and hit.reason == "lost"
    finally:
        proxy.close()


def test_a_card_lost_at_the_platform_is_refused_after_one_sync_and_accepted_once_unlisted(
    platform: PlatformProcess, tmp_path: Path
) -> None:
    platform.run("catalogue", "load", str(CATALOGUE))
    setup = register(platform, tmp_path / "gate", "T-TEST-01")  # the pipeline's terminal id
    with Store.open(setup.store_path) as store:
        assert setup.client(store).sync_once().ok
    clock = Clock(time.time())
    pepper = load_pepper_file(setup.folder / "pepper")
    with Store.open(
        setup.store_path, journal_key=os.urandom(32), pepper=pepper, clock=clock
    ) as store:
        world = World(store, clock, Ed25519PrivateKey.generate(), tmp_path, io.StringIO())
        assert world.tap("transit", "ordinary-2.0")[0].accepted

        platform.run("deny", "add", ":".join(LOST_CARD), "--reason", "lost", keys=True)
        clock.now = time.time()
        assert setup.client(store).sync_once().ok
        refused = world.tap("transit", "ordinary-2.0")[0]
        assert refused.reason == Reason.DENY_LOST
        assert refused.detail["list_version"] == 2

        platform.run("deny", "remove", ":".join(LOST_CARD), keys=True)  # 解挂
        clock.now = time.time()
        assert setup.client(store).sync_once().ok
        assert world.tap("transit", "ordinary-2.0")[0].accepted
        assert setup.client(store).upload().acked_seq == 3
    stored = platform.journal("T-TEST-01")
    assert [seq for seq, _ in stored] == [1, 2, 3]


# --- signatures and the clock ------------------------------------------------------------------


def test_a_refused_signature_fails_the_sync_and_a_stale_timestamp_is_a_clock_alarm(
    platform: PlatformProcess, terminal: TerminalSetup
) -> None:
    # the platform's own refusals (unsigned, unknown key, bad signature, stale, replayed) are
    # tested request by request in tests/emulated/test_platform_api.py; here: what the
    # terminal makes of them
    with Store.open(terminal.store_path) as store:
        config = terminal.config()
        wrong = Credentials(config.credentials.terminal_id, config.credentials.key_id, bytes(32))
        report = terminal.client(store, credentials=wrong).sync_once()
        assert [(s.name, s.status) for s in report.steps] == [("time", StepStatus.FAILED)]
        assert "bad_signature" in report.steps[0].detail and report.exit_status == 2

        late = terminal.client(store)
        late.transport.clock = lambda: time.time() - 1000  # a terminal clock 1000 s behind
        report = late.sync_once()
        assert [(s.name, s.status) for s in report.steps] == [("time", StepStatus.ALARM)]
        assert re.search(r"off by \+(99\d|100\d) s", report.steps[0].detail), report.steps[0]
        assert report.exit_status == 1


def test_a_terminal_clock_off_by_more_than_the_limit_raises_an_alarm(
    platform: PlatformProcess, terminal: TerminalSetup
) -> None:
    with Store.open(terminal.store_path) as store:
        client = terminal.client(store)
        client.clock = client.transport.clock = lambda: time.time() - 200  # signatures still pass
        report = client.sync_once()
        time_step = report.step("time")
        assert time_step is not None and time_step.status is StepStatus.ALARM
        assert report.exit_status == 1
        assert all(s.status is StepStatus.OK for s in report.steps if s.name != "time")
        assert abs(float(store.meta.get("sync.clock_offset_s") or 0) - 200) < 2

        client.clock = client.transport.clock = lambda: time.time() - 30  # within the limit
        assert client.sync_once().ok
    listing = platform.run("terminal", "list").stdout
    assert re.search(r"offset \+(29|30|31)\.\ds", listing), listing


# --- the command ---------------------------------------------------------------------------


def test_sync_once_exit_statuses(platform: PlatformProcess, terminal: TerminalSetup) -> None:
    done = terminal.sync_once()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "sync: ok"
    assert [line.split()[0] for line in done.stdout.splitlines()[:-1]] == [
        "time", "secrets", "deny", "trust", "catalogue", "upload", "ecard", "heartbeat",
    ]  # fmt: skip
    for name in ("pepper", "deny.pem", "qr-root.pem", "audience.keys"):
        assert (terminal.folder / name).stat().st_mode & 0o777 == 0o600
    (terminal.folder / "sync.key").unlink()
    missing = terminal.sync_once()
    assert missing.returncode == 2 and "cannot read the sync key file" in missing.stderr


def test_the_sync_loop_runs_until_sigterm(
    platform: PlatformProcess, terminal: TerminalSetup
) -> None:
    argv = sscard("sync", "--interval", "0.2", "--config", str(terminal.config_file))
    loop = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert loop.stdout is not None
    verdicts = 0
    deadline = time.monotonic() + 30
    seen = ""
    while verdicts < 2:
        line = loop.stdout.readline()
        seen += line
        assert line and time.monotonic() < deadline, "the loop stopped syncing"
        if line.startswith("sync: "):
            assert line.strip() == "sync: ok"
            verdicts += 1
    loop.send_signal(signal.SIGTERM)
    assert loop.wait(15) == 0
    loop.stdout.close()
    golden.observed(argv, loop.returncode, seen)
