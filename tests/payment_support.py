"""Helpers for the payment tests: the transit PSAM, sessions over emulated cards, a little
terminal that journals purchases the way issue 15 asks (pending before the debit)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from support import KEYS, load_test_roots, make_card

from apdu.errors import CardRemoved
from apdu.medical_payment import MedicalAccountSession
from apdu.payment import Charge, PaymentRefused, PurchaseTorn
from apdu.psam import PsamModule
from apdu.purchase import JournalState, Purchase, PurchaseRecord, Verdict, recover
from apdu.sam import SecurityModule
from apdu.ssc import SscSession
from apdu.transit import TransitPurseSession
from apdu.transit_psam import TransitPsamModule
from apdu.transport import Connection, t0_chain
from drivers.virtual.card import Behaviour, VirtualCard, VirtualConnection
from drivers.virtual.transit_psam import VirtualTransitPsam, load_transit_psam

WHEN = dt.datetime(2026, 11, 29, 7, 58, 3)
TRANSIT_PSAM = KEYS / "transit-psam.toml"
Connect = Callable[[VirtualCard], Connection]


def transit_psam(**behaviour: object) -> VirtualTransitPsam:
    """The emulated transit PSAM (T=0 by default)."""
    behaviour.setdefault("t0", True)
    return VirtualTransitPsam(load_transit_psam(TRANSIT_PSAM), Behaviour(**behaviour))  # type: ignore[arg-type]


def transit_module(psam: VirtualTransitPsam | None = None) -> TransitPsamModule:
    """The transit PSAM as a security module, over the T=0 chain."""
    return TransitPsamModule(t0_chain(VirtualConnection(psam or transit_psam())))


def session(card: VirtualCard, connect: Connect = VirtualConnection) -> TransitPurseSession:
    """A transit session on the card (a new tap: the card is powered on)."""
    return TransitPurseSession(t0_chain(connect(card)))


@dataclass
class Journal:
    """The rows a terminal keeps, by purchase number; the last state of each row counts."""

    rows: dict[int, PurchaseRecord] = field(default_factory=dict)
    writes: list[tuple[int, JournalState]] = field(default_factory=list)

    def write(self, key: int, record: PurchaseRecord) -> None:
        state = record.journal_state
        assert state is not None, record.state
        self.rows[key] = record
        self.writes.append((key, state))

    def charged(self) -> int:
        """Fen the journal says the cards paid: every row the card debited."""
        return sum(r.charge.amount for r in self.rows.values() if r.journal_state == "done")

    def torn(self) -> list[int]:
        return [k for k, r in self.rows.items() if r.journal_state in ("torn", "pending")]


@dataclass
class TransitTerminal:
    """A validator: one transit PSAM, a journal, and the anti-tearing rule of issue 15."""

    module: SecurityModule = field(default_factory=transit_module)
    journal: Journal = field(default_factory=Journal)
    count: int = 0

    def tap(self, card: VirtualCard, fare: int, when: dt.datetime = WHEN) -> str:
        """One tap: recover a torn purchase of this card first, else charge the fare once.

        :returns: what the rider sees: ``ok``, ``tap_again``, ``refused``, ``undecided``
        """
        try:
            purse = session(card)
            torn = [k for k in self.journal.torn() if self.journal.rows[k].card_id == purse.card_id]
            if torn:
                key = torn[0]
                result = recover(purse, self.module, self.journal.rows[key], when)
                self.journal.write(key, result.record)
                if result.verdict == Verdict.UNDECIDABLE:
                    return "undecided"
                if result.retry is None:
                    return "ok" if result.record.journal_state == "done" else "refused"
                return self._charge(result.retry)
            return self._charge(Purchase(purse, self.module, Charge(fare), when))
        except (PurchaseTorn, CardRemoved):  # CardRemoved: before the debit, nothing happened
            return "tap_again"
        except PaymentRefused:
            return "refused"

    def _charge(self, purchase: Purchase) -> str:
        self.count += 1
        key = self.count
        if purchase.state == "new":
            purchase.start()
        self.journal.write(key, purchase.authorise())  # pending, before the debit
        try:
            purchase.send_debit()
        except (PurchaseTorn, PaymentRefused):
            self.journal.write(key, purchase.record)
            raise
        self.journal.write(key, purchase.confirm())
        return "ok"


def transit_purchase_with_recovery(connect: Connect = VirtualConnection) -> TransitTerminal:
    """A plain purchase, then one torn after the card committed it and recovered on a re-tap."""
    card = make_card("ordinary-2.0")
    terminal = TransitTerminal()
    assert terminal.tap(card, 200) == "ok"
    card.behaviour.tear_before_answer = _debit_index(card)
    purse = TransitPurseSession(t0_chain(connect(card)))
    purchase = Purchase(purse, terminal.module, Charge(200), WHEN)
    with contextlib.suppress(PurchaseTorn):
        purchase.run()
    terminal.journal.write(99, purchase.record)
    card.return_to_field()
    purse = TransitPurseSession(t0_chain(connect(card)))
    purse.get_balance()
    result = recover(purse, terminal.module, purchase.record, WHEN)
    assert result.verdict == Verdict.DEBITED and result.record.tac is not None
    return terminal


def _debit_index(card: VirtualCard) -> int:
    """The command number a purchase's DEBIT will be on this card (T=1): SELECT, READ BINARY,
    INITIALIZE, DEBIT."""
    return 4


def medical_settlement(connect: Connect = VirtualConnection) -> tuple[PurchaseRecord, str]:
    """PIN, DF04, balances, a settlement with the SSC PSAM, the EF08 records; the purchase and
    the card's 卡识别码 (hex)."""
    from support import make_psam

    card = make_card("ordinary-2.0")
    connection = t0_chain(connect(card))
    session = SscSession(connection)
    issuer = session.read_issuer()
    session.verify_pin("123456")
    account = MedicalAccountSession(connection, issuer.card_id)
    account.balances()
    module = PsamModule(t0_chain(VirtualConnection(make_psam("psam-national"))))
    record = Purchase(account, module, Charge(3000, 500, 6000), WHEN).run()
    assert record.journal_state == "done"
    assert list(account.read_debit_records())
    account.proof(record.card_sequence + 1)  # type: ignore[operator]
    return record, account.card_id


def roots():
    """The test roots (TAC checks)."""
    return load_test_roots()
