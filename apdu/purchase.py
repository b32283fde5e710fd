"""A purchase, step by step, and the recovery of a torn one (spec doc §7; issue 15).

:class:`Purchase` drives one card payment application (:class:`apdu.payment.PurseApplication`:
the transit purse, the medical account) and one security module, and does no other I/O. Each
step is a method, so the caller journals between them — above all ``pending`` **before** the
debit is sent::

    NEW ──start()───────▶ INITIALISED ──authorise()──▶ AUTHORISED   (journal: pending)
                                                           │ send_debit()
                          TORN ◀── card left ─────── DEBIT_SENT
                                                           │ TAC, MAC2
                          UNPROVEN ◀── MAC2 wrong ───── DEBITED ──confirm()──▶ DONE
    any refusal before the debit answered ──▶ VOID (nothing was debited)

A refusal of INITIALIZE or of DEBIT (insufficient balance, MAC1 invalid, …) leaves the card as
it was: ``VOID``. The card leaving (or answering a status word no refusal explains) while the
DEBIT is in flight is ``TORN``: the card may have debited and lost only its answer. Tearing
anywhere before DEBIT is sent is ``VOID``; after the answer arrived, the card is no longer
needed — MAC2 is checked by the security module.

**Recovery** (:func:`recover`): when a torn card comes back, the terminal reads the card's
history back to the torn purchase's sequence, then initialises a purchase of the same amount
again (nothing may come between that INITIALIZE and a DEBIT). :func:`decide` compares the
card's state with the torn record:

* the card's transaction sequence did not move → it did not debit: the torn record becomes
  ``VOID`` and the fresh initialisation goes on as the one charge (no double charge);
* it moved by one and the card's history holds our transaction (same sequence, amount,
  terminal and time) — or, with no history to read, the balance dropped by exactly the
  amount → it debited: GET TRANSACTION PROOF returns MAC2 and TAC, the record becomes
  ``DONE`` and nothing more is charged (no lost charge, no double charge);
* it moved further (the card paid elsewhere since): the history decides; a debit found there
  is ``DONE`` without a proof (the card keeps the proof of its last transaction only), one not
  found is ``VOID``;
* anything else is ``UNDECIDABLE``: the record stays ``TORN`` for the platform.

A daemon killed between ``pending`` and ``done`` recovers the same way, from the journaled
record, when that card comes back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apdu import purse
from apdu.errors import ApduError, CardRemoved, CardStateError, ProtocolError, SscardError
from apdu.payment import (
    Charge,
    HistoryEntry,
    InsufficientBalance,
    ProofUnavailable,
    PurchaseInit,
    PurchaseTorn,
    PurseApplication,
    sequence_distance,
)
from apdu.purse import PurchaseRequest
from apdu.sam import Mac2Invalid, SecurityModule

log = logging.getLogger(__name__)


class PurchaseState(enum.StrEnum):
    """Where a purchase is (see the module docstring)."""

    NEW = "new"
    INITIALISED = "initialised"
    AUTHORISED = "authorised"
    DEBIT_SENT = "debit_sent"
    DEBITED = "debited"
    DONE = "done"
    UNPROVEN = "unproven"
    TORN = "torn"
    VOID = "void"


class JournalState(enum.StrEnum):
    """What a journal row says of a purchase (issue 15): the four states a record leaves with."""

    PENDING = "pending"
    DONE = "done"
    TORN = "torn"
    VOID = "void"


_JOURNAL = {
    PurchaseState.AUTHORISED: JournalState.PENDING,
    PurchaseState.DEBIT_SENT: JournalState.PENDING,
    PurchaseState.DEBITED: JournalState.PENDING,
    PurchaseState.DONE: JournalState.DONE,
    PurchaseState.UNPROVEN: JournalState.DONE,  # the card debited; the platform checks the TAC
    PurchaseState.TORN: JournalState.TORN,
    PurchaseState.VOID: JournalState.VOID,
}


class Verdict(enum.StrEnum):
    """What a returning card says about a torn purchase (:func:`decide`)."""

    NOT_DEBITED = "not_debited"
    DEBITED = "debited"  # and it is the card's last purchase: its proof can be read again
    DEBITED_EARLIER = "debited_earlier"  # the card paid again since: no proof to read
    UNDECIDABLE = "undecidable"


class NotTheSameCard(SscardError):
    """A recovery was attempted on another card than the torn purchase's."""


class PurchaseStateError(SscardError):
    """A purchase step called out of order (a bug in the caller, not a card condition)."""


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """Everything a journal row of a purchase holds (balances in fen, sequences as integers).

    :param application: ``transit`` or ``medical``
    :param card_id: the application's card number (hex); personal: mask it in logs
    :param charge: the amounts
    :param when: the transaction time sent to the card
    :param state: the purchase state
    :param balance_before: the balance INITIALIZE reported
    :param card_sequence: the card transaction sequence the purchase used
    :param terminal_number: the module's 12 digits
    :param terminal_sequence: the module's terminal transaction sequence (after MAC1)
    :param key_version: the card's purchase key version
    :param tac: the card's TAC, once known
    :param mac2: the card's MAC2, once known
    :param mac2_checked: the security module verified MAC2
    :param recovered: the proof came from GET TRANSACTION PROOF (or the card's history)
    """

    application: str
    card_id: str
    charge: Charge
    when: dt.datetime
    state: PurchaseState = PurchaseState.NEW
    balance_before: int | None = None
    card_sequence: int | None = None
    terminal_number: str | None = None
    terminal_sequence: int | None = None
    key_version: int | None = None
    tac: bytes | None = None
    mac2: bytes | None = None
    mac2_checked: bool = False
    recovered: bool = False

    @property
    def balance_after(self) -> int | None:
        """The balance the card holds once the purchase is debited."""
        if self.balance_before is None:
            return None
        return self.balance_before - self.charge.amount

    @property
    def journal_state(self) -> JournalState | None:
        """The journal row's state, ``None`` before anything worth a row happened."""
        return _JOURNAL.get(self.state)

    @property
    def debited(self) -> bool:
        """The card debited the amount (as far as the terminal knows)."""
        return self.state in (PurchaseState.DEBITED, PurchaseState.DONE, PurchaseState.UNPROVEN)

    def matches(self, entry: HistoryEntry) -> bool:
        """Whether a card history entry is this purchase.

        :param entry: one entry of the card's history
        """
        return (
            entry.purchase
            and entry.sequence == self.card_sequence
            and entry.amount == self.charge.amount
            and entry.terminal_number == self.terminal_number
            and entry.when == self.when.replace(microsecond=0)
        )


class Purchase:
    """One purchase on one card, step by step (see the module docstring).

    :param card: the card's payment application (a session, already selected)
    :param module: the security module (PSAM, software SAM) that computes MAC1 and checks MAC2
    :param charge: the amounts; ``amount`` must be at least 1 fen (a fare of 0 debits nothing
        and is journaled without a purchase)
    :param when: the transaction time, to the second
    :param transaction_type: ``06`` purchase
    :raises ProtocolError: an amount of 0
    """

    def __init__(
        self,
        card: PurseApplication,
        module: SecurityModule,
        charge: Charge,
        when: dt.datetime,
        transaction_type: int = purse.TYPE_PURCHASE,
    ) -> None:
        if charge.amount == 0:
            raise ProtocolError("a purchase takes at least 1 fen; a fare of 0 debits nothing")
        self.card = card
        self.module = module
        self.transaction_type = transaction_type
        self.init: PurchaseInit | None = None
        self.record = PurchaseRecord(card.kind, card.card_id, charge, when.replace(microsecond=0))

    @property
    def state(self) -> PurchaseState:
        """The current state."""
        return self.record.state

    def _expect(self, *states: PurchaseState) -> None:
        if self.state not in states:
            raise PurchaseStateError(
                f"purchase is {self.state}, this step needs {' or '.join(states)}"
            )

    def _to(self, state: PurchaseState, **changes: object) -> PurchaseRecord:
        self.record = dataclasses.replace(self.record, state=state, **changes)  # type: ignore[arg-type]
        log.info(
            "event=purchase_state application=%s state=%s amount=%d card_sequence=%s",
            self.record.application,
            state,
            self.record.charge.amount,
            self.record.card_sequence,
        )
        return self.record

    # -- the steps ---------------------------------------------------------------------------

    def start(self) -> PurchaseInit:
        """INITIALIZE FOR PURCHASE with the module's terminal number.

        :raises PaymentRefused: the card refused (the purchase is ``VOID``)
        :raises CardStateError: ``6982``, the PIN first (medical), ``6A81`` (``VOID``)
        :raises CardRemoved: the card left (``VOID``: nothing can have been debited)
        """
        self._expect(PurchaseState.NEW)
        terminal = self.module.terminal_number()
        try:
            init = self.card.initialize(self.record.charge, terminal)
        except (CardStateError, ApduError, CardRemoved, ProtocolError):
            self._to(PurchaseState.VOID, terminal_number=terminal)
            raise
        self.adopt(init, terminal)
        return init

    def adopt(self, init: PurchaseInit, terminal_number: str) -> None:
        """Take an INITIALIZE answer obtained elsewhere (a recovery's) as this purchase's.

        :param init: the card's answer
        :param terminal_number: the terminal number it was obtained with
        """
        self._expect(PurchaseState.NEW)
        self.init = init
        self._to(
            PurchaseState.INITIALISED,
            balance_before=init.balance,
            card_sequence=init.sequence,
            terminal_number=terminal_number,
            key_version=init.key_version,
        )

    def authorise(self) -> PurchaseRecord:
        """MAC1 from the security module; the returned record is the ``pending`` journal row,
        to be made durable **before** :meth:`send_debit`.

        :raises SecurityModuleError: the module refused (the purchase is ``VOID``)
        """
        self._expect(PurchaseState.INITIALISED)
        assert self.init is not None
        request = PurchaseRequest(
            card_random=self.init.random,
            card_sequence=self.init.sequence,
            amount=self.record.charge.amount,
            transaction_type=self.transaction_type,
            when=self.record.when,
            key_version=self.init.key_version,
            algorithm_id=self.init.algorithm_id,
            factors=self.card.factors(),
        )
        try:
            answer = self.module.purchase_mac1(request)
        except SscardError:
            self._to(PurchaseState.VOID)
            raise
        self._mac1 = answer.mac1
        return self._to(PurchaseState.AUTHORISED, terminal_sequence=answer.terminal_sequence)

    def send_debit(self) -> PurchaseRecord:
        """DEBIT FOR PURCHASE.

        :raises PaymentRefused: the card refused; nothing was debited (``VOID``)
        :raises PurchaseTorn: the card left, or answered what no refusal explains (``TORN``)
        """
        self._expect(PurchaseState.AUTHORISED)
        assert self.record.terminal_sequence is not None
        self._to(PurchaseState.DEBIT_SENT)
        try:
            answer = self.card.debit(self.record.terminal_sequence, self.record.when, self._mac1)
        except CardStateError:  # a refusal (PaymentRefused, 6982 …): nothing was debited
            self._to(PurchaseState.VOID)
            raise
        except (CardRemoved, ApduError, ProtocolError) as exc:
            self._to(PurchaseState.TORN)
            raise PurchaseTorn(f"the card left during the debit: tap again ({exc})") from exc
        return self._to(PurchaseState.DEBITED, tac=answer.tac, mac2=answer.mac2)

    def confirm(self) -> PurchaseRecord:
        """Check MAC2 with the security module: ``DONE``, or ``UNPROVEN`` if it does not match.

        :raises Mac2Invalid: MAC2 does not verify (the record is ``UNPROVEN``: the card says it
            debited; the platform judges its TAC)
        """
        self._expect(PurchaseState.DEBITED)
        assert self.record.mac2 is not None
        try:
            self.module.check_mac2(self.record.mac2)
        except Mac2Invalid:
            self._to(PurchaseState.UNPROVEN)
            raise
        return self._to(PurchaseState.DONE, mac2_checked=True)

    def run(self) -> PurchaseRecord:
        """All the steps, for a caller that journals nothing in between (tests, benchmarks).

        :raises PaymentRefused: a refusal (``VOID``)
        :raises PurchaseTorn: the card left during the debit (``TORN``)
        :raises Mac2Invalid: ``UNPROVEN``
        """
        if self.state == PurchaseState.NEW:
            self.start()
        self.authorise()
        self.send_debit()
        return self.confirm()


def decide(
    record: PurchaseRecord, init: PurchaseInit | None, history: Sequence[HistoryEntry]
) -> Verdict:
    """Whether the card debited a torn purchase, from its state now (see the module docstring).

    :param record: the torn (or pending) purchase; it must hold its card sequence
    :param init: the card's answer to a fresh INITIALIZE, ``None`` when it refused one
        (insufficient balance: then the history alone decides)
    :param history: the card's entries, newest first (as many as were read)
    :raises ProtocolError: a record that never reached the card's INITIALIZE
    """
    s0 = record.card_sequence
    if s0 is None:
        raise ProtocolError("a purchase without a card sequence never reached the card")
    purchases = [entry for entry in history if entry.purchase]
    ours = next((entry for entry in purchases if entry.sequence == s0), None)
    if init is not None:
        moved = sequence_distance(s0, init.sequence)
        if moved == 0:
            return Verdict.NOT_DEBITED
        if moved == 1:
            if ours is not None:
                return Verdict.DEBITED if record.matches(ours) else Verdict.NOT_DEBITED
            if init.balance == record.balance_after:
                return Verdict.DEBITED
            return Verdict.UNDECIDABLE
        if moved < 0x8000 and ours is not None:
            return Verdict.DEBITED_EARLIER if record.matches(ours) else Verdict.NOT_DEBITED
        return Verdict.UNDECIDABLE
    if ours is not None:
        if not record.matches(ours):
            return Verdict.NOT_DEBITED
        return Verdict.DEBITED if purchases[0] is ours else Verdict.DEBITED_EARLIER
    if not purchases or 0 < sequence_distance(purchases[0].sequence, s0) < 0x8000:
        # no purchase at all, or the newest is older than ours: ours never happened
        return Verdict.NOT_DEBITED
    return Verdict.UNDECIDABLE


def _history_until(entries: Iterable[HistoryEntry], sequence: int) -> list[HistoryEntry]:
    """Read the history, newest first, until a purchase at or before ``sequence``."""
    read: list[HistoryEntry] = []
    for entry in entries:
        read.append(entry)
        if entry.purchase and sequence_distance(entry.sequence, sequence) < 0x8000:
            break
    return read


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a returning card resolved.

    :param verdict: what the card said
    :param record: the torn record, now ``DONE``, ``VOID`` or still ``TORN``
    :param retry: where the card did not debit and a fresh INITIALIZE succeeded, the purchase
        that charges once (``INITIALISED``: authorise, journal, send_debit, confirm); else
        ``None``
    """

    verdict: Verdict
    record: PurchaseRecord
    retry: Purchase | None


def recover(
    card: PurseApplication,
    module: SecurityModule,
    record: PurchaseRecord,
    when: dt.datetime,
) -> Recovery:
    """Resolve a torn (or pending) purchase on the card that came back.

    :param card: the card's payment application, selected
    :param module: the security module (its terminal number must be the record's)
    :param record: the journaled purchase, in ``AUTHORISED``/``DEBIT_SENT``/``DEBITED``/``TORN``
    :param when: now, the time of a retry
    :raises NotTheSameCard: another card (or another terminal's record)
    :raises CardRemoved: the card left again (the record stays as it was)
    :raises PaymentRefused: a refusal other than insufficient balance
    """
    if record.card_id != card.card_id or record.application != card.kind:
        raise NotTheSameCard("this is not the card of the torn purchase")
    if record.card_sequence is None or record.terminal_number is None:
        raise ProtocolError("a purchase that never reached INITIALIZE has nothing to recover")
    if record.terminal_number != module.terminal_number():
        raise NotTheSameCard("the torn purchase was made with another terminal number")
    if record.state == PurchaseState.DEBITED and record.tac is not None:
        # the answer arrived before the daemon stopped: the card debited for certain
        return Recovery(
            Verdict.DEBITED, dataclasses.replace(record, state=PurchaseState.DONE), None
        )
    # the history first: any command between INITIALIZE and DEBIT cancels the purchase on the
    # card, and the fresh INITIALIZE may become the retry's
    history = _history_until(card.history(), record.card_sequence)
    init: PurchaseInit | None
    try:
        init = card.initialize(record.charge, record.terminal_number)
    except InsufficientBalance:
        init = None
    verdict = decide(record, init, history)
    log.info(
        "event=purchase_recovery application=%s verdict=%s card_sequence=%d",
        record.application,
        verdict,
        record.card_sequence,
    )
    if verdict == Verdict.NOT_DEBITED:
        retry = None
        if init is not None:
            retry = Purchase(card, module, record.charge, when)
            retry.adopt(init, record.terminal_number)
        return Recovery(verdict, dataclasses.replace(record, state=PurchaseState.VOID), retry)
    if verdict == Verdict.UNDECIDABLE:
        return Recovery(verdict, dataclasses.replace(record, state=PurchaseState.TORN), None)
    if verdict == Verdict.DEBITED:
        try:
            proof = card.proof((record.card_sequence + 1) & 0xFFFF)
        except ProofUnavailable:
            verdict = Verdict.DEBITED_EARLIER
        else:
            done = dataclasses.replace(
                record, state=PurchaseState.DONE, tac=proof.tac, mac2=proof.mac2, recovered=True
            )
            return Recovery(verdict, done, None)
    return Recovery(
        verdict, dataclasses.replace(record, state=PurchaseState.DONE, recovered=True), None
    )
