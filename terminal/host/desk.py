"""The desk: what the host API knows of the daemon's taps, and the actions it asks the daemon for.

When ``sscard run`` serves the host API (``[host] enabled``), the API never opens pcscd itself:
the daemon's reader threads and its one decision worker own the cards. The desk sits between::

    reader:<name> ──inserted/removed──►  Desk  ◄──GET /v1/card?wait=S──  HTTP client
    worker ──claim(reader)──► action ──► pipeline ──decided(reader, read, decision)──► Desk

* ``GET /v1/card`` is answered from the presentation decided on the reader: the one there now
  (card still on the reader), else the next one decided within ``wait``.
* A scenario action (``POST /v1/hotel/checkin``, ``POST /v1/hospital/register``,
  ``POST /v1/hospital/settle``, ``POST /v1/card/pin/verify``) is queued here; the worker claims
  it for the next card it decides on that reader, and a reader whose card was decided already
  presents it again for the action (:meth:`Desk.wanted`). So an action is one more tap through
  the daemon's pipeline, journaled like any other, and never races the reader threads for the card.

Only one action waits at a time per desk: a front desk serves one guest at a time, and a second
caller is told the desk is busy rather than given the first caller's guest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from apdu.errors import SscardError
from terminal.host.service import EventHub
from terminal.pipeline import Decision

#: what :class:`Desk` acts for: the check-in's room, the registration's or verification's PIN
CHECKIN, REGISTER, VERIFY_PIN = "hotel.checkin", "hospital.register", "pin.verify"
#: a medical settlement: the PIN and the bill (:mod:`terminal.settlement`)
SETTLE = "hospital.settle"


@dataclass
class Presentation:
    """One card decided by the daemon, as the host API shows it.

    :param number: the desk's count of presentations (1, 2, …)
    :param reader: the reader's name
    :param decision: the pipeline's decision (journaled before it is here)
    :param card: the scenario's fields of the card (base items and the profile's personal
        fields), empty when the card could not be read
    :param national: the ``iReadCardBas`` string, when the scenario read the SSN and the name
    :param present: the card is still on the reader
    :param pin: the answer to a PIN verification (no decision then)
    :param waiting: the card was not decided: the scenario waits for the desk's request (a
        hotel room, a hospital PIN)
    :param settled: the answer to a settlement (:meth:`terminal.settlement.Settled.to_json`)
    """

    number: int
    reader: str
    decision: Decision | None
    card: dict[str, Any] = field(repr=False)  # personal data: never in a log line
    national: str | None = field(default=None, repr=False)
    present: bool = True
    pin: dict[str, Any] | None = None
    waiting: bool = False
    settled: dict[str, Any] | None = None


@dataclass
class DeskAction:
    """A scenario action waiting for the daemon's next tap on a reader.

    :param kind: :data:`CHECKIN`, :data:`REGISTER`, :data:`SETTLE` or :data:`VERIFY_PIN`
    :param reader: the reader's name (or a unique part), ``None`` for any
    :param room: the hotel room (check-in)
    :param pin: the holder's PIN (registration, settlement, verification); never logged nor
        shown
    :param pay_info: the bill of a settlement (``iDoDebit``'s ``pPayInfo``)
    """

    kind: str
    reader: str | None = None
    room: str | None = None
    pin: str | None = field(default=None, repr=False)
    pay_info: str | None = None
    claimed: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: Presentation | None = None

    def matches(self, reader: str) -> bool:
        """True when ``reader`` may serve this action."""
        return self.reader is None or self.reader in reader


class DeskBusy(SscardError):
    """Another action already waits for a card at this desk."""


class Desk:
    """The daemon's taps as the host API sees them (module docstring).

    :param events: where card and decision events are published (SSE and WebSocket)
    """

    def __init__(self, events: EventHub | None = None) -> None:
        self.events = events or EventHub()
        self._cond = threading.Condition()
        self._count = 0
        self._last: dict[str, Presentation] = {}
        self._present: dict[str, bool] = {}
        self._action: DeskAction | None = None

    # -- the daemon's side: reader threads and the decision worker --------------------------

    def inserted(self, reader: str) -> None:
        """A reader thread connected to a new card."""
        with self._cond:
            self._present[reader] = True
        self.events.publish("card.inserted", reader=reader)

    def removed(self, reader: str) -> None:
        """The card left ``reader`` (or the reader went down with it)."""
        with self._cond:
            self._present[reader] = False
            last = self._last.get(reader)
            if last is not None:
                last.present = False
            self._cond.notify_all()
        self.events.publish("card.removed", reader=reader)

    def wanted(self, reader: str) -> bool:
        """True when an unclaimed action waits for the card on ``reader``: its reader thread
        presents the card again (a card decided already, still on the reader)."""
        with self._cond:
            action = self._action
            return action is not None and not action.claimed and action.matches(reader)

    def claim(self, reader: str) -> DeskAction | None:
        """The worker takes the waiting action for the card it decides on ``reader``, if any."""
        with self._cond:
            action = self._action
            if action is None or action.claimed or not action.matches(reader):
                return None
            action.claimed = True
            return action

    def decided(
        self,
        reader: str,
        decision: Decision | None,
        card: dict[str, Any],
        national: str | None,
        *,
        action: DeskAction | None,
        pin: dict[str, Any] | None = None,
        waiting: bool = False,
        settled: dict[str, Any] | None = None,
    ) -> Presentation:
        """The worker decided a card on ``reader`` (journaled already): keep it, wake the
        waiting clients, answer the action it served, publish the decision event."""
        with self._cond:
            self._count += 1
            shown = Presentation(
                self._count,
                reader,
                decision,
                card,
                national,
                pin=pin,
                waiting=waiting,
                settled=settled,
            )
            shown.present = self._present.get(reader, False)  # a scanned code is never 'on'
            self._last[reader] = shown
            if action is not None:
                action.result = shown
                action.done.set()
                if self._action is action:
                    self._action = None
            self._cond.notify_all()
        if waiting:
            self.events.publish("card.waiting", reader=reader)
        if decision is not None:
            self.events.publish(
                "decision",
                reader=reader,
                scenario_action=action.kind if action else None,
                outcome=decision.outcome,
                reason=str(decision.reason),
                seq=decision.seq,
                prompt_zh=decision.indication().prompt_zh,
                prompt_en=decision.indication().prompt_en,
            )
        return shown

    # -- the API's side ---------------------------------------------------------------------

    def current(self, reader: str | None, wait_s: float) -> Presentation | None:
        """The presentation on ``reader`` now, else the next decided within ``wait_s``.

        :param reader: a reader's name or a unique part, ``None`` for any
        :returns: the presentation, or ``None`` when no card came in time
        """
        deadline = time.monotonic() + wait_s
        with self._cond:
            seen = self._count
            while True:
                for name, shown in self._last.items():
                    fits = reader is None or reader in name
                    if fits and (shown.present or shown.number > seen):
                        return shown
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def act(self, action: DeskAction, wait_s: float) -> Presentation | None:
        """Queue ``action`` for the daemon's next tap and wait up to ``wait_s`` for it.

        :returns: the presentation that served it, or ``None`` (no card in time: withdrawn)
        :raises DeskBusy: another action waits already
        """
        with self._cond:
            if self._action is not None:
                raise DeskBusy("another request already waits for a card at this desk")
            self._action = action
        action.done.wait(wait_s)
        with self._cond:
            if self._action is action and not action.claimed:
                self._action = None  # withdrawn: a later card is decided without it
        if action.claimed:
            action.done.wait()  # the worker always answers a job it took
        return action.result
