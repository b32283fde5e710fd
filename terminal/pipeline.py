"""The validation pipeline: one tap in, one explained decision out, journaled before it is shown.

The checks run in a fixed order, each with a stable reason code (:mod:`terminal.reasons`):

1. card not genuine (no security module where the profile requires one, or INTERNAL
   AUTHENTICATE failed);
2. expired, after the profile's grace days;
3. deny listed, with the list's reason (lost 挂失, cancelled 注销, replaced 补换, fraud);
4. application locked (``9303``), card blocked (``6A81``);
5. PIN wrong or blocked, where the scenario needs the PIN;
6. card category not allowed;
7. the scenario's item is not in the application catalogue (应用目录) for the card's region;
8. the deny list or the catalogue is older than the profile's staleness limit;

then the scenario's own rules (transit fare and concessions, gate anti-passback and capacity,
hotel room number). A card that answers with a lock or a wrong PIN cannot be read further, so
those arrive as errors of the read and are decided before the checks on its data.

Every decision is appended to the journal (durably, fsync) before any indicator fires.
Personal fields are journaled (encrypted) only for accepted decisions, and only the profile's
fields; every read of them leaves an access-audit row with the field names.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apdu.errors import (
    ApplicationLocked,
    CardBlocked,
    CardNotGenuine,
    CardRemoved,
    PinBlocked,
    ReaderTimeout,
    SscardError,
    WrongPin,
)
from apdu.identity import mask_card_number
from apdu.pin import PinFormatError
from apdu.sam import NoSecurityModule, SecurityModuleError
from drivers.indicators import Hotline, Indicator, IndicatorError, Signal
from offline_store import JournalEntry, Store, canonical_card_id
from sync.client import META_DENY_CURRENT_AT
from terminal.card_read import CardFacts, ScenarioRead
from terminal.profiles import Profile, Scenario
from terminal.reasons import DEFAULT_HOTLINES, DENY_REASONS, TEXTS, Reason, indication

log = logging.getLogger(__name__)

ACCEPT, REFUSE, ATTENTION, DEFERRED = "accept", "refuse", "attention", "deferred"
SECONDS_PER_HOUR = 3600


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
    """

    outcome: str
    reason: Reason
    detail: dict[str, Any] = field(default_factory=dict)
    record: dict[str, str] | None = None
    seq: int | None = None
    hotlines: tuple[Hotline, ...] = DEFAULT_HOTLINES

    @property
    def accepted(self) -> bool:
        """True for an accepted tap."""
        return self.outcome == ACCEPT

    def to_json(self) -> dict[str, Any]:
        """The decision as a JSON object: prompts, advice, and on a refusal the hotlines (as
        one line under ``hotline`` and one object per line under ``hotlines``)."""
        shown = indication(self.reason, hotlines=self.hotlines)
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
            "seq": self.seq,
        }
        if self.record is not None:
            out["record"] = self.record
        return out


def _outcome(reason: Reason) -> str:
    signal = TEXTS[reason].signal
    return {Signal.ACCEPT: ACCEPT, Signal.REFUSE: REFUSE}.get(signal, ATTENTION)


def refuse(reason: Reason, **detail: Any) -> Decision:
    return Decision(_outcome(reason), reason, detail)


def _journal_outcome(decision: Decision) -> str:
    """The journal's outcome: accepted, deferred (checked at the next sync), or refused —
    "try again" included."""
    if decision.reason == Reason.QR_DEFERRED:
        return DEFERRED
    return ACCEPT if decision.accepted else REFUSE


def load_card_hashes(path: str | Path) -> frozenset[str]:
    """Read a list of card hashes (one 64-hex hash per line, ``#`` comments).

    :param path: the file
    :raises SscardError: unreadable, or a line that is not a hash (named by number)
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SscardError(f"cannot read card-hash list {path}: {exc.strerror}") from exc
    hashes = set()
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if not re.fullmatch(r"[0-9a-f]{64}", line):
            raise SscardError(f"{path}:{number}: not a 64-hex card hash")
        hashes.add(line)
    return frozenset(hashes)


class Pipeline:
    """Decide taps for one scenario profile, journal them, signal them.

    :param profile: the scenario profile
    :param store: the offline store (deny list, catalogue, journal, replay cache, audit)
    :param terminal_id: this terminal's id, journaled with every row
    :param indicator: where decisions are signalled, or ``None``
    :param clock: wall-clock seconds (tests freeze it)
    :param profile_dir: the folder relative list files in the profile are taken from
    :param hotlines: the service point's complaint hotlines, announced with every refusal
        (Guangdong draft §21, Guangzhou §29, Jiangxi §5)
    :raises SscardError: a list file named by the profile cannot be read; no hotline
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
        hotlines: Sequence[Hotline] = DEFAULT_HOTLINES,
    ) -> None:
        if not hotlines:
            raise SscardError("a service point announces at least one complaint hotline")
        self.hotlines = tuple(hotlines)
        self.profile = profile
        self.store = store
        self.terminal_id = terminal_id
        self.indicator = indicator
        self.clock = clock
        self.disabled: frozenset[str] = frozenset()
        rules = profile.transit
        if rules is not None and rules.disabled_list:
            path = Path(rules.disabled_list)
            if not path.is_absolute() and profile_dir is not None:
                path = profile_dir / path
            self.disabled = load_card_hashes(path)

    # -- the decision ----------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock()).astimezone()

    def decide_error(self, error: SscardError) -> Decision:
        """Decide a tap whose card read failed.

        :param error: what the read raised
        """
        if isinstance(error, CardNotGenuine):
            return refuse(Reason.NOT_GENUINE)
        if isinstance(error, NoSecurityModule):
            return refuse(Reason.NO_SECURITY_MODULE)
        if isinstance(error, SecurityModuleError):
            return refuse(Reason.SECURITY_MODULE_ERROR, national_code=int(error.code))
        if isinstance(error, ApplicationLocked):
            return refuse(Reason.APP_LOCKED)
        if isinstance(error, CardBlocked):
            return refuse(Reason.CARD_BLOCKED)
        if isinstance(error, WrongPin):
            return refuse(Reason.PIN_WRONG, tries_left=error.tries_left)
        if isinstance(error, PinBlocked):
            return refuse(Reason.PIN_BLOCKED)
        if isinstance(error, PinFormatError):
            return refuse(Reason.PIN_MISSING)
        if isinstance(error, CardRemoved | ReaderTimeout):
            return refuse(Reason.CARD_REMOVED)
        return refuse(Reason.CARD_UNREADABLE, error=type(error).__name__)

    def check_card(self, facts: CardFacts, card_hash: str) -> Decision | None:
        """Checks 1–3 on the card itself: genuine, expired, deny listed.

        :param facts: what the card's base read gave
        :param card_hash: the keyed hash of the card's canonical identifier
        :returns: the refusal, or ``None`` when the card passes
        """
        profile = self.profile
        today = self._now().date()
        if profile.require_genuine and not facts.genuine:
            return refuse(Reason.NO_SECURITY_MODULE)
        grace = dt.timedelta(days=profile.expiry_grace_days)
        if facts.expiry_date is not None and today > facts.expiry_date + grace:
            return refuse(Reason.EXPIRED, expiry_date=facts.expiry_date.isoformat())
        entry = self.store.deny.lookup(card_hash, today)
        if entry is not None:
            return refuse(
                DENY_REASONS[str(entry.reason)],
                deny_reason=str(entry.reason),
                effective=entry.effective.isoformat(),
                list_version=entry.version,
            )
        return None

    def check_service(self, facts: CardFacts) -> Decision | None:
        """Checks 6–8 on the service: category, catalogue, list age.

        :param facts: what the card's base read gave
        :returns: the refusal, or ``None`` when the service may go ahead
        """
        profile = self.profile
        now = self._now()
        if facts.category not in profile.allowed_categories:
            return refuse(Reason.CATEGORY_NOT_ALLOWED, category=facts.category)
        listed = any(
            item.code == profile.catalogue_item
            and item.scenario == profile.scenario
            and item.covers(facts.region_code)
            and item.valid_on(now.date())
            for item in self.store.catalogue.items()
        )
        if not listed:
            return refuse(
                Reason.NOT_IN_CATALOGUE,
                catalogue_item=profile.catalogue_item,
                region_code=facts.region_code,
            )
        stale = self._stale_list(now)
        if stale is not None:
            return refuse(Reason.LIST_STALE, list=stale)
        return None

    def decide(self, facts: CardFacts, card_hash: str, *, room: str | None = None) -> Decision:
        """Every check and the scenario's rules on facts already read (no PIN step).

        :param facts: what the card gave, personal fields included
        :param card_hash: the keyed hash of the card's canonical identifier
        :param room: the hotel room number from the desk
        """
        return (
            self.check_card(facts, card_hash)
            or self.check_service(facts)
            or self._scenario_rules(facts, card_hash, self._now(), room)
        )

    def _stale_list(self, now: dt.datetime) -> str | None:
        limit = dt.timedelta(hours=self.profile.max_list_age_hours)
        created = self.store.deny.status().created
        confirmed = self.store.meta.get(META_DENY_CURRENT_AT)
        if confirmed is not None:
            # a list that has not changed for a week is still fresh if the platform said so
            checked = dt.datetime.fromtimestamp(float(confirmed), now.tzinfo)
            created = checked if created is None or checked > created else created
        if created is None or now - created > limit:
            return "deny_list"
        loaded = self.store.catalogue.loaded_at()
        if loaded is None or now - loaded > limit:
            return "catalogue"
        return None

    def _scenario_rules(
        self, facts: CardFacts, card_hash: str, now: dt.datetime, room: str | None
    ) -> Decision:
        profile = self.profile
        if profile.scenario == Scenario.TRANSIT:
            return self._transit(facts, card_hash, now.date())
        if profile.scenario == Scenario.GATE:
            return self._gate(card_hash, now)
        if profile.scenario == Scenario.HOTEL:
            rules = profile.hotel
            assert rules is not None  # the schema guarantees it
            if room is None or not re.fullmatch(rules.room_pattern, room):
                return refuse(Reason.BAD_REQUEST, problem="room number missing or malformed")
            record = {"room": room, "region_code": facts.region_code, **facts.personal}
            return Decision(ACCEPT, Reason.OK, {"room": room}, record)
        record = {"region_code": facts.region_code, **facts.personal}
        return Decision(ACCEPT, Reason.OK, {}, record)

    def _transit(self, facts: CardFacts, card_hash: str, today: dt.date) -> Decision:
        rules = self.profile.transit
        assert rules is not None  # the schema guarantees it
        fare, concession = rules.fare_fen, None
        if card_hash in self.disabled:
            fare, concession = 0, "disabled"
        elif facts.category in rules.free_categories:
            fare, concession = 0, "elderly_category"
        elif rules.concession_age is not None and _age(facts.birth_date, today) is not None:
            age = _age(facts.birth_date, today)
            if age is not None and age >= rules.concession_age:
                fare, concession = 0, "age"
        if concession is None and facts.category in rules.reduced_categories:
            fare, concession = rules.reduced_fare_fen or 0, "reduced_category"
        return Decision(ACCEPT, Reason.OK, {"fare_fen": fare, "concession": concession})

    def _gate(self, card_hash: str, now: dt.datetime) -> Decision:
        rules = self.profile.gate
        assert rules is not None  # the schema guarantees it
        if rules.daily_capacity:
            midnight = dt.datetime.combine(now.date(), dt.time(), now.tzinfo).timestamp()
            entered = self.store.journal.count(
                scenario=self.profile.name, outcome=ACCEPT, since=midnight
            )
            if entered >= rules.daily_capacity:
                return refuse(Reason.CAPACITY_FULL, capacity=rules.daily_capacity)
        if rules.anti_passback_s:
            key = f"gate:{self.profile.name}:{card_hash}"
            if not self.store.replay.check_and_add(key, rules.anti_passback_s):
                return refuse(Reason.ANTI_PASSBACK, window_s=rules.anti_passback_s)
        return Decision(ACCEPT, Reason.OK, {})

    # -- journal and signal ----------------------------------------------------------------

    def record(self, decision: Decision, facts: CardFacts | None, card_hash: str) -> Decision:
        """Journal a decision (durably), audit personal data, then signal it.

        :param decision: the decision
        :param facts: what was read, if the read got that far
        :param card_hash: the credential token (empty when the card could not be read)
        :returns: the decision with its journal sequence
        """
        personal = dict(facts.personal) if facts is not None and decision.accepted else {}
        if facts is not None and facts.personal:
            self.store.audit.record(
                who=f"scenario:{self.profile.name}",
                terminal_id=self.terminal_id,
                scenario=self.profile.name,
                fields=sorted(facts.personal),
                purpose=f"{self.profile.scenario} decision",
            )
        amount = decision.detail.get("fare_fen") if decision.accepted else None
        row = self.store.journal.append(
            JournalEntry(
                scenario=self.profile.name,
                catalogue_item=self.profile.catalogue_item,
                credential_token=card_hash,
                outcome=_journal_outcome(decision),
                reason_code=str(decision.reason),
                amount=amount,
                personal=personal,
                terminal_id=self.terminal_id,
            )
        )
        done = replace(decision, seq=row.seq, hotlines=self.hotlines)
        masked = mask_card_number(facts.card_number) if facts and facts.card_number else "-"
        log.info(
            "event=tap scenario=%s outcome=%s reason=%s seq=%d card=%s",
            self.profile.name,
            done.outcome,
            done.reason,
            row.seq,
            masked,
        )
        self._signal(done)
        return done

    def _signal(self, decision: Decision) -> None:
        if self.indicator is None:
            return
        open_gate = decision.accepted and self.profile.scenario in (Scenario.TRANSIT, Scenario.GATE)
        try:
            shown = indication(decision.reason, hotlines=decision.hotlines, open_gate=open_gate)
            self.indicator.indicate(shown)
        except IndicatorError as exc:
            # the decision stands and is journaled; a dead buzzer must not undo it
            log.warning("event=indicator_failed reason=%s error=%s", decision.reason, exc)

    def card_hash(self, facts: CardFacts) -> str:
        """The keyed hash of a card's canonical identifier (the journal's credential token).

        :param facts: what was read (region code and card number)
        :raises SscardError: a card without a card number
        """
        if facts.card_number is None:
            raise SscardError("the card has no card number (EF05 record 07)")
        return self.store.card_hash(canonical_card_id(facts.region_code, facts.card_number))

    def process(
        self, read: ScenarioRead, *, pin: str | None = None, room: str | None = None
    ) -> Decision:
        """One whole tap: read, decide in the order of the module docstring, journal, signal.

        :param read: the card side of the tap
        :param pin: the holder's PIN, for profiles with ``pin = true``
        :param room: the hotel room number
        """
        try:
            facts = read.base()
        except SscardError as exc:
            return self.record(self.decide_error(exc), None, "")
        try:
            card_hash = self.card_hash(facts)
        except SscardError as exc:
            return self.record(self.decide_error(exc), facts, "")
        decision = self.check_card(facts, card_hash)
        if decision is None and self.profile.pin:
            try:
                read.verify_pin(pin)
            except SscardError as exc:
                decision = self.decide_error(exc)
        decision = decision or self.check_service(facts)
        if decision is None:
            try:
                facts = read.personal(facts)
            except SscardError as exc:
                return self.record(self.decide_error(exc), facts, card_hash)
            decision = self._scenario_rules(facts, card_hash, self._now(), room)
        return self.record(decision, facts, card_hash)


def _age(birth: dt.date | None, today: dt.date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
