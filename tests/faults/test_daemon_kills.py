"""Fault campaign: ``sscard run`` killed with SIGKILL during taps on several readers, and pcscd
restarted under it.

Taps come in rounds, one card on each of :data:`READERS` readers at once (pcscd started with
that many vpcd slots; each reader has a card of its own, told apart in the journal by its
credential token). One round in :data:`KILL_ONE_IN` is killed: its cards answer each APDU
25 ms late and go in a little apart, and the daemon is killed at a random moment between before
the first card is seen and after the last is decided (its one worker decides them in turn, so
reads are queued or in flight on several readers), then started again; every
:data:`PCSCD_EVERY` taps pcscd itself crashes and comes back. Throughout, per reader and
overall: every tap is journaled at most once, a tap the daemon lived through exactly once and
accepted; a killed daemon showed only what it had journaled, in order (never an indicator
before its row); each daemon starts on the store its killed predecessor left (the owner lock
dies with the process); and the whole journal verifies at the end.

Where the time goes (measured on the shared 2-CPU machine, 2026-12-06). One reader, a tap at a
time, as this campaign ran before: pcscd polls each reader every 0.4 s, so a card is seen
0.39 s after it goes in (median) and its removal 0.40 s after it leaves, while the read,
decision and journaling take 4 ms (0.36 s for a killed round's slow card): 0.80 s a tap. A kill
cost its random wait, 0.31 s for pcscd to see the card gone and 1.1-1.9 s for a new daemon to
be ``READY`` (interpreter, imports, the store's check); pcscd's restart 0.02 s. 10,000 taps
with a kill every eighth took about 3 hours, nothing of it a sleep or a poll of the test's own.
pcscd polls the readers side by side, so a round on 8 readers costs what one tap did (0.79 s);
a daemon's start-up cannot be shared, so a kill catches a whole round. 1,000 taps (seed 16):
94 rounds lived in 74 s, 31 killed in 78 s, 32 daemon starts in 33 s, 186 s in all, so about
31 minutes for 10,000 (4 readers: 276 s; one round in eight killed: 141 s).

The short form (``make test``) makes 32 taps in 4 rounds, two of them killed, and two pcscd
restarts; the long one (``make faults``) 10,000 taps in 1,250 rounds, one in
:data:`KILL_ONE_IN` killed (312 kills, 2,496 taps in flight when one lands).
``SSCARD_KILLS_TAPS`` and ``SSCARD_KILLS_READERS`` (2 to 8) change the size;
``SSCARD_FAULTS_SEED`` replays a run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from daemon_support import PEPPER, DaemonProcess, TerminalFolder, journal_verify, make_terminal
from fault_support import seeded, size
from support import load_test_roots, persona_path

from apdu.identity import card_number_check_char
from drivers.virtual.card import Behaviour
from drivers.virtual.pcscd import reader_name
from drivers.virtual.persona import Persona, load_persona
from drivers.virtual.ssc_card import VirtualSscCard
from offline_store import canonical_card_id, keyed_card_hash

pytestmark = pytest.mark.e2e

TAPS = int(os.environ.get("SSCARD_KILLS_TAPS", str(size(32, 10_000))))
READERS = int(os.environ.get("SSCARD_KILLS_READERS", "8"))  # `sscard run` watches up to 8
KILL_ONE_IN = size(2, 4)  # rounds
PCSCD_EVERY = size(12, 500)  # taps
SLOW_APDU_MS = 25  # a killed round's cards: the kill lands before, during or after reads
SLOW_READ_S = 0.4  # a read of such a card, 14 APDUs (measured: 0.36 s)
STAGGER_S = 0.1  # at most this between two cards of a killed round going in
PERSONA = "ordinary-2.0"
CITY = "440100"  # the persona's city: the first six digits of its 卡识别码


def _personas(folder: Path) -> list[Persona]:
    """The persona once per reader, each with a card number of its own (valid check character),
    so each reader's rows carry a credential token of their own."""
    text = persona_path(PERSONA).read_text(encoding="utf-8")
    made = []
    for slot in range(READERS):
        number = f"A01023{40 + slot}"
        number += card_number_check_char(number)
        file = folder / f"{PERSONA}-{slot}.toml"
        file.write_text(text.replace('card_number = "A01023450"', f'card_number = "{number}"'))
        made.append(load_persona(file))
    assert len({p.ef05[0x07] for p in made}) == READERS, "the card numbers did not change"
    return made


def _token(card: Persona) -> str:
    """The credential token the daemon journals for a card of this persona."""
    number = card.ef05[0x07][2:].decode("ascii")
    return keyed_card_hash(PEPPER, canonical_card_id(CITY, number))


def _start(terminal: TerminalFolder, spent: Counter[str]) -> DaemonProcess:
    """A daemon, once it is ``READY`` and every reader waits for a card; the time it took is
    added to ``spent``."""
    began = time.monotonic()
    daemon = DaemonProcess(terminal)
    daemon.wait_notification("READY=1")
    _wait_readers(daemon)
    spent["daemon_starts"] += time.monotonic() - began
    return daemon


def _wait_readers(daemon: DaemonProcess, slots: Iterable[int] = range(READERS)) -> None:
    """Wait until each reader of ``slots`` waits for a card (the daemon saw its card leave)."""
    for slot in slots:
        daemon.wait_state("waiting_card", timeout=20, reader=reader_name(slot))


def test_sigkill_and_pcscd_restarts_during_taps_lose_and_double_nothing(
    tmp_path: Path, pcscd, cards
) -> None:
    assert 2 <= READERS <= min(8, PCSCD_EVERY), READERS
    terminal = make_terminal(tmp_path)
    terminal.write(readers=[reader_name(slot) for slot in range(READERS)])
    personas = _personas(tmp_path)
    tokens = [_token(card) for card in personas]
    roots = load_test_roots()
    seed, rng = seeded()
    tally = {"rounds": 0, "lived": 0, "killed": 0, "killed_journaled": 0, "pcscd_restarts": 0}
    expected: Counter[str] = Counter()  # rows per reader's token
    spent: Counter[str] = Counter()  # seconds, printed: where the campaign's time goes
    started = time.monotonic()

    def present(slots: list[int], latency_ms: int = 0, stagger_s: float = 0.0) -> None:
        for slot in slots:
            card = VirtualSscCard(personas[slot], Behaviour(t0=True, latency_ms=latency_ms), roots)
            cards.insert(card, slot=slot, wait=False)
            time.sleep(rng.uniform(0, stagger_s))

    with pcscd.readers(READERS):
        daemon = _start(terminal, spent)
        born = 0  # journal rows when this daemon started
        next_restart = PCSCD_EVERY
        try:
            for turn, taps in enumerate(range(0, TAPS, READERS)):
                slots = rng.sample(range(READERS), min(READERS, TAPS - taps))
                where = f"seed {seed} round {turn} taps {taps}.. readers {slots}"
                before = len(terminal.rows())
                tally["rounds"] += 1
                began = time.monotonic()
                if taps + len(slots) > next_restart:  # tap number next_restart is in this round
                    next_restart += PCSCD_EVERY
                    pcscd.stop(crash=True)
                    pcscd.start()
                    tally["pcscd_restarts"] += 1
                    _wait_readers(daemon)
                    spent["pcscd_restarts"] += time.monotonic() - began
                    began = time.monotonic()
                if turn % KILL_ONE_IN == KILL_ONE_IN - 1:
                    present(slots, SLOW_APDU_MS, STAGGER_S)
                    time.sleep(rng.uniform(0.0, 0.4 + len(slots) * SLOW_READ_S))  # 0.4 s: a poll
                    daemon.process.kill()
                    daemon.process.wait()
                    cards.remove_all()
                    shown = daemon.shown()
                    daemon.close()
                    lived = [row[3] for row in terminal.rows()[born:]]
                    assert len(lived) - len(shown) in (0, 1), where  # journaled, then shown
                    assert shown == lived[: len(shown)], where
                    added = Counter(terminal.tokens()[before:])
                    assert set(added) <= {tokens[slot] for slot in slots}, where
                    assert max(added.values(), default=0) <= 1, where  # per reader
                    expected += added
                    tally["killed"] += len(slots)
                    tally["killed_journaled"] += sum(added.values())
                    born = len(terminal.rows())
                    spent["killed_rounds"] += time.monotonic() - began
                    daemon = _start(terminal, spent)
                    continue
                present(slots)
                rows = daemon.wait_rows(before + len(slots), timeout=20)[before:]
                refused = [row for row in rows if row[2:] != ("accept", "ok")]
                assert not refused, (where, refused, daemon.err()[-3000:])  # which reader, when
                added = Counter(terminal.tokens()[before:])
                assert added == Counter(tokens[slot] for slot in slots), where  # each reader once
                cards.remove_all()
                _wait_readers(daemon, slots)
                assert len(terminal.rows()) == before + len(slots), where
                expected += added
                tally["lived"] += len(slots)
                spent["lived_rounds"] += time.monotonic() - began
            assert daemon.stop() == 0
            rows = terminal.rows()
            assert daemon.shown() == [row[3] for row in rows[born:]]
            assert "Traceback" not in daemon.err()
        finally:
            cards.remove_all()  # before pcscd comes back with two readers
            daemon.close()
    assert len(rows) == tally["lived"] + tally["killed_journaled"]
    assert Counter(terminal.tokens()) == expected  # per reader
    assert journal_verify(terminal.config) == len(rows)
    seconds = {part: round(value, 1) for part, value in spent.items()}
    elapsed = time.monotonic() - started
    print(f"seed {seed}: {TAPS} taps on {READERS} readers in {elapsed:.0f} s, {tally}, {seconds}")
