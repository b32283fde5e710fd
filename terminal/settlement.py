"""A medical settlement from the card's personal account (DF04, CLA ``B0``; issue 15,
docs/payments.md §2): what ``iDoDebit`` does, journaled like a fare.

:meth:`MedicalSettlement.settle` takes the card in the field, the holder's PIN and the bill
(``iDoDebit``'s ``pPayInfo``: ``本次消费总金额|个人账户+统筹|YYYYMMDDHHMMSS|``): EF05 and the
PIN first (the personal account is PIN-protected), then INITIALIZE ``B0 28``, MAC1 from the
SSC PSAM, the ``purse_pending`` row (synced before the DEBIT), DEBIT ``B0 2C``, MAC2: the
settlement row ``ok`` with the ``medical`` payment object (``amount_fen`` the personal
account's part, ``self_pay_fen``, ``pooled_fen``), and the ``iDoDebit`` output string. The card
writes the record into DF04 EF08. A refusal is journaled with its reason
(``purse_insufficient`` …) and the payment ``void``; the card leaving during the DEBIT,
``purse_torn`` with the payment ``torn``.

The desk then settles again with the card back: a purchase of this card still open here
(within ``tear_window_s``, by this PSAM) is recovered first (:func:`apdu.purchase.recover`,
GET TRANSACTION PROOF ``B0 2E``). The same bill that the card did debit is answered from the
recovered TAC **without a second debit**; the same bill it did not debit is charged once
(the recovery's INITIALIZE goes on); another bill settles the old purchase's row and is
charged afresh. A card that cannot tell leaves the row ``torn`` (``purse_undecided``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apdu.errors import SscardError
from apdu.medical_payment import MedicalAccountSession, PayInfo, idodebit_output
from apdu.payment import PurchaseTorn
from apdu.purchase import Purchase, PurchaseRecord, PurchaseState, Verdict, recover
from apdu.sam import Mac2Invalid, SecurityModule
from apdu.ssc import SscSession
from apdu.transport import Connection
from offline_store import canonical_card_id
from terminal.outcomes import classify
from terminal.payments import (
    UNPROVEN_FLAG,
    PurseDebits,
    leave_to_platform,
    payment_row,
    record_from_json,
)
from terminal.pipeline import ACCEPT, Decision, Pipeline, refuse
from terminal.reasons import Reason

__all__ = ["MedicalSettlement", "Settled"]

log = logging.getLogger(__name__)

DES = 0x01  # FCI 9F0C/86 algorithm byte of DES (spec §1)


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settlement answers the hospital system.

    :param decision: the journaled decision (its ``seq``)
    :param code: 0, or the national code of what failed
    :param result: the ``iDoDebit`` output string, empty unless the card debited
    """

    decision: Decision
    code: int
    result: str

    def to_json(self) -> dict[str, Any]:
        """The API's answer: ``code``, ``result`` and the decision."""
        return {"code": self.code, "result": self.result, "decision": self.decision.to_json()}


class MedicalSettlement(PurseDebits):
    """Settle bills on the hospital profile's pipeline with the SSC PSAM.

    :param pipeline: the hospital profile's pipeline (its journal, its indicators)
    :param module: the SSC PSAM (MAC1, MAC2 of the personal account)
    :param tear_window_s: how long a torn settlement waits for its card
    :param clock: wall-clock seconds
    """

    def __init__(
        self,
        pipeline: Pipeline,
        module: SecurityModule,
        *,
        tear_window_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(module, tear_window_s=tear_window_s, clock=clock)
        self.pipeline = pipeline

    def settle(self, connection: Connection, pin: str, pay_info: str) -> Settled:
        """One settlement on the card in the field (see the module docstring).

        :param connection: the card, with the T=0 chain
        :param pin: the holder's PIN (to the card only; never logged)
        :param pay_info: ``iDoDebit``'s ``pPayInfo``
        :raises StoreError: the journal could not be written
        """
        card_hash = ""
        try:
            info = PayInfo.parse(pay_info)
            session = SscSession(connection)
            issuer = session.read_issuer()
            if issuer.card_number:
                card_hash = self.pipeline.store.card_hash(
                    canonical_card_id(issuer.region_code, issuer.card_number)
                )
            session.verify_pin(pin)
            account = MedicalAccountSession(connection, issuer.card_id)
            algorithm = session.algorithm_id or DES  # no 9F0C/86 in the FCI: a DES card
            resumed = self._resume(account, info, card_hash, algorithm)
            if isinstance(resumed, Settled):
                return resumed
            purchase = resumed or Purchase(account, self.module, info.charge, info.when)
            if purchase.state == PurchaseState.NEW:
                purchase.start()
        except SscardError as exc:
            return self._failed(self.pipeline.decide_error(exc), exc, card_hash)
        detail = {"amount_fen": info.charge.amount, "total_fen": info.charge.total}
        pending = purchase.authorise()
        paying = Decision(
            ACCEPT,
            Reason.PURSE_PENDING,
            detail,
            payment=payment_row(pending, None, None, card_hash),
        )
        seq = self.pipeline.append(paying, card_hash, {}).seq
        try:
            purchase.send_debit()
        except PurchaseTorn as exc:
            torn = refuse(Reason.PURSE_TORN, **detail)
            return self._failed(self._with(torn, purchase.record, seq, card_hash), exc, card_hash)
        except SscardError as exc:
            void = self.pipeline.decide_error(exc)
            return self._failed(self._with(void, purchase.record, seq, card_hash), exc, card_hash)
        ok = Decision(ACCEPT, Reason.OK, detail)
        try:
            record = purchase.confirm()
        except Mac2Invalid:  # the card debited; the platform judges its TAC
            record = purchase.record
            ok = dataclasses.replace(ok, flags=(UNPROVEN_FLAG,))
        done = self.pipeline.record(self._with(ok, record, seq, card_hash), None, card_hash)
        return Settled(done, 0, idodebit_output(record, algorithm))

    def _resume(
        self, account: MedicalAccountSession, info: PayInfo, card_hash: str, algorithm: int
    ) -> Settled | Purchase | None:
        """Settle the card's open purchase first (see the module docstring): the answer when
        it was this bill and the card debited it, the purchase that charges this bill once,
        or ``None`` to charge it afresh."""
        opened = self.pipeline.store.payments.find("medical", account.card_id)
        if opened is None:
            return None
        record = record_from_json(opened.record)
        if not self.recoverable_here(opened, record):
            leave_to_platform(self.pipeline, record, None, card_hash, opened.seq)
            return None
        result = recover(account, self.module, record, info.when)
        same = record.charge == info.charge
        detail = {"amount_fen": record.charge.amount, "recovered": str(result.verdict)}
        if result.verdict == Verdict.UNDECIDABLE:
            undecided = refuse(Reason.PURSE_UNDECIDED, **detail)
            settled = self._with(undecided, result.record, opened.seq, card_hash)
            return self._failed(settled, PurchaseTorn("the card cannot tell"), card_hash)
        if result.verdict != Verdict.NOT_DEBITED:
            paid = self._with(Decision(ACCEPT, Reason.OK, detail), result.record, opened.seq)
            if not same:  # another bill: the old one is settled, this one is charged
                self.pipeline.append(paid, card_hash, {})
                return None
            done = self.pipeline.record(paid, None, card_hash)
            tac_known = result.record.tac is not None
            return Settled(done, 0, idodebit_output(result.record, algorithm) if tac_known else "")
        void = self._with(refuse(Reason.PURSE_TORN, **detail), result.record, opened.seq)
        self.pipeline.append(void, card_hash, {})
        return result.retry if same else None

    @staticmethod
    def _with(
        decision: Decision, record: PurchaseRecord, seq: int, card_hash: str = ""
    ) -> Decision:
        return dataclasses.replace(decision, payment=payment_row(record, None, seq, card_hash))

    def _failed(self, decision: Decision, exc: SscardError, card_hash: str) -> Settled:
        done = self.pipeline.record(decision, None, card_hash)
        log.info("event=settlement_refused reason=%s", decision.reason)
        return Settled(done, classify(exc).code, "")
