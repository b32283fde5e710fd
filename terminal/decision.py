"""A tap's decision: what the holder, the host and the journal see of it (:class:`Decision`),
and the outcome a reason code gives (:func:`refuse`).

The pipeline (:mod:`terminal.pipeline`) makes decisions; the CLI, the daemon, the host API and
the payment steps read them. Kept apart so that those readers need not import the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.indicators import Hotline, Indication, Signal
from offline_store.payment import PaymentRow
from terminal.list_policy import REFUSE
from terminal.reasons import DEFAULT_HOTLINES, TEXTS, Reason, indication

ACCEPT, ATTENTION, DEFERRED = "accept", "attention", "deferred"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one tap, as the holder, the host and the journal see it.

    :param outcome: ``accept``, ``refuse`` or ``attention`` (try again)
    :param reason: the stable reason code
    :param detail: facts behind the decision (fare, concession, deny reason, tries left, …);
        never personal data
    :param record: the output the scenario exists to produce (a lodging or hospital
        registration: personal data), ``None`` elsewhere
    :param seq: the journal sequence of the decision
    :param hotlines: the service point's complaint hotlines, announced with a refusal (the
        pipeline sets its deployment's)
    :param flags: the circumstances journaled with it (``stale_list:deny_list``: decided while
        the deny list was stale or missing; ``online:deny_list``: the platform answered)
    :param payment: what a purchase adds to its journal row; never shown (it names the card)
    """

    outcome: str
    reason: Reason
    detail: dict[str, Any] = field(default_factory=dict)
    record: dict[str, str] | None = None
    seq: int | None = None
    hotlines: tuple[Hotline, ...] = DEFAULT_HOTLINES
    flags: tuple[str, ...] = ()
    payment: PaymentRow | None = None

    @property
    def accepted(self) -> bool:
        """True for an accepted tap."""
        return self.outcome == ACCEPT

    def to_json(self) -> dict[str, Any]:
        """The decision as a JSON object: prompts, advice, and on a refusal the hotlines (as
        one line under ``hotline`` and one object per line under ``hotlines``)."""
        shown = self.indication()
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "reason": str(self.reason),
            "prompt_zh": shown.prompt_zh,
            "prompt_en": shown.prompt_en,
            "advice_zh": shown.advice_zh or None,
            "advice_en": shown.advice_en or None,
            "hotline": shown.hotline,
            "hotlines": [
                {"number": h.number, "purpose_zh": h.purpose_zh, "purpose_en": h.purpose_en}
                for h in shown.hotlines
            ],
            "detail": self.detail,
            "flags": list(self.flags),
            "seq": self.seq,
        }
        if self.record is not None:
            out["record"] = self.record
        return out

    def indication(self, *, open_gate: bool = False) -> Indication:
        """What the indicators show: the hotlines on a refusal, and the rule a refusal rests on
        (a region restriction) in its advice.

        :param open_gate: open the gate
        :raises ValueError: ``open_gate`` for a decision that is not an accept
        """
        rule = self.detail.get("rule")
        return indication(
            self.reason,
            hotlines=self.hotlines,
            open_gate=open_gate,
            rule=str(rule) if rule else None,
        )


def reason_outcome(reason: Reason) -> str:
    """The outcome a reason code gives: its signal's (accept, refuse, or "try again")."""
    signal = TEXTS[reason].signal
    return {Signal.ACCEPT: ACCEPT, Signal.REFUSE: REFUSE}.get(signal, ATTENTION)


def refuse(reason: Reason, **detail: Any) -> Decision:
    """A decision for a reason, its outcome from the reason's signal (an accept for
    ``Reason.OK``, "try again" for a wrong PIN, a refusal for the rest).

    :param reason: the reason code
    :param detail: the facts behind it (never personal data)
    """
    return Decision(reason_outcome(reason), reason, detail)
