"""Helpers for the clearing tests: purchases made with the emulated transit purses and the
transit PSAM (``apdu/purchase.py``, the anti-tearing terminal of ``payment_support``), every
journal write turned into a chained journal row with its ``payment`` object (the contract of
docs/sync.md §5.7), uploaded with the sync client's signed transport."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

from payment_support import WHEN, Journal, TransitTerminal, session
from platform_support import record
from support import load_test_roots, persona

from apdu.errors import CardRemoved
from apdu.payment import Charge, InsufficientBalance, PaymentRefused, PurchaseTorn
from apdu.purchase import Purchase, PurchaseRecord
from drivers.virtual.card import Behaviour
from drivers.virtual.ssc_card import VirtualSscCard
from offline_store.chain import GENESIS_HASH, canonical_bytes, chain_hash, payment_digest
from sync.answers import batch_answer
from sync.transport import Credentials, SignedTransport

ROOTS = load_test_roots()
ISSUERS = ("4401000000000000", "3101000000000000")
BATCH_ROWS = 1000


def purse_card(index: int, balance: int) -> VirtualSscCard:
    """An emulated card with a transit purse of its own: serial by ``index``, issuer by its
    parity (two issuers to clear for)."""
    base = persona("ordinary-2.0")
    assert base.transit is not None
    public = dataclasses.replace(
        base.transit.public,
        serial=bytes.fromhex(f"3104401000{index:010d}"),
        issuer_id=bytes.fromhex(ISSUERS[index % 2]),
    )
    transit = dataclasses.replace(base.transit, balance=balance, public=public)
    return VirtualSscCard(dataclasses.replace(base, transit=transit), Behaviour(), ROOTS)


def payment_object(rec: PurchaseRecord, card: VirtualSscCard) -> dict[str, Any]:
    """The ``payment`` object of a journal row of ``rec`` (transit)."""
    assert card.transit is not None and rec.terminal_number is not None
    public = card.transit.public
    return {
        "kind": "transit",
        "state": str(rec.journal_state),
        "amount_fen": rec.charge.amount,
        "balance_before": rec.balance_before,
        "balance_after": rec.balance_after,
        "card_sequence": rec.card_sequence,
        "terminal_sequence": rec.terminal_sequence,
        "tac": None if rec.tac is None else rec.tac.hex().upper(),
        "time": rec.when.strftime("%Y%m%d%H%M%S"),
        "terminal_number": rec.terminal_number,
        "card_serial": public.serial.hex().upper(),
        "issuer": public.issuer_id.hex().upper(),
    }


@dataclass
class RowJournal(Journal):
    """The test terminal's journal, writing a chained row for every write (rows are immutable:
    a purchase's later state is a new row)."""

    terminal_id: str = "T1"
    cards: dict[str, VirtualSscCard] = field(default_factory=dict)
    uploaded: list[dict[str, Any]] = field(default_factory=list)
    prev_hash: str = GENESIS_HASH
    open_keys: set[int] = field(default_factory=set)

    def write(self, key: int, rec: PurchaseRecord) -> None:
        super().write(key, rec)
        if rec.journal_state in ("torn", "pending"):
            self.open_keys.add(key)
        else:
            self.open_keys.discard(key)
        self.append(payment_object(rec, self.cards[rec.card_id]))

    def torn(self) -> list[int]:
        """The purchases still torn or pending, as :meth:`Journal.torn` finds them, from an
        index (a scan of every row per tap made a 10,000-purchase campaign quadratic)."""
        return sorted(self.open_keys)

    def append(self, payment: dict[str, Any]) -> dict[str, Any]:
        """Chain one more row carrying ``payment``; the row."""
        seq = len(self.uploaded) + 1
        fields = {"scenario": "transit", "reason_code": "purse_" + payment["state"]}
        fields["amount"] = str(payment["amount_fen"])
        row = seal_payment(record(self.terminal_id, seq, payment=payment, **fields), self.prev_hash)
        self.uploaded.append(row)
        self.prev_hash = row["hash"]
        return row


def seal_payment(rec: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """A row of a record with a payment object: the chain hash covers the object's digest."""
    hashed = {**rec, "payment": payment_digest(rec["payment"])}
    return {**rec, "prev_hash": prev_hash, "hash": chain_hash(prev_hash, canonical_bytes(hashed))}


def run_campaign(purchases: int, cards: int, seed: int) -> tuple[RowJournal, list[int]]:
    """``purchases`` taps over ``cards`` purses, with random tearing (before a command is acted
    on, or after it committed and before its answer), random kills between ``pending`` and
    ``done``, and the re-taps that recover them; then every card taps until nothing is torn.

    :returns: the journal and each card's balance drop, fen
    """
    rng = random.Random(seed)
    journal = RowJournal()
    deck = [purse_card(i, 1_000_000) for i in range(cards)]
    for card in deck:
        journal.cards[session(card).card_id] = card
    terminal = TransitTerminal(journal=journal)
    for index in range(purchases):
        card = rng.choice(deck)
        card.return_to_field()
        when = WHEN + dt.timedelta(seconds=index)
        fare = rng.randint(1, 900)
        roll = rng.random()
        if roll < 0.03:
            _killed(terminal, card, fare, when)
            continue
        if roll < 0.10:
            how = rng.choice(("tear_after", "tear_before_answer"))
            setattr(card.behaviour, how, rng.randint(0, 7))
        terminal.tap(card, fare, when)
    settle = WHEN + dt.timedelta(seconds=purchases + 1)
    for card in deck:  # everyone taps again, cleanly, until nothing of theirs is torn
        for _ in range(3):
            card.return_to_field()
            card.behaviour.tear_after = card.behaviour.tear_before_answer = None
            if not _open(journal, card):
                break
            terminal.tap(card, 1, settle)
    assert not journal.torn(), "a purchase stayed torn after the clean re-taps"
    drops = [1_000_000 - card.transit.balance for card in deck]  # type: ignore[union-attr]
    return journal, drops


def _open(journal: RowJournal, card: VirtualSscCard) -> list[int]:
    card_id = session(card).card_id
    card.return_to_field()
    return [k for k in journal.torn() if journal.rows[k].card_id == card_id]


def _killed(terminal: TransitTerminal, card: VirtualSscCard, fare: int, when: dt.datetime) -> None:
    """The daemon dies after the debit answered, before ``done`` is journaled."""
    try:
        if _open(terminal.journal, card):  # type: ignore[arg-type]
            terminal.tap(card, fare, when)
            return
        purchase = Purchase(session(card), terminal.module, Charge(fare), when)
        purchase.start()
        terminal.count += 1
        terminal.journal.write(terminal.count, purchase.authorise())
        purchase.send_debit()
    except (InsufficientBalance, PurchaseTorn, PaymentRefused, CardRemoved):
        pass


def upload(url: str, credentials: Any, clock: Any, rows: list[dict[str, Any]]) -> None:
    """Upload rows in batches through the sync client's signed transport; every row stored."""
    transport = SignedTransport(
        url,
        Credentials(credentials.terminal_id, credentials.key_id, credentials.key),
        timeout_s=60,
        clock=clock,
    )
    try:
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start : start + BATCH_ROWS]
            body = json.dumps({"rows": batch}, ensure_ascii=False).encode("utf-8")
            answer = transport.post_json("/v1/journal/batch", body, batch_answer)
            assert not answer.rejected, answer.rejected
            assert answer.ack_seq == int(batch[-1]["seq"])
    finally:
        transport.close()
