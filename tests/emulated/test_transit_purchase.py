"""Transit purchases against the emulated purse and the emulated transit PSAM: the exact bytes,
every status word the card can answer, tearing at every command of a purchase with the
recovery on the next tap, and random tearing, re-taps and kills: never a double charge, never
a lost charge, every TAC the card's."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payment_support import WHEN, TransitTerminal, session, transit_module, transit_psam
from support import load_test_roots, make_card, persona

from apdu.errors import CardRemoved, ProtocolError
from apdu.payment import (
    Charge,
    CounterExhausted,
    InsufficientBalance,
    KeyVersionUnsupported,
    Mac1Invalid,
    NoPurchasePending,
    ProofUnavailable,
    PurchaseTorn,
    PurseLocked,
)
from apdu.purchase import (
    NotTheSameCard,
    Purchase,
    PurchaseState,
    PurchaseStateError,
    Verdict,
    recover,
)
from apdu.sam import Mac2Invalid
from drivers.soft_sam import transit_tac_valid
from drivers.virtual.card import Behaviour
from drivers.virtual.ssc_card import VirtualSscCard

pytestmark = pytest.mark.emulated

H = bytes.fromhex
ROOTS = load_test_roots()
FARE = 200


def card_with(**transit: object) -> VirtualSscCard:
    """ordinary-2.0 with its [transit] table changed."""
    base = persona("ordinary-2.0")
    assert base.transit is not None
    changed = dataclasses.replace(base, transit=dataclasses.replace(base.transit, **transit))
    return VirtualSscCard(changed, Behaviour(), ROOTS)


def tac_ok(card: VirtualSscCard, record) -> bool:
    assert card.transit is not None
    return transit_tac_valid(ROOTS, record, card.transit.public.factors())


@pytest.mark.parametrize("t0", [False, True])
def test_a_purchase_sends_the_spec_bytes_and_debits_once(t0: bool) -> None:
    card = make_card("ordinary-2.0", t0=t0)
    psam = transit_psam()
    record = Purchase(session(card), transit_module(psam), Charge(FARE), WHEN).run()
    assert record.state == PurchaseState.DONE and record.mac2_checked
    assert (record.balance_before, record.balance_after, record.card_sequence) == (5000, 4800, 41)
    assert record.terminal_number == "440100900001" and record.terminal_sequence == 1
    sent = [command for command, _ in card.log if command[:2] != H("00C0")]
    assert sent == [
        H("00A4040008A00000063201010500"),
        H("00B095001E"),
        H("805001020B01000000C84401009000010F"),
        H("805401000F00000001") + H("20261129075803") + sent[3][16:20] + H("08"),
    ]
    assert card.transit is not None and card.transit.balance == 4800
    assert card.transit.sequence == 42 and len(card.transit.log) == 1
    assert tac_ok(card, record)
    # the PSAM: DF 1001, MAC1 over two factors (Lc 24), MAC2
    psam_sent = [command[:5] for command, _ in psam.log if command[:2] != H("00C0")]
    assert H("00A4000002") in psam_sent and H("8070000024") in psam_sent
    assert H("8072000004") in psam_sent


def test_the_purse_reads_balance_public_data_and_its_log() -> None:
    card = make_card("ordinary-2.0")
    Purchase(session(card), transit_module(), Charge(FARE), WHEN).run()
    purse = session(card)
    assert purse.get_balance() == 4800
    public = purse.read_public_data()
    assert public.serial.hex().upper() == "31044010000000A1B2C3"
    (entry,) = purse.read_log()
    assert (entry.sequence, entry.amount, entry.terminal_number, entry.when) == (
        41,
        FARE,
        "440100900001",
        WHEN,
    )
    assert purse.read_log_record(2) is None


def test_insufficient_balance_refuses_before_anything_moves() -> None:
    card = card_with(balance=150)
    purchase = Purchase(session(card), transit_module(), Charge(FARE), WHEN)
    with pytest.raises(InsufficientBalance, match="9401"):
        purchase.run()
    assert purchase.state == PurchaseState.VOID
    assert card.transit is not None and card.transit.balance == 150


def test_the_overdraft_limit_lets_a_purse_go_below_zero() -> None:
    card = make_card("v3-sm4")  # 1.80 yuan, 10.00 yuan overdraft
    record = Purchase(session(card), transit_module(), Charge(500), WHEN).run()
    assert record.balance_after == -320 and record.state == PurchaseState.DONE
    with pytest.raises(InsufficientBalance):
        Purchase(session(card), transit_module(), Charge(700), WHEN).run()
    assert session(card).get_balance() == 0  # GET BALANCE shows no negative amount


def test_a_locked_purse_an_exhausted_counter_and_a_card_without_keys() -> None:
    with pytest.raises(PurseLocked):
        session(card_with(locked=True))
    with pytest.raises(CounterExhausted):
        Purchase(session(card_with(sequence=0xFFFF)), transit_module(), Charge(1), WHEN).run()
    with pytest.raises(KeyVersionUnsupported):
        Purchase(
            session(make_card("ordinary-2.0", keys=False)), transit_module(), Charge(1), WHEN
        ).run()


def test_a_card_whose_keys_are_not_the_psams_refuses_mac1_and_keeps_its_money() -> None:
    card = make_card("forged")
    assert card.transit is None  # the forged persona has no purse: give it one
    base = persona("ordinary-2.0")
    forged = dataclasses.replace(base, keys=dataclasses.replace(base.keys, forged=True))
    card = VirtualSscCard(forged, Behaviour(), ROOTS)
    purchase = Purchase(session(card), transit_module(), Charge(FARE), WHEN)
    with pytest.raises(Mac1Invalid, match="9302"):
        purchase.run()
    assert purchase.state == PurchaseState.VOID
    assert card.transit is not None and card.transit.balance == 5000


def test_a_debit_without_initialize_and_a_proof_of_another_purchase_are_refused() -> None:
    card = make_card("ordinary-2.0")
    purse = session(card)
    with pytest.raises(NoPurchasePending, match="6901"):
        purse.debit_for_purchase(1, WHEN, bytes(4))
    Purchase(purse, transit_module(), Charge(FARE), WHEN).run()
    assert purse.get_transaction_proof(42).tac is not None
    with pytest.raises(ProofUnavailable, match="9406"):
        purse.get_transaction_proof(41)


def test_a_psam_that_lost_the_purchase_leaves_it_unproven_not_lost() -> None:
    card = make_card("ordinary-2.0")
    psam = transit_psam()
    purchase = Purchase(session(card), transit_module(psam), Charge(FARE), WHEN)
    purchase.start()
    purchase.authorise()
    purchase.send_debit()
    psam.power_on()  # the PSAM was reset: its pending purchase is gone
    with pytest.raises(Mac2Invalid):
        purchase.confirm()
    assert purchase.state == PurchaseState.UNPROVEN and purchase.record.journal_state == "done"
    assert tac_ok(card, purchase.record)  # the platform can still prove the debit


def test_steps_out_of_order_are_a_caller_bug() -> None:
    purchase = Purchase(session(make_card("ordinary-2.0")), transit_module(), Charge(FARE), WHEN)
    with pytest.raises(PurchaseStateError, match="needs initialised"):
        purchase.authorise()
    with pytest.raises(ProtocolError, match="fare of 0"):
        Purchase(session(make_card("ordinary-2.0")), transit_module(), Charge(0), WHEN)


class FaultyAnswer:
    """Between terminal and card: the DEBIT is delivered, its answer replaced by ``sw``."""

    def __init__(self, inner, sw: int) -> None:
        self.inner, self.sw = inner, sw

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw = self.inner.transmit(apdu)
        if apdu[:2] == H("8054"):
            return b"", self.sw
        return data, sw

    def close(self) -> None:
        self.inner.close()


def test_a_status_word_no_refusal_explains_is_torn_and_recovered() -> None:
    from apdu.transit import TransitPurseSession
    from apdu.transport import t0_chain
    from drivers.virtual.card import VirtualConnection

    card = make_card("ordinary-2.0")
    module = transit_module()
    purse = TransitPurseSession(t0_chain(FaultyAnswer(VirtualConnection(card), 0x6581)))
    purchase = Purchase(purse, module, Charge(FARE), WHEN)
    with pytest.raises(PurchaseTorn):
        purchase.run()
    assert purchase.state == PurchaseState.TORN
    result = recover(session(card), module, purchase.record, WHEN)
    assert result.verdict == Verdict.DEBITED and result.record.recovered
    assert tac_ok(card, result.record)


# -- tearing at every command of a purchase ----------------------------------------------------

# the card's commands of one tap on T=1: SELECT, READ BINARY, INITIALIZE, DEBIT
STEPS = {1: "SELECT", 2: "READ BINARY", 3: "INITIALIZE", 4: "DEBIT"}
T0_STEPS = {
    1: "SELECT",
    2: "GET RESPONSE (FCI)",
    3: "READ BINARY",
    4: "INITIALIZE",
    5: "GET RESPONSE (init)",
    6: "DEBIT",
    7: "GET RESPONSE (TAC, MAC2)",
}


def _cases():
    for t0, steps in ((False, STEPS), (True, T0_STEPS)):
        protocol = "T0" if t0 else "T1"
        for number, name in steps.items():
            yield pytest.param(t0, "tear_after", number - 1, id=f"{protocol}-before-{name}")
            yield pytest.param(t0, "tear_before_answer", number, id=f"{protocol}-after-{name}")


@pytest.mark.parametrize(("t0", "how", "count"), list(_cases()))
def test_tearing_at_any_command_charges_exactly_once(t0: bool, how: str, count: int) -> None:
    card = make_card("ordinary-2.0", t0=t0, **{how: count})
    terminal = TransitTerminal()
    first = terminal.tap(card, FARE)
    card.return_to_field()
    second = terminal.tap(card, FARE)
    assert first in ("tap_again", "ok") and second == "ok"
    assert card.transit is not None
    dropped = 5000 - card.transit.balance
    assert dropped == FARE == terminal.journal.charged()  # one fare: no double, no loss
    assert not terminal.journal.torn()
    for record in terminal.journal.rows.values():
        if record.journal_state == "done" and record.tac is not None:
            assert tac_ok(card, record)


def test_the_debit_committed_then_the_card_left_the_proof_is_read_again() -> None:
    card = make_card("ordinary-2.0", tear_before_answer=4)  # after DEBIT, before its answer
    terminal = TransitTerminal()
    assert terminal.tap(card, FARE) == "tap_again"
    assert terminal.journal.writes == [(1, "pending"), (1, "torn")]
    card.return_to_field()
    assert terminal.tap(card, FARE) == "ok"
    record = terminal.journal.rows[1]
    assert record.journal_state == "done" and record.recovered and tac_ok(card, record)
    proof = [command for command, _ in card.log if command[:2] == H("805A")]
    assert proof == [H("805A00060200") + bytes([42]) + H("08")]  # the sequence after: 42


def test_a_daemon_killed_between_pending_and_done_recovers_at_the_next_tap() -> None:
    card = make_card("ordinary-2.0")
    terminal = TransitTerminal()
    purchase = Purchase(session(card), terminal.module, Charge(FARE), WHEN)
    purchase.start()
    terminal.journal.write(1, purchase.authorise())
    purchase.send_debit()  # the answer arrived; the daemon dies before journaling it
    terminal.count = 1
    assert terminal.tap(card, FARE) == "ok"
    assert terminal.journal.rows[1].journal_state == "done"
    assert card.transit is not None and card.transit.balance == 4800  # not charged twice


def test_a_torn_purchase_the_card_never_received_becomes_void_and_charges_once() -> None:
    card = make_card("ordinary-2.0", tear_after=3)  # the DEBIT never reached the card
    terminal = TransitTerminal()
    assert terminal.tap(card, FARE) == "tap_again"
    card.return_to_field()
    assert terminal.tap(card, FARE) == "ok"
    states = {k: r.journal_state for k, r in terminal.journal.rows.items()}
    assert states == {1: "void", 2: "done"}


def test_paid_elsewhere_before_coming_back() -> None:
    # torn after the commit at A, a fare paid at B, back at A: done without proof
    card = make_card("ordinary-2.0", tear_before_answer=4)
    at_a = TransitTerminal()
    at_a.tap(card, FARE)
    card.return_to_field()
    other = dataclasses.replace(load_test_roots(), terminal_number="440100900002")
    from config.settings import Settings
    from drivers.soft_sam import SoftTransitSam

    at_b = TransitTerminal(module=SoftTransitSam(other, Settings()))
    assert at_b.tap(card, 300) == "ok"
    assert at_a.tap(card, FARE) == "ok"
    record = at_a.journal.rows[1]
    assert record.journal_state == "done" and record.recovered and record.tac is None
    assert card.transit is not None and card.transit.balance == 5000 - FARE - 300


def test_a_recovery_needs_the_same_card_and_terminal() -> None:
    card = make_card("ordinary-2.0", tear_before_answer=4)
    terminal = TransitTerminal()
    terminal.tap(card, FARE)
    record = terminal.journal.rows[1]
    with pytest.raises(NotTheSameCard):
        recover(session(make_card("v3-sm4")), terminal.module, record, WHEN)
    card.return_to_field()
    with pytest.raises(CardRemoved):
        card.behaviour.tear_after = 2
        recover(session(card), terminal.module, record, WHEN)


def test_recovery_when_the_purse_is_now_too_poor_for_another_init() -> None:
    card = card_with(balance=FARE + 50)
    card.behaviour.tear_before_answer = 4
    terminal = TransitTerminal()
    assert terminal.tap(card, FARE) == "tap_again"
    card.return_to_field()  # 50 fen left: INITIALIZE answers 9401, the log decides
    assert terminal.tap(card, FARE) == "ok"
    assert terminal.journal.rows[1].journal_state == "done" and terminal.journal.charged() == FARE


# -- random tearing, re-taps and kills -----------------------------------------------------------

tap_plan = st.tuples(
    st.sampled_from(["none", "tear_after", "tear_before_answer", "kill"]),
    st.integers(0, 7),  # the command number
    st.integers(1, 900),  # the fare, fen
    st.integers(0, 1),  # which card
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(tap_plan, min_size=1, max_size=12), t0=st.booleans())
def test_random_tearing_retaps_and_kills_never_lose_or_double_a_fen(plan, t0) -> None:
    cards = [make_card("ordinary-2.0", t0=t0), make_card("v3-sm4", t0=t0)]
    start = [c.transit.balance for c in cards]  # type: ignore[union-attr]
    terminal = TransitTerminal()
    for index, (how, count, fare, which) in enumerate(plan):
        card = cards[which]
        card.return_to_field()
        when = WHEN + dt.timedelta(seconds=index)
        if how == "kill":  # the daemon dies after the debit answered, before done
            try:
                purse = session(card)
                if not [
                    k
                    for k in terminal.journal.torn()
                    if terminal.journal.rows[k].card_id == purse.card_id
                ]:
                    purchase = Purchase(purse, terminal.module, Charge(fare), when)
                    purchase.start()
                    terminal.count += 1
                    terminal.journal.write(terminal.count, purchase.authorise())
                    purchase.send_debit()
            except (InsufficientBalance, PurchaseTorn):
                pass
            continue
        if how != "none":
            setattr(card.behaviour, how, count)
        terminal.tap(card, fare, when)
    for card in cards:  # everyone taps again, cleanly, until nothing is left torn
        for _ in range(3):
            card.return_to_field()
            mine = [
                k
                for k in terminal.journal.torn()
                if terminal.journal.rows[k].card_id == session(card).card_id
            ]
            if not mine:
                break
            card.return_to_field()
            terminal.tap(card, 1, WHEN + dt.timedelta(hours=1))
    assert not terminal.journal.torn()
    for card, before in zip(cards, start, strict=True):
        assert card.transit is not None
        mine = [r for r in terminal.journal.rows.values() if r.card_id == session(card).card_id]
        charged = sum(r.charge.amount for r in mine if r.journal_state == "done")
        assert before - card.transit.balance == charged
        for record in mine:
            if record.journal_state == "done" and record.tac is not None:
                assert tac_ok(card, record)


def test_the_psam_df_is_selected_once_and_again_after_a_reset() -> None:
    psam = transit_psam()
    module = transit_module(psam)
    for _ in range(2):
        Purchase(session(make_card("ordinary-2.0")), module, Charge(FARE), WHEN).run()
    selects = [c for c, _ in psam.log if c[:2] == H("00A4")]
    assert len(selects) == 1  # one SELECT for two fares
    psam.power_on()  # reset: the DF is no longer selected
    Purchase(session(make_card("ordinary-2.0")), module, Charge(FARE), WHEN).run()
    answers = [r for c, r in psam.log if c[:2] == H("8070")]
    assert answers[-2:] == [H("6985"), H("6108")]  # refused outside the DF, then selected again
