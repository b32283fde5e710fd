"""Fault campaign (issue 15): fares taken by ``sscard run`` through a real pcscd, under random
tearing, random re-taps and random SIGKILLs of the daemon, uploaded by the daemon's own sync
thread to the reference platform serving on loopback. At the end the platform's clearing — in
total, for the terminal, and per card issuer — equals the drop of the emulated purses'
balances to the fen, every TAC checks, no purchase is doubled or lost (each card's offline
sequence advanced once per cleared purchase), and the terminal's journal verifies.

Four emulated cards with transit purses (distinct serials, two issuers, known starting
balances) are tapped in a random order on vpcd slot 0; the transit PSAM sits in slot 1. A tap
is torn at random: after the DEBIT committed and before its answer (``tear_before_answer``),
during the DEBIT before the card acts on it, or earlier, at a random command of the read
(``tear_after``). A torn card comes back at a random later turn, within the tear window; so
does one whose daemon was killed, either while the tap's ``purse_pending`` row was the last
(between pending and done) or at a random moment of a tap. A final round taps every card
once, cleanly, so any purchase still open is recovered before the upload.

Only in-process (``tests/emulated/test_fare_campaign.py``, ``test_transit_purchase.py``):
tearing of the PSAM, a wrong MAC2, and re-taps after the tear window (that needs a clock the
test can move; here the daemon reads the wall clock). The short form (``make test``) makes
:data:`TAPS` = 12 taps with one kill; ``make faults`` makes ``SSCARD_FARE_DAEMON_TAPS``
(2,000 by default). ``SSCARD_FAULTS_SEED`` replays a run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from daemon_support import DaemonProcess, TerminalFolder, journal_verify, take_away
from fault_support import seeded, size
from payment_support import transit_psam
from support import READER1, load_test_roots, persona
from sync_support import PlatformProcess, daemon_terminal

from drivers.virtual.card import Behaviour
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.transit_purse import VirtualTransitPurse

pytestmark = pytest.mark.e2e

TERMINAL_ID = "T-FARES-01"
TAPS = int(os.environ.get("SSCARD_FARE_DAEMON_TAPS", str(size(12, 2000))))
TEAR_ONE_IN = 4
KILL_ONE_IN = 10
ISSUERS = ("4401000000000000", "4403000000000000")
TEAR_WINDOW_S = 3600  # every re-tap falls inside it: the run lasts less


def _cards() -> list[VirtualSscCard]:
    """Four cards of the ``ordinary-2.0`` persona, each with a purse of its own."""
    base = persona("ordinary-2.0")
    assert base.transit is not None
    cards = []
    for index in range(4):
        public = dataclasses.replace(
            base.transit.public,
            serial=base.transit.public.serial[:-1] + bytes([0xA0 + index]),
            issuer_id=bytes.fromhex(ISSUERS[index % 2]),
        )
        account = dataclasses.replace(base.transit, public=public, balance=100_000 + 1_234 * index)
        card = VirtualSscCard(
            dataclasses.replace(base, transit=account), Behaviour(t0=True), load_test_roots()
        )
        cards.append(card)
    return cards


def _purse(card: VirtualSscCard) -> VirtualTransitPurse:
    assert card.transit is not None
    return card.transit


def _serial(card: VirtualSscCard) -> str:
    """The purse's serial as the platform stores it (upper-case hex)."""
    return _purse(card).public.serial.hex().upper()


def _terminal(platform: PlatformProcess, folder: Path) -> TerminalFolder:
    """Register the terminal for ``transit`` and provision it; the transit profile with
    ``[payments]``, and the journal key a payment row is encrypted with."""
    world = daemon_terminal(
        platform, folder, TERMINAL_ID, "transit", daemon='scenario = "transit"\n',
        extra=f'[payments]\npsam_reader = "{READER1}"\ntear_window_s = {TEAR_WINDOW_S}\n',
    )  # fmt: skip
    key = folder / "journal.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    text = world.config.read_text(encoding="utf-8")
    store = 'pepper_file = "pepper"\n'
    world.config.write_text(text.replace(store, store + 'journal_key_file = "journal.key"\n'))
    return world


def _start(terminal: TerminalFolder) -> DaemonProcess:
    daemon = DaemonProcess(terminal)
    daemon.wait_notification("READY=1")
    daemon.wait_state("waiting_card", timeout=20)
    return daemon


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _store(terminal: TerminalFolder, query: str) -> int:
    """One number from the daemon's store, read-only."""
    conn = sqlite3.connect(f"file:{terminal.folder / 'store.db'}?mode=ro", uri=True, timeout=5)
    try:
        found = conn.execute(query).fetchone()
    finally:
        conn.close()
    return int(found[0]) if found else 0


def _last_seq(terminal: TerminalFolder) -> int:
    """The journal's last seq (the sync thread prunes uploaded rows: counting them misleads)."""
    return _store(terminal, "SELECT last_seq FROM journal_state")


def _platform_payments(platform: PlatformProcess) -> list[tuple[str, int, str, int, str, str]]:
    """(card serial, card sequence, state, amount, issuer, TAC status) of every purchase."""
    with sqlite3.connect(f"file:{platform.db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT card_serial, card_sequence, state, amount_fen, issuer, tac_status "
            "FROM payment WHERE terminal_id = ?",
            (TERMINAL_ID,),
        ).fetchall()


def _platform(platform: PlatformProcess, *args: str) -> str:
    """``sscard platform ARGS --db …`` in a child process, its output: not a golden call (the
    figures depend on the seed). Fails the test on a non-zero exit status."""
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "platform", *args, "--db", str(platform.db)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _clearing(platform: PlatformProcess) -> list[dict[str, Any]]:
    """The platform's clearing report (``platform clearing --format json``) of every day it
    holds purchases for."""
    with sqlite3.connect(f"file:{platform.db}?mode=ro", uri=True) as conn:
        days = [day for (day,) in conn.execute("SELECT DISTINCT day FROM payment ORDER BY day")]
    return [json.loads(_platform(platform, "clearing", "--day", day, "--format", "json"))
            for day in days]  # fmt: skip


@dataclass
class Campaign:
    """The riders' taps on a running daemon, which the campaign kills and starts again.

    :param terminal: the terminal folder
    :param cards: the vpcd slots (the ``cards`` fixture)
    :param rng: the seeded generator
    """

    terminal: TerminalFolder
    cards: Any
    rng: random.Random
    daemon: DaemonProcess = field(init=False)
    debit: int = 0  # the card commands of a clean paid tap (the DEBIT is the last), measured
    tally: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("taps", "torn", "killed", "killed_pending", "no_decision"), 0
        )
    )

    def __post_init__(self) -> None:
        self.daemon = _start(self.terminal)

    def tear(self, card: VirtualSscCard) -> bool:
        """Plan a tear of the card's next tap at random, once a paid tap was measured."""
        if not self.debit or self.rng.randrange(TEAR_ONE_IN):
            return False
        where = self.rng.choice(("committed", "committed", "debit", "read"))
        if where == "committed":  # the DEBIT acted on, its answer lost
            card.behaviour.tear_before_answer = self.debit
        elif where == "debit":  # the card leaves before it acts on the DEBIT
            card.behaviour.tear_after = self.debit - 1
        else:  # at a random command before
            card.behaviour.tear_after = self.rng.randrange(1, self.debit - 1)
        self.tally["torn"] += 1
        return True

    def tap(self, card: VirtualSscCard, torn: bool) -> None:
        """The rider taps and leaves after the decision is shown."""
        shown = len(self.daemon.shown())
        self.cards.insert(card, wait=False)
        if not _wait(lambda: len(self.daemon.shown()) > shown, timeout=8):
            self.tally["no_decision"] += 1
        take_away(self.cards)
        self.daemon.wait_state("waiting_card", timeout=20)
        if not self.debit and not torn and self.daemon.shown()[-1:] == ["ok"]:
            self.debit = card.commands_seen
        self.tally["taps"] += 1

    def kill_during(self, card: VirtualSscCard) -> None:
        """SIGKILL the daemon during a tap — as soon as its first row (``purse_pending`` for a
        paid tap) is in, or at a random moment — and start it again."""
        last = _last_seq(self.terminal)
        card.behaviour.latency_ms = 30  # time to land between pending and done
        self.cards.insert(card, wait=False)
        if self.rng.random() < 0.5:
            _wait(lambda: _last_seq(self.terminal) > last, timeout=10)
        else:
            time.sleep(self.rng.uniform(0.2, 1.5))
        self.daemon.process.kill()
        self.daemon.process.wait()
        self.daemon.close()
        pending = "SELECT count(*) FROM payment_open WHERE state = 'pending'"
        self.tally["killed_pending"] += int(_store(self.terminal, pending) > 0)
        card.behaviour.latency_ms = 0
        take_away(self.cards)
        self.tally["killed"] += 1
        self.daemon = _start(self.terminal)

    def run(self, riders: list[VirtualSscCard]) -> int:
        """:data:`TAPS` random turns, then one clean tap per card; the journal's last seq once
        the platform acknowledged it."""
        plan = [self.rng.randrange(len(riders)) for _ in range(TAPS)]
        kills = set(self.rng.sample(range(2, TAPS), max(1, TAPS // KILL_ONE_IN)))
        for turn, index in enumerate(plan + list(range(len(riders)))):
            card = riders[index]
            card.return_to_field()
            if turn in kills:
                self.kill_during(card)
            else:
                self.tap(card, turn < TAPS and self.tear(card))
        last = _last_seq(self.terminal)
        uploaded = _wait(lambda: self.platform_acked() >= last, timeout=30)
        assert uploaded, self.daemon.err()[-3000:]
        assert self.daemon.stop() == 0
        assert "Traceback" not in self.daemon.err()
        return last

    def platform_acked(self) -> int:
        """What the platform acknowledged, as the daemon's store records it."""
        return _store(self.terminal, "SELECT acked_seq FROM journal_state")


def _check_clearing(
    platform: PlatformProcess, riders: list[VirtualSscCard], before: dict[str, tuple[int, int]]
) -> int:
    """The platform's purchases and clearing against the purses; the purchases cleared.

    :param before: serial → (balance, offline sequence) at the start
    """
    drops = {_serial(card): before[_serial(card)][0] - _purse(card).balance for card in riders}
    done = [p for p in _platform_payments(platform) if p[2] == "done"]
    assert len({(p[0], p[1]) for p in done}) == len(done)  # none doubled
    assert len(done) >= len(riders), "the settling round pays"
    for card in riders:
        serial = _serial(card)
        mine = [p for p in done if p[0] == serial]
        assert sum(p[3] for p in mine) == drops[serial], f"card …{serial[-4:]}"
        debits = _purse(card).sequence - before[serial][1]
        assert debits == len(mine), f"card …{serial[-4:]}: a debit not cleared"
    reports = _clearing(platform)
    total = sum(report["total"]["sum_fen"] for report in reports)
    count = sum(report["total"]["count"] for report in reports)
    assert (count, total) == (len(done), sum(drops.values()))
    for report in reports:
        assert report["total"]["tac_ok"] == report["total"]["count"]
        assert report["total"]["tac_failed"] == report["total"]["tac_unchecked"] == 0
        assert report["total"]["unresolved"] == 0, "a purchase left open"
        assert {t["terminal_id"] for t in report["terminals"]} == {TERMINAL_ID}
    assert sum(t["sum_fen"] for r in reports for t in r["terminals"]) == total
    for issuer in ISSUERS:
        cleared = sum(
            row["sum_fen"]
            for r in reports
            for row in r["issuers"]
            if (row["kind"], row["issuer"]) == ("transit", issuer)
        )
        mine = [card for card in riders if _purse(card).public.issuer_id.hex().upper() == issuer]
        assert cleared == sum(drops[_serial(card)] for card in mine), f"issuer {issuer}"
    return len(done)


def test_fares_through_pcscd_and_daemon_kills_clear_at_the_platform_to_the_fen(
    tmp_path: Path, pcscd, cards
) -> None:
    seed, rng = seeded()
    platform = PlatformProcess(tmp_path / "platform")
    platform.init()
    platform.start()
    try:
        terminal = _terminal(platform, tmp_path / "terminal")
        cards.insert(transit_psam(), slot=1)
        riders = _cards()
        before = {_serial(card): (_purse(card).balance, _purse(card).sequence) for card in riders}
        campaign = Campaign(terminal, cards, rng)
        try:
            last = campaign.run(riders)
        finally:
            campaign.daemon.close()
        assert journal_verify(terminal.config) == len(terminal.rows())  # uploaded rows pruned
        assert platform.ack_seq(TERMINAL_ID) == last, f"seed {seed}: journaled after the end"
        assert _store(terminal, "SELECT count(*) FROM payment_open") == 0, f"seed {seed}"
        uploaded = [seq for seq, _ in platform.journal(TERMINAL_ID)]
        assert uploaded == list(range(1, last + 1)), f"seed {seed}: rows lost or doubled"
        assert "ok" in _platform(platform, "tx", "verify")
        try:
            cleared = _check_clearing(platform, riders, before)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from exc
    finally:
        platform.stop()
    drop = sum(before[_serial(card)][0] - _purse(card).balance for card in riders)
    print(
        f"seed {seed}: {TAPS} taps + {len(riders)} settling, {campaign.tally}, "
        f"{cleared} purchases cleared = {drop} fen, {last} journal rows"
    )
