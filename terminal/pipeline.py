"""The validation pipeline: one tap in, one explained decision out, journaled before it is shown.

The checks run in a fixed order, each with a stable reason code (:mod:`terminal.reasons`):

1. card not genuine (no security module where the profile requires one, or INTERNAL
   AUTHENTICATE failed);
2. expired, after the profile's grace days;
3. deny listed, with the list's reason (lost 挂失, cancelled 注销, replaced 补换, fraud); when
   the deny list is stale or missing, the profile's degraded policy: accept and flag, ask the
   platform about this card, or refuse (:mod:`terminal.list_policy`);
4. application locked (``9303``), card blocked (``6A81``);
5. the desk's request: a hotel room number, a service the service hall offers
   (:meth:`ScenarioRules.check_request`), refused before any personal data is read;
6. PIN wrong or blocked, where the profile or the service-hall's service needs the PIN;
7. card category not allowed;
8. issuing region not served — only where the profile restricts regions, and the refusal names
   the rule it rests on; by default cards of every region are accepted alike;
9. the scenario's item is not offered here: the application catalogue (应用目录) for the
   *terminal's* region (``[sync] region``), never the card's; a stale or missing catalogue
   follows the degraded policy too;

then the scenario's own rules (:mod:`terminal.scenario_rules`: transit fare and concessions,
gate capacity, anti-passback and concessions, the hotel's and the hospital's records, the
service hall's identity for the clerk, the meal point's subsidy category and daily limit). A
national e-card code the platform cannot decode now is deferred on the checks that need no card
(:meth:`Pipeline.decide_deferred`) and its decision completed when the platform confirms it
(:meth:`Pipeline.complete_deferred`). A card that answers with a lock or a wrong PIN cannot be
read further, so those arrive as errors of the read and are decided before the checks on its
data.

Every decision is appended to the journal (durably, fsync) before any indicator fires, with
its flags (``stale_list:deny_list`` …) and, for an accept, the day counters it raises (a gate's
entries, a holder's meals). Personal fields are journaled (encrypted) only for accepted
decisions, and only the profile's fields; every read of them leaves an access-audit row with
the field names (and the SSN where it was read only to derive a birth date the card leaves
``FF``) and the purpose (the service-hall's service). docs/policy.md explains each policy with
its article.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

from apdu.errors import SscardError
from apdu.identity import mask_card_number
from drivers.indicators import Hotline, Indicator, IndicatorError
from offline_store import JournalEntry, JournalRow, ListName, ListState, Store
from terminal.card_read import CardFacts, CredentialRead, ScenarioRead
from terminal.decision import ACCEPT, ATTENTION, DEFERRED, Decision, reason_outcome, refuse
from terminal.list_policy import (
    ONLINE,
    REFUSE,
    ListWatch,
    PlatformLink,
    online_flag,
    stale_flag,
    startup_warnings,
)
from terminal.outcomes import outcome
from terminal.profiles import Profile, Scenario
from terminal.reasons import DEFAULT_HOTLINES, DENY_REASONS, Reason
from terminal.scenario_rules import Ruling, ScenarioRules, load_card_hashes
from terminal.scenario_tables import region_matches

__all__ = [
    "ACCEPT",
    "ATTENTION",
    "DEFERRED",
    "Decision",
    "Pipeline",
    "load_card_hashes",
    "refuse",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Tap:
    """What one tap's checks share: the clock, the lists' states, the flags gathered."""

    now: dt.datetime
    lists: dict[ListName, ListState]
    flags: set[str] = field(default_factory=set)

    def finish(self, decision: Decision) -> Decision:
        return replace(decision, flags=tuple(sorted(self.flags)))


def _journal_outcome(decision: Decision) -> str:
    """The journal's outcome: accepted, deferred (checked at the next sync), or refused —
    "try again" included."""
    if decision.reason == Reason.QR_DEFERRED:
        return DEFERRED
    return ACCEPT if decision.accepted else REFUSE


class Pipeline:
    """Decide taps for one scenario profile, journal them, signal them.

    :param profile: the scenario profile
    :param store: the offline store (deny list, catalogue, journal, replay cache, audit)
    :param terminal_id: this terminal's id, journaled with every row
    :param indicator: where decisions are signalled, or ``None``
    :param clock: wall-clock seconds (tests freeze it)
    :param profile_dir: the folder relative list files in the profile are taken from
    :param region: the terminal's six-digit region code (``[sync] region``): the catalogue
        item must be offered there; ``None`` takes the catalogue the terminal holds as its own
        (the platform serves each terminal the items of its registered region)
    :param online: the platform, asked during a tap when a list is stale and the profile says
        ``online``; ``None``: no platform configured (the profile's fallback applies)
    :param hotlines: the service point's complaint hotlines, announced with every refusal
        (Guangdong draft §21, Guangzhou §29, Jiangxi §5)
    :param purse: takes an accepted tap's fare, answers the decision (:mod:`terminal.payments`)
    :raises SscardError: a list file named by the profile cannot be read; no hotline; a region
        that is not six digits
    """

    def __init__(
        self,
        profile: Profile,
        store: Store,
        *,
        terminal_id: str,
        indicator: Indicator | None = None,
        clock: Callable[[], float] = time.time,
        profile_dir: Path | None = None,
        region: str | None = None,
        online: PlatformLink | None = None,
        hotlines: Sequence[Hotline] = DEFAULT_HOTLINES,
        purse: Callable[[Pipeline, Decision, ScenarioRead, str], Decision] | None = None,
    ) -> None:
        self.purse = purse
        if region is not None and not re.fullmatch(r"[0-9]{6}", region):
            raise SscardError(f"the terminal's region must be 6 digits, not {region!r}")
        if not hotlines:
            raise SscardError("a service point announces at least one complaint hotline")
        self.hotlines = tuple(hotlines)
        self.profile = profile
        self.store = store
        self.terminal_id = terminal_id
        self.indicator = indicator
        self.clock = clock
        self.region = region
        self.online = online
        self.watch = ListWatch(profile.name)
        self.rules = ScenarioRules(profile, store, profile_dir)
        #: what the operator must hear at start (lists never provisioned, …), also logged
        self.warnings = startup_warnings(
            store, profile, self._now(), region=region, online=online is not None
        )

    # -- the decision ----------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock()).astimezone()

    def decide_error(self, error: SscardError) -> Decision:
        """Decide a tap whose card read (or code) failed: the refusal the outcome table
        (:data:`terminal.outcomes.OUTCOMES`) gives the error.

        :param error: what the read raised
        """
        row = outcome(error)
        return refuse(row.reason_of(error), **row.detail(error))

    def read_failed(self, error: SscardError) -> Decision:
        """:meth:`decide_error` for a read of the credential that failed, said in the log: the
        error's class and status word, never its message (which may quote card data)."""
        sw = getattr(error, "sw", None)
        log.info("event=read_failed error=%s sw=%s", type(error).__name__,
                 f"{sw:04X}" if isinstance(sw, int) else "-")  # fmt: skip
        return self.decide_error(error)

    def _begin(self) -> _Tap:
        now = self._now()
        return _Tap(now, self.watch.states(self.store, self.profile, now))

    def _check_card(self, facts: CardFacts, card_hash: str, tap: _Tap) -> Decision | None:
        """Checks 1–3 on the card itself: genuine, expired, deny listed."""
        profile = self.profile
        today = tap.now.date()
        if profile.require_genuine and not facts.genuine:
            return refuse(Reason.NO_SECURITY_MODULE)
        grace = dt.timedelta(days=profile.expiry_grace_days)
        if facts.expiry_date is not None and today > facts.expiry_date + grace:
            return refuse(Reason.EXPIRED, expiry_date=facts.expiry_date.isoformat())
        entry = self.store.deny.lookup(card_hash, today)
        if entry is not None:  # a card the list names is refused, however old the list
            return refuse(
                DENY_REASONS[str(entry.reason)],
                deny_reason=str(entry.reason),
                effective=entry.effective.isoformat(),
                list_version=entry.version,
            )
        state = tap.lists[ListName.DENY_LIST]
        if state is ListState.FRESH:
            return None
        policy = profile.degraded.deny_list
        if policy == ONLINE:
            status = self.online.card_status(card_hash) if self.online is not None else None
            if status is not None:
                tap.flags.add(online_flag(ListName.DENY_LIST))
                if status.refuses_on(today) and status.reason in DENY_REASONS:
                    return refuse(
                        DENY_REASONS[status.reason],
                        deny_reason=status.reason,
                        effective=status.effective.isoformat() if status.effective else None,
                        list_version=status.version,
                        source="platform",
                    )
                return None
            policy = profile.degraded.online_fallback
        return self._degraded(ListName.DENY_LIST, state, policy, tap)

    @staticmethod
    def _degraded(name: ListName, state: ListState, policy: str, tap: _Tap) -> Decision | None:
        """A stale or missing list under ``accept`` (flag) or ``refuse``."""
        if policy == REFUSE:
            return refuse(Reason.LIST_STALE, list=str(name), state=str(state))
        tap.flags.add(stale_flag(name))
        return None

    def _check_service(self, facts: CardFacts, tap: _Tap) -> Decision | None:
        """Checks 7–9 on the service: category, issuing region (only where a rule restricts
        it), the catalogue item offered at this terminal's region."""
        return self._check_card_kind(facts) or self._check_catalogue(tap)

    def _check_card_kind(self, facts: CardFacts) -> Decision | None:
        """Checks 6–7: the card category, the issuing region (only where a rule restricts
        it)."""
        profile = self.profile
        if facts.category not in profile.allowed_categories:
            return refuse(Reason.CATEGORY_NOT_ALLOWED, category=facts.category)
        regions = profile.regions
        if regions is not None and not region_matches(facts.region_code, regions.accept):
            return refuse(
                Reason.REGION_NOT_ACCEPTED, region_code=facts.region_code, rule=regions.rule
            )
        return None

    def _check_catalogue(self, tap: _Tap) -> Decision | None:
        """Check 8: the catalogue item offered at this terminal's region (a stale or missing
        catalogue under its degraded policy)."""
        profile = self.profile
        state = tap.lists[ListName.CATALOGUE]
        if state is not ListState.FRESH:
            policy = profile.degraded.catalogue
            if policy == ONLINE:
                if self.online is not None and self.online.refresh_catalogue():
                    tap.flags.add(online_flag(ListName.CATALOGUE))
                    state = ListState.FRESH
                else:
                    policy = profile.degraded.online_fallback
            if state is not ListState.FRESH:
                refused = self._degraded(ListName.CATALOGUE, state, policy, tap)
                if refused is not None or state is ListState.MISSING:
                    return refused  # no catalogue at all: the profile's item is taken as offered
        offered = self.store.catalogue.offered(
            profile.catalogue_item, str(profile.scenario), self.region, tap.now.date()
        )
        if offered is None:
            return refuse(
                Reason.NOT_IN_CATALOGUE,
                catalogue_item=profile.catalogue_item,
                terminal_region=self.region,
            )
        return None

    def decide(
        self,
        facts: CardFacts,
        card_hash: str,
        *,
        room: str | None = None,
        service: str | None = None,
        flags: tuple[str, ...] = (),
    ) -> Decision:
        """Every check and the scenario's rules on facts already read (no PIN step).

        :param facts: what the card gave, personal fields included
        :param card_hash: the keyed hash of the card's canonical identifier
        :param room: the hotel room number from the desk
        :param service: the service a service-hall clerk named (the hall's first for ``None``)
        :param flags: flags the caller's own steps raised (``stale_list:trust_list``)
        """
        tap = self._begin()
        tap.flags.update(flags)
        return tap.finish(
            self._check_card(facts, card_hash, tap)
            or _decision(self.rules.check_request(room, service))
            or self._check_service(facts, tap)
            or self._scenario_rules(facts, card_hash, tap.now, room, service)
        )

    def decide_deferred(self) -> Decision:
        """Decide a national e-card code the platform cannot decode now, for a profile that
        defers (docs/qr-format.md §14.3): what can be checked without the card — the catalogue
        item offered here, and a gate's daily capacity — now (an accepted deferral raises the
        gate's entries like any entry, :meth:`record`); the card itself (deny list, expiry,
        category) when the platform confirms the code at the next sync.

        :returns: ``qr_deferred`` (accepted), or the refusal; not yet journaled
        :raises StoreError: the store failed
        """
        tap = self._begin()
        refused = self._check_catalogue(tap) or _decision(self.rules.check_without_card(tap.now))
        return tap.finish(
            refused or Decision(ACCEPT, Reason.QR_DEFERRED, {"credential": "national"})
        )

    def complete_deferred(self, facts: CardFacts, card_hash: str, scanned_at: float) -> Decision:
        """Finish, once the platform confirmed it, the decision on a deferred national code
        (:mod:`terminal.ecard_confirm`): what the deferral could not check without the card —
        its category, a region restriction — and on a bus the fare its data gives, concessions
        included, as on the day it was scanned. The platform checked the code, the card's
        expiry and the deny list for that day; nothing here is journaled or counted again.

        :param facts: what the platform's verdict gave (region, category, end of validity)
        :param card_hash: the card's keyed hash (the disabled-holder list is keyed by it)
        :param scanned_at: the deferred row's wall time
        :raises: nothing
        """
        refused = self._check_card_kind(facts)
        if refused is not None:
            return refused
        if self.profile.scenario == Scenario.TRANSIT:  # the fare: no counter, no side effect
            scanned = dt.datetime.fromtimestamp(scanned_at).astimezone()
            return _decision(self.rules.decide(facts, card_hash, scanned))
        return Decision(ACCEPT, Reason.OK, {})

    def _scenario_rules(
        self,
        facts: CardFacts,
        card_hash: str,
        now: dt.datetime,
        room: str | None,
        service: str | None,
    ) -> Decision:
        return _decision(self.rules.decide(facts, card_hash, now, room=room, service=service))

    # -- journal and signal ----------------------------------------------------------------

    def record(
        self,
        decision: Decision,
        facts: CardFacts | None,
        card_hash: str,
        *,
        service: str | None = None,
    ) -> Decision:
        """Journal a decision (durably), audit personal data, then signal it.

        An accepted decision raises its day counters in the journal row's transaction (a gate's
        entries, a holder's meals). Without facts and with an empty ``card_hash`` this
        journals a decision no card was read for (docs/integrators.md).

        :param decision: the decision
        :param facts: what was read, if the read got that far; ``None`` for none
        :param card_hash: the credential token (empty when no credential was read)
        :param service: the service a service-hall clerk named, for the access audit
        :returns: the decision with its journal sequence
        :raises StoreError: the journal could not be written (nothing is signalled then: see
            :meth:`signal_unjournaled`)
        """
        personal = dict(facts.personal) if facts is not None and decision.accepted else {}
        if facts is not None and facts.personal:
            self.store.audit.record(
                who=f"scenario:{self.profile.name}",
                terminal_id=self.terminal_id,
                scenario=self.profile.name,
                fields=sorted({*facts.personal, *facts.derived_from}),
                purpose=self.rules.audit_purpose(service),
            )
        row = self.append(decision, card_hash, personal)
        done = replace(decision, seq=row.seq, hotlines=self.hotlines)
        masked = mask_card_number(facts.card_number) if facts and facts.card_number else "-"
        log.info(
            "event=tap scenario=%s outcome=%s reason=%s seq=%d card=%s flags=%s",
            self.profile.name,
            done.outcome,
            done.reason,
            row.seq,
            masked,
            ",".join(done.flags) or "-",
        )
        self._signal(done)
        return done

    def append(self, decision: Decision, card_hash: str, personal: dict[str, str]) -> JournalRow:
        """Journal a decision durably, unsignalled (a purchase's ``pending`` row too)."""
        paid = decision.payment
        return self.store.journal.append(
            JournalEntry(
                scenario=self.profile.name,
                catalogue_item=self.profile.catalogue_item,
                credential_token=card_hash,
                outcome=_journal_outcome(decision),
                reason_code=str(decision.reason),
                amount=_amount(decision),
                personal=personal,
                terminal_id=self.terminal_id,
                flags=decision.flags,
                ref_seq=paid.ref_seq if paid else None,
                payment=paid.payment if paid else None,
            ),
            counts=self.rules.counts(decision.accepted, card_hash),
            recovery=paid.recovery if paid else None,
        )

    def signal_unjournaled(self) -> None:
        """Show the holder ``journal_unavailable``: a refusal that is never journaled, for a
        presentation the store failed during (a disk full under the journal, a damaged file).
        The daemon's worker calls it on a ``StoreError``: the gate stays shut, no money
        is taken, and the holder hears why instead of silence.

        :raises: nothing
        """
        self._signal(replace(refuse(Reason.JOURNAL_UNAVAILABLE), hotlines=self.hotlines))

    def _signal(self, decision: Decision) -> None:
        if self.indicator is None:
            return
        open_gate = decision.accepted and self.profile.scenario in (Scenario.TRANSIT, Scenario.GATE)
        try:
            self.indicator.indicate(decision.indication(open_gate=open_gate))
        except IndicatorError as exc:
            # the decision stands and is journaled; a dead buzzer must not undo it
            log.warning("event=indicator_failed reason=%s error=%s", decision.reason, exc)

    def process(
        self,
        read: CredentialRead,
        *,
        pin: str | None = None,
        room: str | None = None,
        service: str | None = None,
        flags: tuple[str, ...] = (),
        settle: Callable[[Decision], Decision] | None = None,
    ) -> Decision:
        """One whole tap, a card or an e-card code alike: read and decide in the order of the
        module docstring (the read's base facts, the checks on the card, the PIN, the checks
        on the service, the personal fields, the scenario's rules), journal, signal.

        :param read: the credential side of the tap
        :param pin: the holder's PIN, for profiles with ``pin = true`` and services that need it
        :param room: the hotel room number
        :param service: the service a service-hall clerk named (the hall's first for ``None``)
        :param flags: flags the caller's own steps raised (``stale_list:trust_list``)
        :param settle: the caller's last word before the journal (an e-card code's replay
            cache and credential detail)
        """
        decision, facts, card_hash = self._read_and_decide(read, pin, room, service, flags)
        if settle is not None:
            decision = settle(decision)
        return self.record(decision, facts, card_hash, service=service)

    def _read_and_decide(
        self,
        read: CredentialRead,
        pin: str | None,
        room: str | None,
        service: str | None,
        flags: tuple[str, ...],
    ) -> tuple[Decision, CardFacts | None, str]:
        """:meth:`process` up to the journal: the decision, the facts read (``None`` when the
        base read failed) and the credential's keyed hash (empty when it has none)."""
        try:
            facts = read.base()
        except SscardError as exc:
            return self.read_failed(exc), None, ""
        try:
            card_hash = self.store.card_hash(read.credential_id(facts))
        except SscardError as exc:
            return self.read_failed(exc), facts, ""
        tap = self._begin()
        tap.flags.update(flags)
        decision = self._check_card(facts, card_hash, tap) or _decision(
            self.rules.check_request(room, service)
        )
        if decision is None and self.rules.needs_pin(service):
            try:
                read.verify_pin(pin)
            except SscardError as exc:
                decision = self.decide_error(exc)
        decision = decision or self._check_service(facts, tap)
        if decision is None:
            try:
                facts = read.personal(facts)
            except SscardError as exc:
                return tap.finish(self.read_failed(exc)), facts, card_hash
            decision = self._scenario_rules(facts, card_hash, tap.now, room, service)
        decision = tap.finish(decision)
        # the fare, journaled step by step; an e-card code has no purse to take it from
        if decision.accepted and self.purse is not None and isinstance(read, ScenarioRead):
            decision = self.purse(self, decision, read, card_hash)
        return decision, facts, card_hash

    def record_without_card(
        self, reason: Reason, *, flags: tuple[str, ...] = (), **detail: Any
    ) -> Decision:
        """Journal and signal a decision no card or code was read for: an integrator's test of
        the journal, the upload or the indicators (docs/integrators.md). The row has no
        credential token and no personal field; an accept still raises the scenario's day
        counters that need no card (a gate's entries).

        :param reason: the decision's reason (``Reason.OK`` for an accept)
        :param flags: the journal flags to record with it
        :param detail: the decision's detail (never personal data)
        :raises StoreError: the journal could not be written
        :raises JournalError: a malformed flag
        """
        return self.record(replace(refuse(reason, **detail), flags=tuple(sorted(flags))), None, "")


#: where a decision's amount in fen is, by scenario: the fare, the ticket
AMOUNT_KEYS = ("fare_fen", "ticket_fen")


def _amount(decision: Decision) -> int | None:
    """The amount journaled with an accepted decision: its fare or ticket, if any."""
    if not decision.accepted:
        return None
    return next((decision.detail[k] for k in AMOUNT_KEYS if k in decision.detail), None)


@overload
def _decision(ruling: Ruling) -> Decision: ...
@overload
def _decision(ruling: None) -> None: ...
@overload
def _decision(ruling: Ruling | None) -> Decision | None: ...
def _decision(ruling: Ruling | None) -> Decision | None:
    """A scenario rule's ruling as a decision (its outcome from the reason's signal)."""
    if ruling is None:
        return None
    return Decision(reason_outcome(ruling.reason), ruling.reason, ruling.detail, ruling.record)
