"""The fare on the transit purse: the purchase step of an accepted tap, journaled step by step,
and the recovery of a torn purchase when its card comes back (issue 15, docs/payments.md §3).

An accepted transit tap reaches :meth:`TransitPayments.__call__` (the pipeline's ``purse``
step) with the fare its scenario rules gave. On the card's transit application:

1. if this card has a purchase still open here (``pending`` or ``torn``, :mod:`offline_store.
   payment`) made within ``tear_window_s`` by this PSAM, it is recovered first
   (:func:`apdu.purchase.recover`): where the card debited, its row ends ``done`` with the TAC
   of GET TRANSACTION PROOF and the rider passes **without a second charge**; where it did
   not, its row ends ``void`` and the card pays once; where the card cannot tell, the row stays
   ``torn`` and the rider is sent to staff. An open purchase older than the window, or made by
   another PSAM, is left to the platform (its ``torn`` row is journaled) and the card pays
   afresh;
2. the fare after the profile's ``[transit.purse]`` rules (:mod:`terminal.fares`); a fare of 0
   debits nothing and is journaled as the accept it is;
3. INITIALIZE, MAC1, then the ``pending`` row — committed and synced **before** the DEBIT is
   sent — then DEBIT and MAC2: ``done``. A refusal is ``void`` (nothing was debited, the
   status word's own reason); the card leaving during the DEBIT is ``torn`` (请重新刷卡 / tap
   again); a MAC2 that does not verify is ``done`` flagged ``unproven:mac2`` (the card says it
   debited; the platform judges its TAC).

Every later row of a purchase names its ``pending`` row (``ref_seq``) and carries the whole
payment object again. A daemon killed between ``pending`` and ``done`` leaves the purchase open:
:meth:`TransitPayments.at_start` journals it ``torn``, and the card's next tap recovers it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from apdu.errors import ApduError, CardRemoved, ProtocolError, SscardError
from apdu.payment import Charge, InsufficientBalance, PaymentRefused, PurchaseTorn
from apdu.purchase import (
    NotTheSameCard,
    Purchase,
    PurchaseRecord,
    PurchaseState,
    Verdict,
    recover,
)
from apdu.sam import Mac2Invalid, SecurityModule
from apdu.transit import TransitPurseSession, mask_serial
from apdu.transit_psam import TransitPsamModule
from apdu.transport import t0_chain
from config.settings import Settings
from drivers.keyfile import load_root_keys
from drivers.pcsc import PcscReader
from drivers.soft_sam import SoftTransitSam, refuse_in_production
from offline_store import Store
from offline_store.payment import OpenPurchase, Payment, PaymentRow
from terminal.card_read import ScenarioRead
from terminal.fares import PurseRules, purse_fare
from terminal.pipeline import ACCEPT, Decision, Pipeline, refuse
from terminal.profiles import Profile
from terminal.reasons import Reason

__all__ = [
    "PurseDebits",
    "TransitPayments",
    "leave_to_platform",
    "open_fare_module",
    "payment_of",
    "payment_row",
    "record_from_json",
    "record_to_json",
    "transit_payments",
]

log = logging.getLogger(__name__)

KIND = "transit"
PSAM_WAIT_S = 5.0  # a validator starts with its PSAM in place; pcscd may take a moment
UNPROVEN_FLAG = "unproven:mac2"


def record_to_json(record: PurchaseRecord) -> dict[str, Any]:
    """A purchase record as the JSON object ``payment_open`` keeps for its recovery."""
    return {
        "application": record.application,
        "card_id": record.card_id,
        "charge": [record.charge.amount, record.charge.self_pay, record.charge.pooled],
        "when": record.when.isoformat(),
        "state": str(record.state),
        "balance_before": record.balance_before,
        "card_sequence": record.card_sequence,
        "terminal_number": record.terminal_number,
        "terminal_sequence": record.terminal_sequence,
        "key_version": record.key_version,
        "tac": None if record.tac is None else record.tac.hex(),
        "mac2": None if record.mac2 is None else record.mac2.hex(),
    }


def record_from_json(raw: dict[str, Any]) -> PurchaseRecord:
    """The purchase record :func:`record_to_json` wrote.

    :raises ProtocolError: an object that is not one
    """
    try:
        amount, self_pay, pooled = raw["charge"]
        return PurchaseRecord(
            application=raw["application"],
            card_id=raw["card_id"],
            charge=Charge(amount, self_pay, pooled),
            when=dt.datetime.fromisoformat(raw["when"]),
            state=PurchaseState(raw["state"]),
            balance_before=raw["balance_before"],
            card_sequence=raw["card_sequence"],
            terminal_number=raw["terminal_number"],
            terminal_sequence=raw["terminal_sequence"],
            key_version=raw["key_version"],
            tac=None if raw["tac"] is None else bytes.fromhex(raw["tac"]),
            mac2=None if raw["mac2"] is None else bytes.fromhex(raw["mac2"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"an open purchase that does not parse ({exc})") from None


def payment_of(record: PurchaseRecord, issuer: str | None) -> Payment:
    """The journal row's payment object of a purchase record.

    :param record: the purchase, past INITIALIZE
    :param issuer: the transit issuer id (16 hex), ``None`` for medical
    """
    state = record.journal_state
    assert state is not None and record.terminal_number is not None
    medical = record.application == "medical"
    return Payment(
        kind=record.application,
        state=str(state),
        amount_fen=record.charge.amount,
        balance_before=record.balance_before,
        balance_after=record.balance_after,
        card_sequence=record.card_sequence,
        terminal_sequence=record.terminal_sequence,
        tac=None if record.tac is None else record.tac.hex().upper(),
        time=record.when.strftime("%Y%m%d%H%M%S"),
        terminal_number=record.terminal_number,
        card_serial=record.card_id,
        issuer=issuer,
        self_pay_fen=record.charge.self_pay if medical else None,
        pooled_fen=record.charge.pooled if medical else None,
    )


@dataclass(frozen=True, slots=True)
class _Card:
    """One tap's card, as every step of its purchase needs it."""

    pipeline: Pipeline
    purse: TransitPurseSession
    issuer: str
    card_hash: str

    def row(self, record: PurchaseRecord, ref_seq: int | None) -> PaymentRow:
        """The payment row of a record; an open one keeps what its recovery needs."""
        return payment_row(record, self.issuer, ref_seq, self.card_hash)

    def final(self, decision: Decision, record: PurchaseRecord, ref_seq: int) -> Decision:
        """The decision with the purchase's row."""
        return dataclasses.replace(decision, payment=self.row(record, ref_seq))


def payment_row(
    record: PurchaseRecord, issuer: str | None, ref_seq: int | None, card_hash: str
) -> PaymentRow:
    """What a purchase record adds to its journal row; an open one (``pending``, ``torn``)
    keeps what its recovery needs.

    :param record: the purchase
    :param issuer: the transit issuer id, ``None`` for medical
    :param ref_seq: the row it follows up
    :param card_hash: the credential token (the rows a restart writes carry it)
    """
    recovery = None
    if record.journal_state in ("pending", "torn"):
        recovery = {**record_to_json(record), "issuer": issuer, "card_hash": card_hash}
    return PaymentRow(payment_of(record, issuer), recovery, ref_seq)


def leave_to_platform(
    pipeline: Pipeline, record: PurchaseRecord, issuer: str | None, card_hash: str, seq: int
) -> None:
    """An open purchase past its tearing window (or another PSAM's): journaled ``torn`` once
    more, without a recovery — which closes it here; the platform settles it.

    :param pipeline: the pipeline whose journal takes the row
    :param record: the open purchase
    :param issuer: the transit issuer id, ``None`` for medical
    :param card_hash: the credential token
    :param seq: its latest row
    """
    torn = dataclasses.replace(record, state=PurchaseState.TORN)
    row = PaymentRow(payment_of(torn, issuer), None, seq)
    decision = dataclasses.replace(refuse(Reason.PURSE_UNDECIDED), payment=row)
    pipeline.append(decision, card_hash, {})
    log.warning("event=purchase_left_torn card=%s", mask_serial(record.card_id))


class PurseDebits:
    """What debits a card's purse through a security module and recovers a purchase the card
    left torn: the transit fares here, the medical settlements (:mod:`terminal.settlement`).

    :param module: the module of MAC1 and MAC2 (a PSAM, or in development a software SAM)
    :param tear_window_s: how long a torn purchase waits for its card
    :param clock: wall-clock seconds
    """

    def __init__(
        self, module: SecurityModule, *, tear_window_s: float, clock: Callable[[], float]
    ) -> None:
        self.module = module
        self.tear_window_us = round(tear_window_s * 1_000_000)
        self.clock = clock

    def recoverable_here(self, opened: OpenPurchase, record: PurchaseRecord) -> bool:
        """Whether this terminal recovers a card's open purchase: opened within the tear
        window, by this module (any other is left to the platform).

        :param opened: the card's open purchase
        :param record: its purchase record
        :raises SscardError: the module cannot say its terminal number
        """
        fresh = self.clock() * 1_000_000 - opened.opened_us <= self.tear_window_us
        return fresh and record.terminal_number == self.module.terminal_number()


class TransitPayments(PurseDebits):
    """The transit purchase step of a pipeline (see the module docstring); the module, the
    tear window and the clock as in :class:`PurseDebits`.

    :param store: the open store (journal, open purchases, what cards paid today)
    :param module: the transit PSAM (or, in development, the software transit SAM)
    :param rules: the profile's ``[transit.purse]``
    """

    def __init__(
        self,
        store: Store,
        module: SecurityModule,
        rules: PurseRules,
        *,
        tear_window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(module, tear_window_s=tear_window_s, clock=clock)
        self.store = store
        self.rules = rules

    def __call__(
        self, pipeline: Pipeline, decision: Decision, read: ScenarioRead, card_hash: str
    ) -> Decision:
        """Take the fare of an accepted tap; the decision to journal and signal.

        :param pipeline: the pipeline (its journal rows)
        :param decision: the accepted decision, its fare in ``fare_fen``
        :param read: the tap's card (its connection)
        :param card_hash: the journal's credential token
        :raises StoreError: the journal could not be written
        """
        if not decision.detail.get("fare_fen"):  # a concession's free ride needs no purse
            return decision
        try:
            purse = TransitPurseSession(read.connection)
            issuer = purse.read_public_data().issuer_id.hex().upper()
            return self._tap(_Card(pipeline, purse, issuer, card_hash), decision)
        except (PaymentRefused, CardRemoved, Mac2Invalid) as exc:
            return pipeline.decide_error(exc)
        except ApduError as exc:  # a status word no refusal names, or no transit application
            return refuse(Reason.PURSE_REFUSED, sw=f"{exc.sw:04X}")
        except SscardError as exc:  # the PSAM failed, the card answered nonsense
            return pipeline.decide_error(exc)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock()).replace(microsecond=0)

    def _tap(self, card: _Card, decision: Decision) -> Decision:
        opened = self.store.payments.find(KIND, card.purse.card_id)
        if opened is not None:
            record = record_from_json(opened.record)
            if self.recoverable_here(opened, record):
                return self._recover(card, decision, record, opened.seq)
            self._give_up(card, record, opened.seq)
        spend = self.store.payments.day_spend(KIND, card.purse.card_id, self.clock())
        base = int(decision.detail.get("fare_fen", 0))
        fare = purse_fare(self.rules, base, spend, round(self.clock() * 1_000_000))
        decision = dataclasses.replace(decision, detail={**decision.detail, **fare.detail()})
        if fare.fen == 0:
            return decision
        purchase = Purchase(card.purse, self.module, Charge(fare.fen), self._now())
        purchase.start()
        return self._charge(card, decision, purchase)

    def _charge(self, card: _Card, decision: Decision, purchase: Purchase) -> Decision:
        """MAC1, the ``pending`` row, DEBIT, MAC2: the decision with its final row."""
        pending = purchase.authorise()
        paying = Decision(
            ACCEPT,
            Reason.PURSE_PENDING,
            {"fare_fen": pending.charge.amount},
            flags=decision.flags,
            payment=card.row(pending, None),
        )
        seq = card.pipeline.append(paying, card.card_hash, {}).seq
        try:
            purchase.send_debit()
        except PurchaseTorn:
            return card.final(refuse(Reason.PURSE_TORN, **decision.detail), purchase.record, seq)
        except SscardError as exc:  # a refusal of the DEBIT: nothing was debited (void)
            return card.final(card.pipeline.decide_error(exc), purchase.record, seq)
        try:
            done = purchase.confirm()
        except Mac2Invalid:  # the card says it debited: the platform judges its TAC
            flags = tuple(sorted({*decision.flags, UNPROVEN_FLAG}))
            return card.final(dataclasses.replace(decision, flags=flags), purchase.record, seq)
        return card.final(decision, done, seq)

    def _recover(
        self, card: _Card, decision: Decision, record: PurchaseRecord, seq: int
    ) -> Decision:
        """The card of an open purchase came back: settle it (see the module docstring)."""
        try:
            result = recover(card.purse, self.module, record, self._now())
        except NotTheSameCard:  # a card found by its serial and PSAM: cannot happen
            return refuse(Reason.PURSE_UNDECIDED)
        log.info(
            "event=purchase_recovered card=%s verdict=%s",
            mask_serial(record.card_id),
            result.verdict,
        )
        detail = {"fare_fen": record.charge.amount, "recovered": str(result.verdict)}
        if result.verdict == Verdict.UNDECIDABLE:
            return card.final(refuse(Reason.PURSE_UNDECIDED, **detail), result.record, seq)
        if result.verdict != Verdict.NOT_DEBITED:  # the card paid: the rider passes
            paid = dataclasses.replace(decision, detail={**decision.detail, **detail})
            return card.final(paid, result.record, seq)
        void = card.final(refuse(Reason.PURSE_TORN, **detail), result.record, seq)
        card.pipeline.append(void, card.card_hash, {})
        if result.retry is None:  # 9401 now: the history says it never paid; nothing to charge
            raise InsufficientBalance("insufficient balance (余额不足)")
        charged = {**decision.detail, "fare_fen": record.charge.amount}
        return self._charge(card, dataclasses.replace(decision, detail=charged), result.retry)

    @staticmethod
    def _give_up(card: _Card, record: PurchaseRecord, seq: int) -> None:
        leave_to_platform(card.pipeline, record, card.issuer, card.card_hash, seq)

    def at_start(self, pipeline: Pipeline) -> int:
        """A daemon's start: every purchase left ``pending`` (killed before its answer) becomes
        ``torn``, recovered when its card comes back.

        :returns: how many
        :raises StoreError: the journal could not be written
        """
        count = 0
        for opened in list(self.store.payments.all()):
            if opened.kind != KIND or opened.state != "pending":
                continue
            # the pending row is written before the DEBIT is sent and the next one after its
            # answer: whether the card debited is for the card to say when it comes back
            torn = dataclasses.replace(record_from_json(opened.record), state=PurchaseState.TORN)
            card_hash = str(opened.record.get("card_hash", ""))
            decision = refuse(Reason.PURSE_TORN, fare_fen=torn.charge.amount)
            row = payment_row(torn, str(opened.record["issuer"]), opened.seq, card_hash)
            pipeline.append(dataclasses.replace(decision, payment=row), card_hash, {})
            count += 1
        if count:
            log.warning("event=purchases_torn_at_start count=%d", count)
        return count


def open_fare_module(
    settings: Settings, pcsc: PcscReader | None, stack: ExitStack
) -> SecurityModule | None:
    """The security module fares are taken with: the transit PSAM in ``[payments]
    psam_reader``, else (development only) the software transit SAM of ``[payments]
    soft_sam_keys``; ``None`` when neither is set (the terminal then takes no fare).

    :param settings: the terminal settings
    :param pcsc: the PC/SC access (the PSAM's slot), ``None`` without PC/SC
    :param stack: closes the PSAM's connection
    :raises SscardError: no PSAM in the slot, a PSAM without PC/SC, the software SAM on a
        production terminal, a key file that cannot be read, no journal key (a payment row is
        encrypted with it: without one every fare would be refused at the tap)
    """
    if (settings.payments_psam_reader or settings.payments_soft_sam_keys) and (
        settings.journal_key_file is None
    ):
        raise SscardError(
            "[payments] needs [store] journal_key_file: payments are journaled encrypted with it"
        )
    if settings.payments_psam_reader:
        if pcsc is None:
            raise SscardError("[payments] psam_reader: the transit PSAM needs the pcsc back-end")
        connection = stack.enter_context(
            pcsc.wait_for_card(PSAM_WAIT_S, reader=settings.payments_psam_reader)
        )
        module = TransitPsamModule(t0_chain(connection))
        number = module.terminal_number()  # read once at start: a dead PSAM fails here
        log.info("event=fare_module kind=transit_psam terminal_number=%s", number)
        return module
    if settings.payments_soft_sam_keys:
        refuse_in_production(settings)
        log.warning("event=fare_module kind=soft_transit_sam (development only)")
        return SoftTransitSam(load_root_keys(settings.payments_soft_sam_keys), settings)
    return None


def transit_payments(
    settings: Settings, profile: Profile, store: Store, module: SecurityModule | None
) -> TransitPayments | None:
    """The purchase step of a transit profile's pipeline, ``None`` for any other profile or
    without a fare module.

    :param settings: the terminal settings (``tear_window_s``)
    :param profile: the scenario profile
    :param store: the open store
    :param module: :func:`open_fare_module`'s
    """
    if module is None or profile.transit is None:
        return None
    return TransitPayments(
        store, module, profile.transit.purse, tear_window_s=settings.tear_window_s
    )
