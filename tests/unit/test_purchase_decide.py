"""The recovery decision of a torn purchase (apdu.purchase.decide), case by case, and the
journal states a purchase leaves with."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from apdu.errors import ProtocolError
from apdu.payment import Charge, HistoryEntry, PurchaseInit
from apdu.purchase import JournalState, PurchaseRecord, PurchaseState, Verdict, decide

WHEN = dt.datetime(2026, 11, 29, 7, 58, 3)
TERMINAL = "440100900001"
TORN = PurchaseRecord(
    application="transit",
    card_id="31044010000000A1B2C3",
    charge=Charge(200),
    when=WHEN,
    state=PurchaseState.TORN,
    balance_before=5000,
    card_sequence=41,
    terminal_number=TERMINAL,
    terminal_sequence=7,
    key_version=1,
)
OURS = HistoryEntry(41, 200, TERMINAL, WHEN)
ELSEWHERE = HistoryEntry(41, 200, "440100900002", WHEN)  # the same fare on another bus


def init(sequence: int, balance: int) -> PurchaseInit:
    return PurchaseInit(balance, sequence, 1, 0, bytes(4))


@pytest.mark.parametrize(
    ("now", "history", "verdict"),
    [
        # the sequence did not move: the card never debited, whatever its balance (a load)
        (init(41, 5000), [], Verdict.NOT_DEBITED),
        (
            init(41, 9000),
            [HistoryEntry(7, 4000, TERMINAL, WHEN, purchase=False)],
            Verdict.NOT_DEBITED,
        ),
        # moved by one, our record in the history: it debited, and it is the last purchase
        (init(42, 4800), [OURS], Verdict.DEBITED),
        # moved by one, but another terminal's purchase took sequence 41: ours never happened
        (init(42, 4800), [ELSEWHERE], Verdict.NOT_DEBITED),
        # moved by one, no history readable: the balance decides
        (init(42, 4800), [], Verdict.DEBITED),
        (init(42, 4700), [], Verdict.UNDECIDABLE),
        # moved by more: the card paid since; the history decides, without a proof
        (
            init(44, 4100),
            [HistoryEntry(43, 300, "1" * 12, WHEN), HistoryEntry(42, 400, "1" * 12, WHEN), OURS],
            Verdict.DEBITED_EARLIER,
        ),
        (
            init(44, 4300),
            [
                HistoryEntry(43, 300, "1" * 12, WHEN),
                HistoryEntry(42, 400, "1" * 12, WHEN),
                ELSEWHERE,
            ],
            Verdict.NOT_DEBITED,
        ),
        (init(44, 4300), [HistoryEntry(43, 300, "1" * 12, WHEN)], Verdict.UNDECIDABLE),
        # behind: not this card's story
        (init(40, 5000), [], Verdict.UNDECIDABLE),
        # no fresh INITIALIZE (9401): the history alone
        (None, [OURS], Verdict.DEBITED),
        (None, [HistoryEntry(42, 100, "1" * 12, WHEN), OURS], Verdict.DEBITED_EARLIER),
        (None, [ELSEWHERE], Verdict.NOT_DEBITED),
        (None, [HistoryEntry(40, 100, TERMINAL, WHEN)], Verdict.NOT_DEBITED),
        (None, [], Verdict.NOT_DEBITED),
        (None, [HistoryEntry(45, 100, TERMINAL, WHEN)], Verdict.UNDECIDABLE),
    ],
)
def test_the_card_state_decides_a_torn_purchase(now, history, verdict) -> None:
    assert decide(TORN, now, history) == verdict


def test_matching_needs_sequence_amount_terminal_and_time() -> None:
    assert TORN.matches(OURS)
    for change in ({"amount": 201}, {"when": WHEN + dt.timedelta(seconds=1)}, {"purchase": False}):
        assert not TORN.matches(dataclasses.replace(OURS, **change))


def test_sequences_wrap() -> None:
    torn = dataclasses.replace(TORN, card_sequence=0xFFFF)
    assert decide(torn, init(0, 4800), [dataclasses.replace(OURS, sequence=0xFFFF)]) == (
        Verdict.DEBITED
    )


def test_a_record_that_never_reached_the_card_cannot_be_decided() -> None:
    with pytest.raises(ProtocolError, match="never reached"):
        decide(dataclasses.replace(TORN, card_sequence=None), init(41, 5000), [])


@pytest.mark.parametrize(
    ("state", "journal"),
    [
        (PurchaseState.NEW, None),
        (PurchaseState.INITIALISED, None),
        (PurchaseState.AUTHORISED, JournalState.PENDING),
        (PurchaseState.DEBIT_SENT, JournalState.PENDING),
        (PurchaseState.DEBITED, JournalState.PENDING),
        (PurchaseState.DONE, JournalState.DONE),
        (PurchaseState.UNPROVEN, JournalState.DONE),
        (PurchaseState.TORN, JournalState.TORN),
        (PurchaseState.VOID, JournalState.VOID),
    ],
)
def test_every_state_has_its_journal_state(state, journal) -> None:
    assert dataclasses.replace(TORN, state=state).journal_state == journal
    assert TORN.balance_after == 4800
