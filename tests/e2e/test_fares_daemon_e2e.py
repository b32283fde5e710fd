"""End to end (issue 15): ``sscard run`` takes transit fares through a real pcscd — the emulated
card with its transit purse in vpcd slot 0, the emulated transit PSAM in slot 1 — journals
each purchase (``purse_pending`` before the debit, then its outcome), and survives a card torn
after the debit and a daemon killed between ``pending`` and ``done``: the journal's done
amounts equal the drop of the purse to the fen.

The daemon is watched from outside: its store file (read-only) and its console indicator.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import (
    DaemonProcess,
    TerminalFolder,
    journal_verify,
    make_terminal,
    take_away,
)
from payment_support import transit_psam
from support import READER1, make_card

from drivers.virtual.ssc_card import VirtualSscCard

pytestmark = pytest.mark.e2e

FARE = 200  # config/profiles/transit.toml
PAYMENTS = f'[payments]\npsam_reader = "{READER1}"\ntear_window_s = 300\n'


@pytest.fixture
def terminal(tmp_path: Path, pcscd, cards) -> TerminalFolder:
    folder = make_terminal(tmp_path)
    folder.write(extra=PAYMENTS)
    cards.insert(transit_psam(), slot=1)
    return folder


def start(terminal: TerminalFolder) -> DaemonProcess:
    process = DaemonProcess(terminal)
    process.wait_notification("READY=1")
    process.wait_state("waiting_card")
    return process


@pytest.fixture
def daemon(terminal: TerminalFolder) -> Iterator[DaemonProcess]:
    process = start(terminal)
    try:
        yield process
    finally:
        process.close()


def present(cards, card: VirtualSscCard, **tear: int) -> None:
    """The rider taps: the card (back) in slot 0, with the tearing planned."""
    card.return_to_field()
    for key, value in tear.items():
        setattr(card.behaviour, key, value)
    cards.insert(card, wait=False)


def payments(terminal: TerminalFolder) -> list[tuple[str, int]]:
    """(reason, amount) of the rows that took part in a purchase, from the journal."""
    conn = sqlite3.connect(f"file:{terminal.folder / 'store.db'}?mode=ro", uri=True, timeout=5)
    try:
        return [
            (str(reason), 0 if amount is None else int(amount))
            for reason, amount in conn.execute(
                "SELECT reason_code, amount FROM journal WHERE payment_ct IS NOT NULL ORDER BY seq"
            )
        ]
    finally:
        conn.close()


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def balance(card: VirtualSscCard) -> int:
    assert card.transit is not None
    return card.transit.balance


def test_fares_are_taken_and_a_torn_debit_is_recovered_on_the_retap(
    daemon: DaemonProcess, terminal: TerminalFolder, cards
) -> None:
    card = make_card("ordinary-2.0", t0=True)
    before = balance(card)
    present(cards, card)
    rows = daemon.wait_rows(2)
    assert [r[3] for r in rows] == ["purse_pending", "ok"]
    assert balance(card) == before - FARE
    debit = card.commands_seen  # the DEBIT is the tap's last card command
    take_away(cards)
    daemon.wait_state("waiting_card")
    present(cards, card, tear_before_answer=debit)  # debited, answer lost
    assert [r[3] for r in daemon.wait_rows(4)[2:]] == ["purse_pending", "purse_torn"]
    assert balance(card) == before - 2 * FARE
    take_away(cards)
    daemon.wait_state("waiting_card")
    present(cards, card)  # tap again: the proof, not a second fare
    assert daemon.wait_rows(5)[4][2:] == ("accept", "ok")
    assert balance(card) == before - 2 * FARE
    assert daemon.wait_shown(3) == ["ok", "purse_torn", "ok"]
    assert daemon.stop() == 0
    done = [amount for reason, amount in payments(terminal) if reason == "ok"]
    assert sum(done) == before - balance(card) == 2 * FARE
    assert journal_verify(terminal.config) == 5


def test_a_daemon_killed_between_pending_and_done_recovers(terminal: TerminalFolder, cards) -> None:
    card = make_card("ordinary-2.0", t0=True, latency_ms=400)  # a slow card: time to kill
    before = balance(card)
    first = start(terminal)
    try:
        present(cards, card)
        wait_for(lambda: len(terminal.rows()) >= 1, "the pending row")
        first.process.kill()  # SIGKILL between pending and done
        first.process.wait()
    finally:
        first.close()
    take_away(cards)
    assert [r[3] for r in terminal.rows()] == ["purse_pending"]
    debited = balance(card) == before - FARE  # the DEBIT may or may not have reached it
    assert balance(card) in (before, before - FARE)
    card.behaviour.latency_ms = 0
    second = start(terminal)  # the pending purchase is torn at start
    try:
        assert [r[3] for r in terminal.rows()] == ["purse_pending", "purse_torn"]
        present(cards, card)
        wait_for(lambda: terminal.rows()[-1][3] == "ok", "the re-tap's decision")
        assert second.stop() == 0
    finally:
        second.close()
    assert balance(card) == before - FARE, f"debited before the kill: {debited}"
    done = [amount for reason, amount in payments(terminal) if reason == "ok"]
    assert sum(done) == FARE
    assert json.dumps(terminal.rows())  # readable
    assert journal_verify(terminal.config) == len(terminal.rows())
