"""Each scenario's own rules, applied once every check of the pipeline passed.

* transit (buses, metro, coaches, ferries — Guangdong draft §12, 2026 draft §11(四)): the fare,
  the lowest of the concessions that apply;
* gate (libraries, museums, scenic sites — 2026 draft §11(五)(九)): the daily capacity,
  anti-passback, and the concession of 老年人优待证, 残疾人证 and student holders with its price;
* hotel (Guangdong draft §9, 2026 draft §11(六)): the lodging registration record;
* hospital (2026 draft §11(三)): the registration record with the medical items;
* service hall (Guangdong draft §9, §11; 2026 draft §11(一)(二)): the holder's identity for the
  clerk, for the service the clerk named;
* meal point (2026 draft §11(七)): the holder's subsidy category and the day's meals left.

Concessions come from card data only (the disabled-holder list, 卡类别, the age) and from a
transit profile's explicit issuing-region rules; none of them ever refuses a card. Daily limits
(a gate's capacity, a holder's meals) are counted on the store's day counters, which the
pipeline raises in the transaction that journals an accepted decision (:meth:`counts`): a
journal pruned after a sync does not reset them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu.errors import SscardError
from offline_store import Store
from terminal.card_read import CardFacts
from terminal.profiles import Profile, Scenario
from terminal.reasons import Reason
from terminal.scenario_tables import ConcessionRules, ServiceItem

#: the day counters: accepted entries at a gate, one holder's meals at a meal point
ENTRIES_KEY = "entries:{profile}"
MEALS_KEY = "meals:{profile}:{card}"


@dataclass(frozen=True, slots=True)
class Ruling:
    """What a scenario's rules decided.

    :param reason: ``ok`` or the refusal's reason
    :param detail: facts behind it (fare, concession, meals left …); never personal data
    :param record: the output the scenario exists to produce (identity for a desk or a clerk)
    """

    reason: Reason
    detail: dict[str, Any] = field(default_factory=dict)
    record: dict[str, str] | None = None


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


def age_on(birth: dt.date | None, today: dt.date) -> int | None:
    """A holder's age in whole years on a day, ``None`` without a birth date.

    :param birth: the birth date
    :param today: the day
    """
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class ScenarioRules:
    """The rules of one profile's scenario.

    :param profile: the scenario profile
    :param store: the offline store (day counters, replay cache)
    :param profile_dir: the folder a relative disabled-holder list is taken from
    :raises SscardError: the profile's disabled-holder list cannot be read
    """

    def __init__(self, profile: Profile, store: Store, profile_dir: Path | None = None) -> None:
        self.profile = profile
        self.store = store
        self.disabled: frozenset[str] = frozenset()
        if profile.disabled_list:
            path = Path(profile.disabled_list)
            if not path.is_absolute() and profile_dir is not None:
                path = profile_dir / path
            self.disabled = load_card_hashes(path)

    # -- the desk's request, before any personal data is read --------------------------------

    def service(self, code: str | None) -> ServiceItem | None:
        """The service a service-hall clerk named (the first listed for ``None``).

        :param code: the clerk's choice
        :raises: nothing
        """
        rules = self.profile.service_hall
        return rules.service(code) if rules is not None else None

    def needs_pin(self, service: str | None) -> bool:
        """Whether the holder enters the PIN: the profile says so, or the service needs it.

        :param service: the service-hall clerk's choice
        :raises: nothing
        """
        item = self.service(service)
        return self.profile.pin or (item is not None and item.pin)

    def check_request(self, room: str | None, service: str | None) -> Ruling | None:
        """Refuse a desk's malformed request (a hotel room, a service the hall does not offer)
        before any personal data is read.

        :param room: the hotel room number
        :param service: the service-hall clerk's choice
        :raises: nothing
        """
        hotel = self.profile.hotel
        if hotel is not None and (room is None or not re.fullmatch(hotel.room_pattern, room)):
            return Ruling(Reason.BAD_REQUEST, {"problem": "room number missing or malformed"})
        hall = self.profile.service_hall
        if hall is not None and hall.service(service) is None:
            offered = [item.code for item in hall.services]
            return Ruling(
                Reason.BAD_REQUEST, {"problem": "service not offered here", "services": offered}
            )
        return None

    def audit_purpose(self, service: str | None) -> str:
        """Why personal data was read, for the access audit row.

        :param service: the service-hall clerk's choice
        :raises: nothing
        """
        item = self.service(service)
        purpose = f"{self.profile.scenario} decision"
        return f"{purpose}: {item.code} {item.name}" if item is not None else purpose

    # -- the rules ---------------------------------------------------------------------------

    def decide(
        self,
        facts: CardFacts,
        card_hash: str,
        now: dt.datetime,
        *,
        room: str | None = None,
        service: str | None = None,
    ) -> Ruling:
        """The scenario's rules on a card that passed every check.

        :param facts: what the card gave, personal fields included
        :param card_hash: the credential token
        :param now: the tap's wall clock (local)
        :param room: the hotel room number (checked by :meth:`check_request`)
        :param service: the service-hall clerk's choice (checked by :meth:`check_request`)
        :raises StoreError: the store failed
        """
        refused = self.check_request(room, service)
        if refused is not None:
            return refused
        scenario = self.profile.scenario
        if scenario == Scenario.TRANSIT:
            return self._transit(facts, card_hash, now.date())
        if scenario == Scenario.GATE:
            return self._gate(facts, card_hash, now)
        if scenario == Scenario.MEAL_POINT:
            return self._meal_point(facts, card_hash, now.date())
        record = {"region_code": facts.region_code, **facts.personal}
        if scenario == Scenario.HOTEL:
            assert room is not None  # check_request refused a missing room
            return Ruling(Reason.OK, {"room": room}, {"room": room, **record})
        item = self.service(service)
        if item is not None:
            return Ruling(Reason.OK, {"service": item.code}, {"service": item.code, **record})
        return Ruling(Reason.OK, {}, record)

    def counts(self, accepted: bool, card_hash: str) -> tuple[str, ...]:
        """The day counters an accepted decision raises (journaled with it).

        :param accepted: the decision was an accept (a gate opened, a meal was served)
        :param card_hash: the credential token, empty when no credential was read
        :raises: nothing
        """
        if not accepted:
            return ()
        name = self.profile.name
        if self.profile.scenario == Scenario.GATE:
            return (ENTRIES_KEY.format(profile=name),)
        if self.profile.scenario == Scenario.MEAL_POINT and card_hash:
            return (MEALS_KEY.format(profile=name, card=card_hash),)
        return ()

    def _concession(
        self,
        rules: ConcessionRules,
        facts: CardFacts,
        card_hash: str,
        today: dt.date,
        *,
        reduced_fen: int | None,
        extra: Sequence[tuple[int, str, str | None]] = (),
    ) -> list[tuple[int, str, str | None]]:
        """The concessions that apply, in the order that breaks a tie: the disabled-holder
        list, the free categories, the age, ``extra`` (region concessions), the reduced
        categories."""
        options: list[tuple[int, str, str | None]] = []
        if card_hash in self.disabled:
            options.append((0, "disabled", None))
        if facts.category in rules.free_categories:
            options.append((0, "elderly_category", None))
        age = age_on(facts.birth_date, today)
        if rules.concession_age is not None and age is not None and age >= rules.concession_age:
            options.append((0, "age", None))
        options += extra
        if facts.category in rules.reduced_categories:
            options.append((reduced_fen or 0, "reduced_category", None))
        return options

    def _transit(self, facts: CardFacts, card_hash: str, today: dt.date) -> Ruling:
        rules = self.profile.transit
        assert rules is not None  # the schema guarantees it
        local = [
            (c.fare_fen, c.name, c.rule)
            for c in rules.region_concessions
            if c.applies(facts.region_code, facts.category)
        ]
        options = self._concession(
            rules, facts, card_hash, today, reduced_fen=rules.reduced_fare_fen, extra=local
        )
        fare, concession, rule = min(
            options, key=lambda option: option[0], default=(rules.fare_fen, None, None)
        )
        detail: dict[str, Any] = {"fare_fen": fare, "concession": concession}
        if rule is not None:
            detail["concession_rule"] = rule
        return Ruling(Reason.OK, detail)

    def check_without_card(self, now: dt.datetime) -> Ruling | None:
        """The rules that concern the service point, not the card: a gate's daily capacity —
        what a national e-card code deferred offline must pass (its card is known only when
        the platform confirms it at the next sync).

        :param now: the scan's wall clock (local)
        :raises StoreError: the store failed
        """
        rules = self.profile.gate
        if rules is not None and rules.daily_capacity:
            key = ENTRIES_KEY.format(profile=self.profile.name)
            if self.store.day_counts.get(key, now.date()) >= rules.daily_capacity:
                return Ruling(Reason.CAPACITY_FULL, {"capacity": rules.daily_capacity})
        return None

    def _gate(self, facts: CardFacts, card_hash: str, now: dt.datetime) -> Ruling:
        rules = self.profile.gate
        assert rules is not None  # the schema guarantees it
        full = self.check_without_card(now)
        if full is not None:
            return full
        if rules.anti_passback_s:
            key = f"gate:{self.profile.name}:{card_hash}"
            if not self.store.replay.check_and_add(key, rules.anti_passback_s):
                return Ruling(Reason.ANTI_PASSBACK, {"window_s": rules.anti_passback_s})
        options = self._concession(
            rules, facts, card_hash, now.date(), reduced_fen=rules.reduced_ticket_fen
        )
        price, concession, _ = min(
            options, key=lambda option: option[0], default=(rules.ticket_fen, None, None)
        )
        detail: dict[str, Any] = {"concession": concession}
        if rules.ticket_fen:
            detail["ticket_fen"] = price
        return Ruling(Reason.OK, detail)

    def _meal_point(self, facts: CardFacts, card_hash: str, today: dt.date) -> Ruling:
        rules = self.profile.meal_point
        assert rules is not None  # the schema guarantees it
        age = age_on(facts.birth_date, today)
        category = next(
            (
                c.name
                for c in rules.categories
                if (c.disabled and card_hash in self.disabled)
                or (c.min_age is not None and age is not None and age >= c.min_age)
            ),
            None,
        )
        if category is None and not rules.serve_others:
            return Ruling(Reason.MEAL_NOT_ELIGIBLE, {"subsidy_category": None})
        key = MEALS_KEY.format(profile=self.profile.name, card=card_hash)
        taken = self.store.day_counts.get(key, today)
        if taken >= rules.daily_limit:
            return Ruling(
                Reason.MEAL_LIMIT_REACHED,
                {"subsidy_category": category, "daily_limit": rules.daily_limit},
            )
        left = rules.daily_limit - taken - 1
        return Ruling(Reason.OK, {"subsidy_category": category, "meals_left": left})
