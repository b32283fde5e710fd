"""Scenario profiles: what a terminal at a bus door, a coach or ferry gangway, a library or
museum gate, a hotel desk, a hospital kiosk, a social-insurance window or an elderly meal point
may read, store and decide (files under ``config/profiles/``, schema checked here).

A profile declares its personal-field set. The pipeline reads only those items from the card,
stores only those (encrypted) in the journal, and nothing else reaches a log. The schema is
strict: an unknown key, a wrong type or a field outside the catalogue is an error that names the
file and the key.

A profile also declares its operating policy (docs/policy.md): what the terminal does when a
list is stale or missing (``[degraded]``: accept and flag, ask the platform, or refuse — per
list; by default transit, gates and meal points accept, hotels, hospitals and service halls ask
online, then accept), an optional restriction of the issuing regions it serves, which must name
the rule it rests on (``[regions]``; by default cards of every region are accepted alike), and,
for transit, concessions that depend on where a card was issued
(``[[transit.region_concessions]]``: a fare rule, never a refusal).

Example (``config/profiles/transit.toml``)::

    scenario = "transit"
    catalogue_item = "0301"
    fields = []                  # personal fields; transit needs none (no EF06 read)
    max_list_age_hours = 72

    [transit]
    fare_fen = 200
    free_categories = ["4"]      # 卡类别 4 老年人

    [degraded]                   # a stale or missing list: accept | online | refuse
    deny_list = "accept"
    catalogue = "accept"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from apdu.errors import SscardError
from apdu.identity import CATEGORY_NAMES
from apdu.medical import MEDICAL_FIELDS
from apdu.records import HOLDER_ITEMS
from config import PROFILE_DIR as BUILT_IN_PROFILES
from config.schema import CONTROL, PATH_MAX, Table, dotted
from config.tomlfile import read_toml
from terminal.fares import PurseRules

#: the built-in profiles (config/profiles/)
PROFILE_DIR = BUILT_IN_PROFILES

#: DF04 EF05 医疗保险基本信息 items (apdu.medical.MEDICAL_FIELDS); they need the PIN
MEDICAL_PREFIX = "medical."
#: a week-old list still serves a library gate; a list older than a year is no list
MAX_LIST_AGE_HOURS = 8760
#: far above any gate's day (a metro gate serves some 20 000), well inside SQLite's integers
MAX_DAILY_CAPACITY = 10_000_000
#: characters of a profile name, a voice prompt's reason code, a room-number pattern
TEXT_MAX = 256
#: a region in a profile: a two-digit province prefix or a six-digit GB/T 2260 code
REGION = re.compile(r"[0-9]{2}|[0-9]{6}")
RULE_MAX = 200
#: the concessions computed from card data, by the names the journal and the host see
CARD_CONCESSIONS = ("disabled", "elderly_category", "age", "reduced_category")
#: services one window offers; meals one holder may take in a day
MAX_SERVICES = 50
MAX_DAILY_MEALS = 10
#: deferred national codes a terminal may hold unacknowledged, unless the profile says
DEFAULT_MAX_DEFERRED = 100
MAX_DEFERRED_LIMIT = 100_000


class ProfileError(SscardError):
    """A scenario profile that cannot be read or breaks the schema."""


class Scenario(StrEnum):
    """The kinds of service point (DESIGN.md), each with its own decision rules."""

    TRANSIT = "transit"  # buses, metro, coaches and ferries alike (profiles coach, ferry)
    GATE = "gate"
    HOTEL = "hotel"
    HOSPITAL = "hospital"
    SERVICE_HALL = "service-hall"
    MEAL_POINT = "meal-point"

    @property
    def table(self) -> str:
        """The profile's table of this scenario's rules (``[service_hall]``)."""
        return self.value.replace("-", "_")


def _no_control(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("no control characters (NUL, newline, …) allowed")
    return value


def _regular_expression(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:  # refused here, not at the first guest's room number
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


#: a line of text: no control characters, at most TEXT_MAX characters
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX), AfterValidator(_no_control)]
#: a voice prompt: a text to speak or an audio file's path
Prompt = Annotated[str, StringConstraints(max_length=PATH_MAX), AfterValidator(_no_control)]
#: a file path, as written (relative to the working folder)
PathText = Annotated[
    str, StringConstraints(min_length=1, max_length=PATH_MAX), AfterValidator(_no_control)
]


def _regions(values: tuple[str, ...], what: str) -> None:
    if not values:
        raise ValueError(f"{what} must list at least one region")
    strange = [v for v in values if not isinstance(v, str) or not REGION.fullmatch(v)]
    if strange:
        raise ValueError(f"{what}: regions are 2-digit province prefixes or 6-digit codes")


def _rule(value: str, what: str) -> None:
    if not value.strip() or len(value) > RULE_MAX or CONTROL.search(value):
        raise ValueError(
            f"{what} must name the rule it rests on (file and article), one line of at most "
            f"{RULE_MAX} characters"
        )


def region_matches(region_code: str, regions: tuple[str, ...]) -> bool:
    """Whether an issuing region is among a list of regions (exact codes or province prefixes).

    :param region_code: the card's six-digit region code
    :param regions: two-digit prefixes and six-digit codes
    :raises: nothing
    """
    return any(region_code == r or (len(r) == 2 and region_code.startswith(r)) for r in regions)


class RegionConcession(Table):
    """A fare that depends on where a card was issued (a city's own elderly free ride): a fare
    rule that lowers the fare, never a refusal.

    :param name: the concession's code, journaled and shown (``gz_senior_free``)
    :param regions: the issuing regions it applies to (2-digit prefixes or 6-digit codes)
    :param categories: the 卡类别 codes it applies to; empty for every category
    :param fare_fen: the fare it gives, in fen; lower than the profile's fare
    :param rule: the rule it rests on, file and article
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    regions: tuple[str, ...]
    categories: tuple[str, ...] = ()
    fare_fen: int = Field(default=0, ge=0, le=100_000)
    rule: str

    @model_validator(mode="after")
    def _consistent(self) -> RegionConcession:
        _regions(self.regions, f"region concession {self.name}")
        _rule(self.rule, f"region concession {self.name}")
        strange = sorted(set(self.categories) - set(CATEGORY_NAMES))
        if strange:
            raise ValueError(f"region concession {self.name}: categories {strange} are not 1-4")
        return self

    def applies(self, region_code: str, category: str | None) -> bool:
        """Whether a card gets this concession.

        :param region_code: the card's issuing region
        :param category: its 卡类别
        :raises: nothing
        """
        return region_matches(region_code, self.regions) and (
            not self.categories or category in self.categories
        )


class ConcessionRules(Table):
    """Concessions computed from card data only — never from residency: Hong Kong, Macao and
    Taiwan residents, foreigners and mainland holders alike (guangdong-draft.txt §16). Shared by
    transit fares and gate tickets; the lowest price wins, the first listed on a tie: the
    disabled-holder list, ``free_categories``, the age, (transit) the region concessions,
    ``reduced_categories``.

    :param free_categories: 卡类别 codes that go free (``4`` 老年人: the 老年人优待证 holder)
    :param reduced_categories: 卡类别 codes that pay the reduced price (``2`` 学生)
    :param concession_age: holders this old or older go free; needs ``birth_date`` in the
        profile's fields (an EF06 read)
    :param disabled_list: a file of card hashes (one per line) of disabled holders (残疾人证),
        who go free
    """

    free_categories: tuple[str, ...] = ()
    reduced_categories: tuple[str, ...] = ()
    concession_age: int | None = Field(default=None, ge=1, le=130)
    disabled_list: PathText | None = None


class TransitRules(ConcessionRules):
    """Fares and concessions (:class:`ConcessionRules`) of a bus, metro, coach or ferry.

    :param fare_fen: the flat fare in fen (分)
    :param reduced_fare_fen: the fare of ``reduced_categories``
    :param region_concessions: fares that depend on the card's issuing region, each naming its
        rule; a card of another region pays the ordinary fare (it is never refused)
    :param purse: the purse rules, daily cap and transfer discount (:mod:`terminal.fares`)
    """

    fare_fen: int = Field(ge=0, le=100_000)
    reduced_fare_fen: int | None = Field(default=None, ge=0, le=100_000)
    region_concessions: tuple[RegionConcession, ...] = ()
    purse: PurseRules = Field(default_factory=PurseRules)


class GateRules(ConcessionRules):
    """Library, museum or scenic-site gates, with the concessions of 老年人优待证, 残疾人证 and
    student holders (provincial-draft-2026.txt §11(五)(九); :class:`ConcessionRules`), shown on
    every decision as ``concession``.

    :param anti_passback_s: the same card is refused at this gate for this long after an entry
    :param daily_capacity: entries accepted per day, ``0`` for no limit
    :param ticket_fen: the entry price in fen; ``0`` for free entry (public libraries and
        museums)
    :param reduced_ticket_fen: the price of ``reduced_categories``
    """

    anti_passback_s: int = Field(default=0, ge=0, le=86_400)
    daily_capacity: int = Field(default=0, ge=0, le=MAX_DAILY_CAPACITY)
    ticket_fen: int = Field(default=0, ge=0, le=1_000_000)
    reduced_ticket_fen: int | None = Field(default=None, ge=0, le=1_000_000)


class HotelRules(Table):
    """Lodging registration (旅馆业治安管理): the record the police system receives.

    :param room_pattern: a regular expression the caller's room number must match
    """

    room_pattern: Annotated[Text, AfterValidator(_regular_expression)] = r"^[0-9A-Za-z-]{1,8}$"


class HospitalRules(Table):
    """Registration at a hospital: identity plus the medical-insurance items after the PIN.

    :param pin_attempts_shown: warn the holder when this few PIN tries are left
    """

    pin_attempts_shown: int = Field(default=1, ge=0, le=3)


class ServiceItem(Table):
    """One service a government or social-insurance window offers.

    :param code: the clerk names it (``sscard tap --service CODE``); journaled and audited
    :param name: what the window calls it
    :param pin: the holder enters the PIN for it
    """

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name: Text
    pin: bool = False


class ServiceHallRules(Table):
    """A social-insurance, HR or government service window (guangdong-draft.txt §9, §11;
    provincial-draft-2026.txt §11(一)(二)): the holder's identity for the clerk, the PIN where
    the service needs it, and an audit row for every read naming the service.

    :param services: what the window offers; the first is the one used when the clerk names
        none
    """

    services: tuple[ServiceItem, ...] = Field(min_length=1, max_length=MAX_SERVICES)

    def service(self, code: str | None) -> ServiceItem | None:
        """The service of a code, the first one for ``None``; ``None`` for an unknown code.

        :param code: the clerk's choice
        :raises: nothing
        """
        if code is None:
            return self.services[0]
        return next((item for item in self.services if item.code == code), None)


class SubsidyCategory(Table):
    """A meal subsidy category: holders of an age or older, or holders on the disabled list.

    :param name: the category's code, journaled and shown (``elderly_80``)
    :param min_age: holders this old or older (the age from ``birth_date``)
    :param disabled: holders on the meal point's disabled-holder list
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    min_age: int | None = Field(default=None, ge=1, le=130)
    disabled: bool = False

    @model_validator(mode="after")
    def _one_criterion(self) -> SubsidyCategory:
        if (self.min_age is None) == (not self.disabled):
            raise ValueError(
                f"subsidy category {self.name}: give either min_age or disabled = true"
            )
        return self


class MealPointRules(Table):
    """A 老年助餐点 (provincial-draft-2026.txt §11(七)): the holder's subsidy category and a daily
    meal limit per holder, counted on the store's day counters (a synced journal never resets
    it).

    :param daily_limit: meals per holder per day
    :param categories: the subsidy categories; the first listed that applies is the holder's
    :param disabled_list: a file of card hashes (one per line) of disabled holders
    :param serve_others: serve holders of no category too (``subsidy_category`` none); by
        default they are refused ``meal_not_eligible``
    """

    daily_limit: int = Field(ge=1, le=MAX_DAILY_MEALS)
    categories: tuple[SubsidyCategory, ...] = Field(min_length=1, max_length=16)
    disabled_list: PathText | None = None
    serve_others: bool = False


class QrRules(Table):
    """Electronic-card QR codes at this service point.

    :param window_s: a dynamic code is accepted this long around its timestamp
    :param skew_s: clock skew allowed on the credential's validity
    :param opaque_offline: a national (opaque) code while the platform is unreachable:
        ``refuse``, or ``defer`` (accept, journal as deferred, confirm with the platform at the
        next sync). By default transit and gates defer — the e-card has the same force as the
        physical card (docs/policy.md §7) — and every other scenario refuses; a profile that
        reads personal fields cannot defer: a deferred code carries no identity
    :param max_deferred: with ``defer``, how many deferred codes the terminal may hold that
        the platform has not yet confirmed; beyond it a national code is refused
        (``qr_deferred_limit``) until a sync has them confirmed
    """

    window_s: float = Field(default=30, gt=0, le=600)
    skew_s: float = Field(default=5, ge=0, le=600)
    opaque_offline: Literal["refuse", "defer"] = "refuse"
    max_deferred: int = Field(default=DEFAULT_MAX_DEFERRED, ge=1, le=MAX_DEFERRED_LIMIT)

    @model_validator(mode="after")
    def _deferral(self) -> QrRules:
        if "max_deferred" in self.model_fields_set and self.opaque_offline != "defer":
            raise ValueError('max_deferred applies only with opaque_offline = "defer"')
        return self


ListPolicy = Literal["accept", "online", "refuse"]


class DegradedPolicy(Table):
    """What the terminal does when a list it decides from is stale or missing (docs/policy.md).

    ``accept``: decide without it and journal the decision with a ``stale_list:<list>`` flag;
    ``online``: ask the platform now (one card's deny-list status, or a fresh catalogue or
    trust list), and when it does not answer in time do ``online_fallback``; ``refuse``: refuse
    with ``list_stale``. A stale list is an operator's alarm, never a holder's problem: refusing
    lawful use is an offence (guangdong-draft.txt §25(三), jiangxi-2022.txt §19(四)).

    :param deny_list: for a stale or missing deny list (a card it lists is refused all the same)
    :param catalogue: for a stale or missing application catalogue
    :param trust_list: for an expired or missing e-card trust list (codes only)
    :param online_fallback: what ``online`` does when the platform does not answer
    :param online_timeout_s: how long a holder waits for the platform
    """

    deny_list: ListPolicy = "accept"
    catalogue: ListPolicy = "accept"
    trust_list: ListPolicy = "accept"
    online_fallback: Literal["accept", "refuse"] = "accept"
    online_timeout_s: float = Field(default=2.0, gt=0, le=10)

    def for_list(self, name: str) -> str:
        """The policy for a list (``deny_list``, ``catalogue``, ``trust_list``).

        :param name: the list
        :raises KeyError: another name
        """
        policies = {
            "deny_list": self.deny_list,
            "catalogue": self.catalogue,
            "trust_list": self.trust_list,
        }
        return policies[name]


#: the [qr] rules a profile gets by scenario unless it says otherwise, when it reads no personal
#: field: a bus or a gate takes a national code it cannot check now and has it confirmed at the
#: next sync, as it takes a physical card with a stale list (docs/policy.md §7)
DEFAULT_QR: dict[str, dict[str, str]] = {
    "transit": {"opaque_offline": "defer"},
    "gate": {"opaque_offline": "defer"},
}

#: the degraded policy a profile without a [degraded] table gets, by scenario: where money or
#: lodging is at stake the platform is asked first; a bus or a gate never waits for a network
DEFAULT_DEGRADED: dict[str, dict[str, str]] = {
    "transit": {},
    "gate": {},
    "hotel": {"deny_list": "online", "catalogue": "online", "trust_list": "online"},
    "hospital": {"deny_list": "online", "catalogue": "online", "trust_list": "online"},
    "service-hall": {"deny_list": "online", "catalogue": "online", "trust_list": "online"},
    "meal-point": {},
}


class RegionRestriction(Table):
    """A deployment that may serve only cards of some issuing regions — where, and only where,
    a rule says so. By default a terminal accepts the cards of every region, Hong Kong, Macao
    and Taiwan residents and foreign holders alike (guangdong-draft.txt §3 "全省互认",
    provincial-draft-2026.txt §6 "支持省内和跨区域用卡", §15 "省际互通").

    :param accept: the issuing regions served (2-digit prefixes or 6-digit codes)
    :param rule: the rule the restriction rests on, file and article; every refusal names it
    """

    accept: tuple[str, ...]
    rule: str

    @model_validator(mode="after")
    def _consistent(self) -> RegionRestriction:
        _regions(self.accept, "regions.accept")
        _rule(self.rule, "a region restriction (regions.rule)")
        return self


class Profile(Table):
    """One scenario profile (see the module docstring).

    :param scenario: which rules apply
    :param name: the profile's name (the file stem)
    :param catalogue_item: the 应用目录 item this service is listed under
    :param fields: personal fields read and stored; EF06 items and ``medical.*`` items
    :param require_genuine: refuse cards not proven genuine by a security module
    :param expiry_grace_days: days after 卡有效期 a card is still accepted
    :param max_list_age_hours: the deny list or catalogue is stale when older than this
    :param allowed_categories: 卡类别 codes served
    :param pin: the holder enters the PIN (hospital)
    :param voice: reason code → text or audio file for voice prompts
    :param qr: electronic-card QR rules
    :param degraded: what to do with a stale or missing list (defaults by scenario:
        :data:`DEFAULT_DEGRADED`)
    :param regions: a restriction of the issuing regions served, naming its rule; ``None``
        (the default) serves every region
    :param transit: the rules of a transit profile (bus, metro, coach, ferry); likewise
        ``gate``, ``hotel``, ``hospital``, ``service_hall``, ``meal_point``: each profile has
        the table of its scenario and no other
    """

    scenario: Scenario = Field(strict=False)  # a TOML string names the enum member
    name: Text = ""
    catalogue_item: str = Field(pattern=r"^[0-9A-Za-z]{2,16}$")
    fields: tuple[str, ...] = ()
    require_genuine: bool = True
    expiry_grace_days: int = Field(default=0, ge=0, le=366)
    max_list_age_hours: float = Field(default=72, gt=0, le=MAX_LIST_AGE_HOURS)
    allowed_categories: tuple[str, ...] = tuple(CATEGORY_NAMES)
    pin: bool = False
    voice: dict[Text, Prompt] = Field(default_factory=dict)
    qr: QrRules = Field(default_factory=QrRules)
    degraded: DegradedPolicy = Field(default_factory=DegradedPolicy)
    regions: RegionRestriction | None = None
    transit: TransitRules | None = None
    gate: GateRules | None = None
    hotel: HotelRules | None = None
    hospital: HospitalRules | None = None
    service_hall: ServiceHallRules | None = None
    meal_point: MealPointRules | None = None

    @model_validator(mode="before")
    @classmethod
    def _scenario_defaults(cls, data: Any) -> Any:
        """A missing ``[degraded]`` table, or a missing key in it, takes the scenario's
        default (:data:`DEFAULT_DEGRADED`); so does ``[qr] opaque_offline``
        (:data:`DEFAULT_QR`) in a profile that reads no personal field."""
        if not isinstance(data, Mapping):
            return data
        scenario = str(data.get("scenario"))
        out = dict(data)
        for table, defaults in (
            ("degraded", DEFAULT_DEGRADED.get(scenario, {})),
            ("qr", DEFAULT_QR.get(scenario, {}) if not data.get("fields") else {}),
        ):
            given = data.get(table, {})
            if defaults and isinstance(given, Mapping):
                out[table] = {**defaults, **given}
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        known = {*HOLDER_ITEMS, *(MEDICAL_PREFIX + name for name in MEDICAL_FIELDS)}
        unknown = sorted(set(self.fields) - known)
        if unknown:
            raise ValueError(f"fields {unknown} are not card items; known: {sorted(known)}")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("fields lists an item twice")
        strange = sorted(set(self.allowed_categories) - set(CATEGORY_NAMES))
        if strange:
            raise ValueError(f"allowed_categories {strange}: 卡类别 codes are 1-4")
        if self.rules is None:
            raise ValueError(f"a {self.scenario} profile needs a [{self.scenario.table}] table")
        others = [
            kind.table for kind in Scenario if kind != self.scenario and getattr(self, kind.table)
        ]
        if others:
            raise ValueError(f"a {self.scenario} profile cannot have {others} tables")
        if self.medical_fields and not self.pin:
            raise ValueError("medical.* fields need the PIN: set pin = true")
        if self.fields and self.qr.opaque_offline == "defer":
            raise ValueError(
                f'qr.opaque_offline = "defer" cannot serve a profile that reads {list(self.fields)}'
                ": a deferred national code carries no identity (docs/policy.md §7)"
            )
        self._check_rules()
        if self.scenario == Scenario.HOTEL:
            missing = sorted({"name", "ssn", "sex", "ethnicity", "birth_date"} - set(self.fields))
            if missing:
                raise ValueError(f"lodging registration needs the fields {missing}")
        return self

    def _check_rules(self) -> None:
        """The scenario table's own consistency, and what it needs of the field set."""
        if self.transit is not None:
            self._check_concessions(self.transit, "transit", "reduced_fare_fen")
            self._check_transit(self.transit)
        if self.gate is not None:
            self._check_concessions(self.gate, "gate", "reduced_ticket_fen")
            reduced = self.gate.reduced_ticket_fen
            if reduced is not None and reduced > self.gate.ticket_fen:
                raise ValueError("gate.reduced_ticket_fen must not exceed gate.ticket_fen")
        if self.service_hall is not None:
            codes = [item.code for item in self.service_hall.services]
            if len(set(codes)) != len(codes):
                raise ValueError("service_hall.services names a service twice")
        if self.meal_point is not None:
            self._check_meal_point(self.meal_point)

    def _check_concessions(self, rules: ConcessionRules, table: str, reduced: str) -> None:
        if rules.concession_age is not None and "birth_date" not in self.fields:
            raise ValueError(
                f"{table}.concession_age needs birth_date in fields (which reads EF06)"
            )
        if rules.reduced_categories and getattr(rules, reduced) is None:
            raise ValueError(f"{table}.reduced_categories needs {table}.{reduced}")
        for name in ("free_categories", "reduced_categories"):
            strange = sorted(set(getattr(rules, name)) - set(CATEGORY_NAMES))
            if strange:
                raise ValueError(f"{table}.{name} {strange}: 卡类别 codes are 1-4")

    def _check_meal_point(self, rules: MealPointRules) -> None:
        names = [category.name for category in rules.categories]
        if len(set(names)) != len(names):
            raise ValueError("meal_point.categories names a category twice")
        aged = [c.name for c in rules.categories if c.min_age is not None]
        if aged and "birth_date" not in self.fields:
            raise ValueError(
                f"meal_point categories {aged} need birth_date in fields (which reads EF06)"
            )
        if any(c.disabled for c in rules.categories) and rules.disabled_list is None:
            raise ValueError("a disabled subsidy category needs meal_point.disabled_list")

    def _check_transit(self, rules: TransitRules) -> None:
        names = [c.name for c in rules.region_concessions]
        if len(set(names)) != len(names):
            raise ValueError("transit.region_concessions names a concession twice")
        taken = sorted(set(names) & set(CARD_CONCESSIONS))
        if taken:
            raise ValueError(f"region concession names {taken} are the card concessions' own")
        for concession in rules.region_concessions:
            if concession.fare_fen >= rules.fare_fen:
                raise ValueError(
                    f"region concession {concession.name}: fare_fen must be below the fare "
                    f"({rules.fare_fen})"
                )

    @property
    def rules(self) -> Table | None:
        """The table of this profile's scenario rules (``[transit]``, ``[meal_point]`` …)."""
        table: Table | None = getattr(self, self.scenario.table)
        return table

    @property
    def disabled_list(self) -> str | None:
        """The disabled-holder list the scenario's rules name, if any."""
        return getattr(self.rules, "disabled_list", None)

    @property
    def holder_fields(self) -> tuple[str, ...]:
        """The EF06 items this profile reads (empty: no EF06 read at all)."""
        return tuple(f for f in self.fields if f in HOLDER_ITEMS)

    @property
    def medical_fields(self) -> tuple[str, ...]:
        """The DF04 EF05 items this profile reads, without the ``medical.`` prefix."""
        return tuple(f[len(MEDICAL_PREFIX) :] for f in self.fields if f.startswith(MEDICAL_PREFIX))


def parse_profile(data: Mapping[str, Any], source: str, name: str = "") -> Profile:
    """Check a parsed profile document.

    :param data: the TOML document
    :param source: the file, named in every error
    :param name: the profile name (the file stem)
    :raises ProfileError: a key the schema does not have, a wrong type, an inconsistent profile
    """
    document = dict(data)
    document.setdefault("name", name)
    try:
        return Profile.model_validate(_tuples(document))
    except ValidationError as exc:
        problems = "; ".join(
            f"{dotted(err['loc']) or '(profile)'}: {_message(err)}" for err in exc.errors()
        )
        raise ProfileError(f"{source}: {problems}") from None


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a profile by name (``config/profiles/<name>.toml``) or by path.

    :param name_or_path: ``transit``, ``gate``, … or a file path
    :raises ProfileError: no such profile, unreadable, not UTF-8, not TOML, nested too deeply,
        or off-schema
    """
    path = Path(name_or_path)
    if path.suffix != ".toml" and path.parent == Path("."):
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
            raise ProfileError(f"no scenario profile {str(name_or_path)!r}; built in: {known}")
    data = read_toml(path, ProfileError, what="profile")
    return parse_profile(data, str(path), path.stem)


def _tuples(value: Any) -> Any:
    """TOML arrays become tuples (the schema is strict and frozen)."""
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _message(error: Mapping[str, Any]) -> str:
    kind: Literal["extra_forbidden"] | str = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")
