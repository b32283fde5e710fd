"""The rule tables of each scenario in a profile (``[transit]``, ``[gate]``, ``[hotel]``,
``[hospital]``, ``[service_hall]``, ``[meal_point]``) and the value types they share with the
profile (:mod:`terminal.profiles`, which checks what a table needs of the profile as a whole: its
field set, its scenario).

Split from ``terminal/profiles.py`` so that a scenario's table can grow (a transit purse, a new
concession) without the profile schema growing past one module.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from apdu.identity import CATEGORY_NAMES
from config.schema import CONTROL, PATH_MAX, Table
from terminal.fares import PurseRules

#: far above any gate's day (a metro gate serves some 20 000), well inside SQLite's integers
MAX_DAILY_CAPACITY = 10_000_000
#: characters of a profile name, a voice prompt's reason code, a room-number pattern
TEXT_MAX = 256
#: a region in a profile: a two-digit province prefix or a six-digit GB/T 2260 code
REGION = re.compile(r"[0-9]{2}|[0-9]{6}")
RULE_MAX = 200
#: services one window offers; meals one holder may take in a day
MAX_SERVICES = 50
MAX_DAILY_MEALS = 10


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


def check_regions(values: tuple[str, ...], what: str) -> None:
    """A validator's check of a list of issuing regions (a region concession, ``[regions]``).

    :param values: the regions as written
    :param what: the key, named in the error
    :raises ValueError: an empty list or a region that is no 2- or 6-digit code
    """
    if not values:
        raise ValueError(f"{what} must list at least one region")
    strange = [v for v in values if not isinstance(v, str) or not REGION.fullmatch(v)]
    if strange:
        raise ValueError(f"{what}: regions are 2-digit province prefixes or 6-digit codes")


def check_rule(value: str, what: str) -> None:
    """A validator's check that a restriction or concession names the rule it rests on.

    :param value: the rule as written
    :param what: the key, named in the error
    :raises ValueError: a blank, overlong or multi-line rule
    """
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
        check_regions(self.regions, f"region concession {self.name}")
        check_rule(self.rule, f"region concession {self.name}")
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
