"""Transit purchases end to end through a real pcscd: the emulated card (with its purse) in vpcd
slot 0, the emulated transit PSAM in slot 1, the session and the purchase flow driven directly
(the daemon and its journal come with issue 13)."""

from __future__ import annotations

import time

import pytest
from payment_support import WHEN, transit_psam
from support import READER0, READER1, load_test_roots, make_card

from apdu.payment import Charge, PurchaseTorn
from apdu.purchase import Purchase, PurchaseState, Verdict, recover
from apdu.transit import TransitPurseSession
from apdu.transit_psam import TransitPsamModule
from apdu.transport import t0_chain
from drivers.soft_sam import transit_tac_valid

pytestmark = pytest.mark.e2e

FARE = 200


def connect(cards, reader: str):
    return t0_chain(cards.readers.wait_for_card(5, reader=reader))


def test_a_fare_taken_through_pcscd_with_the_transit_psam(cards) -> None:
    card = cards.insert(make_card("ordinary-2.0", t0=True, latency_ms=5))
    cards.insert(transit_psam(latency_ms=5), slot=1)
    with connect(cards, READER1) as psam_connection, connect(cards, READER0) as card_connection:
        module = TransitPsamModule(psam_connection)
        module.terminal_number()  # read once at start-up, as a validator does
        started = time.perf_counter()
        purse = TransitPurseSession(card_connection)
        record = Purchase(purse, module, Charge(FARE), WHEN).run()
        elapsed = time.perf_counter() - started
    assert record.state == PurchaseState.DONE and record.balance_after == 4800
    assert card.transit is not None and card.transit.balance == 4800
    assert transit_tac_valid(load_test_roots(), record, card.transit.public.factors())
    print(f"purchase through pcscd at 5 ms per APDU: {elapsed * 1000:.1f} ms")
    assert elapsed < 5  # generous: the benchmark measures; this only catches a hang


def test_a_card_torn_after_the_commit_is_recovered_through_pcscd(cards) -> None:
    card = make_card("ordinary-2.0", t0=True, tear_before_answer=6)  # DEBIT (T=0: 6th command)
    psam = transit_psam()
    cards.insert(card)
    cards.insert(psam, slot=1)
    with connect(cards, READER1) as psam_connection, connect(cards, READER0) as card_connection:
        purchase = Purchase(
            TransitPurseSession(card_connection),
            TransitPsamModule(psam_connection),
            Charge(FARE),
            WHEN,
        )
        with pytest.raises(PurchaseTorn):
            purchase.run()
    assert purchase.state == PurchaseState.TORN
    cards.remove_all()
    card.return_to_field()  # the rider taps again
    cards.insert(card)
    cards.insert(psam, slot=1)
    with connect(cards, READER1) as psam_connection, connect(cards, READER0) as card_connection:
        result = recover(
            TransitPurseSession(card_connection),
            TransitPsamModule(psam_connection),
            purchase.record,
            WHEN,
        )
    assert result.verdict == Verdict.DEBITED and result.retry is None
    assert result.record.state == PurchaseState.DONE and result.record.recovered
    assert card.transit is not None and card.transit.balance == 5000 - FARE  # charged once
    assert transit_tac_valid(load_test_roots(), result.record, card.transit.public.factors())
