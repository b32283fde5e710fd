"""Read a card for one scenario: the genuineness proof, then only the items the profile declares.

The order follows the national flow (spec doc §4.3): SELECT SSSE and EF05 (free; what every
scenario needs to decide: region, card number, category, validity), the security module's
INTERNAL AUTHENTICATE (and RKSSSE EXTERNAL AUTHENTICATE on 3.0 cards), then — only if the
profile lists them — the EF06 records for its holder fields, the PIN and the DF04 EF05 records
for its medical fields. A transit profile with no personal fields never selects EF06.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from apdu.errors import SscardError
from apdu.medical import read_medical
from apdu.pin import PinFormatError, verify_pin
from apdu.sam import SecurityModule, card_identity, collect_challenges, finish_authentication
from apdu.ssc import (
    FID_EF06,
    TAG_BIRTH_DATE,
    TAG_BIRTHPLACE,
    TAG_ETHNICITY,
    TAG_NAME,
    TAG_NAME_EXTENSION,
    TAG_SEX,
    TAG_SSN,
    Generation,
    HolderData,
    SscSession,
    parse_holder,
)
from apdu.transport import Connection
from terminal.profiles import MEDICAL_PREFIX, Profile

#: EF06 records per holder item (spec doc §2.5); the name extension comes with the name
HOLDER_TAGS: dict[str, tuple[int, ...]] = {
    "ssn": (TAG_SSN,),
    "name": (TAG_NAME, TAG_NAME_EXTENSION),
    "sex": (TAG_SEX,),
    "ethnicity": (TAG_ETHNICITY,),
    "birthplace": (TAG_BIRTHPLACE,),
    "birth_date": (TAG_BIRTH_DATE,),
}


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What a scenario learned from a card.

    :param region_code: 发卡地区 (the first six digits of 卡识别码)
    :param card_number: 卡号, the key of the deny list (never journaled or logged in clear)
    :param category: 卡的类别
    :param expiry_date: 卡有效期
    :param generation: the card generation (``None`` for an electronic card)
    :param genuine: a security module proved the card genuine
    :param module: the module's kind, empty without one
    :param terminal_number: the module's 终端机编号
    :param personal: the profile's personal fields only, as text (dates ISO 8601)
    :param birth_date: the birth date, when the profile reads it (age concessions)
    :param derived_from: holder items read only to derive a profile's item the card leaves
        ``FF`` (the SSN, for the birth date or sex written in it); never kept, named in the
        access audit
    """

    region_code: str
    card_number: str | None
    category: str | None
    expiry_date: dt.date | None
    generation: Generation | None
    genuine: bool
    module: str = ""
    terminal_number: str = "000000000000"
    personal: dict[str, str] = field(default_factory=dict)
    birth_date: dt.date | None = None
    derived_from: tuple[str, ...] = ()


#: holder items a card may leave ``FF`` that the SSN carries (apdu.ssc.parse_holder)
DERIVED_FROM_SSN = ("sex", "birth_date")


def holder_tags(items: tuple[str, ...], generation: Generation) -> tuple[int, ...]:
    """The EF06 records to read for some holder items, in file order.

    :param items: holder item names (``ssn``, ``name``, …)
    :param generation: 1.0 cards have no name extension
    """
    tags = {tag for item in items for tag in HOLDER_TAGS[item]}
    if generation == Generation.V1:
        tags.discard(TAG_NAME_EXTENSION)
    return tuple(sorted(tags))


def _read_holder(
    session: SscSession, items: tuple[str, ...], generation: Generation
) -> tuple[HolderData, tuple[str, ...]]:
    """Read EF06 records for some holder items; when the card leaves sex or the birth date
    ``FF`` (real cards often do), the SSN is read too, for them alone (spec doc §2.5: they are
    then taken from the SSN). Returns the data and the items read only for that."""
    session.select_ef(FID_EF06)
    records: dict[int, bytes] = {}
    for tag in holder_tags(items, generation):
        value = session.read_record(tag)
        if value is not None:
            records[tag] = value
    holder = parse_holder(records)
    wanted = [item for item in DERIVED_FROM_SSN if item in items]
    if "ssn" in items or all(getattr(holder, item) is not None for item in wanted):
        return holder, ()
    value = session.read_record(TAG_SSN)
    if value is None:
        return holder, ()
    return parse_holder({**records, TAG_SSN: value}), ("ssn",)


def _text(value: object) -> str | None:
    """A card item as journal text: dates ISO 8601, lists comma-joined, absent as ``None``."""
    if value is None or value == ():
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


class ScenarioRead:
    """The card side of one tap, in the steps the pipeline interleaves with its checks.

    The pipeline calls :meth:`base` (EF05 and the genuineness proof), decides what it can from
    that, then :meth:`verify_pin` where the profile needs the PIN, and :meth:`personal` only for
    a card that passed every check: a refused card's personal data is never read.

    :param connection: the card, with the T=0 chain
    :param historical: the ATR historical bytes
    :param profile: the scenario profile (its field set decides what is read)
    :param module: the security module, or ``None`` (then the card is not proven genuine)
    """

    def __init__(
        self,
        connection: Connection,
        historical: bytes,
        profile: Profile,
        module: SecurityModule | None,
    ) -> None:
        self.connection = connection
        self.historical = historical
        self.profile = profile
        self.module = module
        self._session: SscSession | None = None

    def base(self) -> CardFacts:
        """SELECT SSSE, read EF05, and prove the card genuine when a module is given.

        :raises ApplicationLocked: ``9303``
        :raises CardBlocked: ``6A81``
        :raises CardNotGenuine: INTERNAL AUTHENTICATE mismatch
        :raises SecurityModuleError: the module cannot serve the card
        :raises SscardError: other card or data errors
        """
        session = self._session = SscSession(self.connection)
        issuer = session.read_issuer()
        module_kind, terminal_number = "", "000000000000"
        if self.module is not None:
            card = card_identity(session, issuer, self.historical)
            self.module.check(card)
            request, answer = collect_challenges(self.connection, card)
            response = self.module.authenticate(request)
            finish_authentication(self.connection, request, answer, response)
            module_kind, terminal_number = self.module.kind, self.module.terminal_number()
        return CardFacts(
            region_code=issuer.region_code,
            card_number=issuer.card_number,
            category=issuer.category,
            expiry_date=issuer.expiry_date,
            generation=issuer.generation,
            genuine=self.module is not None,
            module=module_kind,
            terminal_number=terminal_number,
        )

    def verify_pin(self, pin: str | None) -> None:
        """VERIFY the holder's PIN (profiles with ``pin = true``).

        :param pin: the PIN from the caller
        :raises PinFormatError: no PIN given, or a malformed one
        :raises WrongPin: wrong, with the tries left
        :raises PinBlocked: blocked
        """
        if pin is None:
            raise PinFormatError("this scenario needs the holder's PIN")
        verify_pin(self.connection, pin)

    def personal(self, facts: CardFacts) -> CardFacts:
        """Read the profile's personal fields: EF06 items, then DF04 EF05 items (after the PIN).

        :param facts: what :meth:`base` returned
        :raises SecurityNotSatisfied: a 3.0 card's EF06 without RKSSSE, DF04 without the PIN
        :raises SscardError: other card or data errors
        """
        if self._session is None:
            raise SscardError("read the card's base data first")
        personal: dict[str, str] = {}
        birth_date = None
        derived_from: tuple[str, ...] = ()
        items = self.profile.holder_fields
        if items:
            generation = facts.generation or Generation.V1
            holder, derived_from = _read_holder(self._session, items, generation)
            for item in items:
                value = _text(getattr(holder, item))
                if value is not None:
                    personal[item] = value
            birth_date = holder.birth_date if "birth_date" in items else None
        if self.profile.medical_fields:
            medical = read_medical(self.connection, self.profile.medical_fields)
            for item in self.profile.medical_fields:
                value = _text(getattr(medical, item))
                if value is not None:
                    personal[f"{MEDICAL_PREFIX}{item}"] = value
        return replace(facts, personal=personal, birth_date=birth_date, derived_from=derived_from)
