"""Read a card for one scenario: the genuineness proof, then only the items the profile declares.

The order follows the national flow (spec doc §4.3): SELECT SSSE and EF05 (free; what every
scenario needs to decide: region, card number, category, validity), the security module's
INTERNAL AUTHENTICATE (and, when the profile reads EF06, RKSSSE EXTERNAL AUTHENTICATE on 3.0
cards), then — only if the profile lists them — the EF06 records for its holder fields, the
PIN and the DF04 EF05 records for its medical fields: the three steps of
:class:`apdu.ssc.SscSession`. A transit profile with no personal fields never selects EF06 and
never asks the card for EXTERNAL AUTHENTICATE.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from apdu.errors import SscardError
from apdu.national import ireadcardbas
from apdu.pin import PinFormatError
from apdu.records import CardAlgorithm, CardContents, Generation, HolderData
from apdu.sam import SecurityModule
from apdu.ssc import SscSession
from apdu.transport import Connection
from terminal.profiles import MEDICAL_PREFIX, Profile


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
        self.facts: CardFacts | None = None  # the last facts read: base, then personal
        self.holder: HolderData | None = None  # EF06 as read for the profile's fields

    def base(self) -> CardFacts:
        """SELECT SSSE, read EF05, and prove the card genuine when a module is given.

        :raises ApplicationLocked: ``9303``
        :raises CardBlocked: ``6A81``
        :raises CardNotGenuine: INTERNAL AUTHENTICATE mismatch
        :raises SecurityModuleError: the module cannot serve the card
        :raises SscardError: other card or data errors
        """
        session = self._session = SscSession(self.connection, self.historical)
        issuer = session.read_issuer()
        module_kind, terminal_number = "", "000000000000"
        if self.module is not None:
            session.authenticate(self.module, holder=bool(self.profile.holder_fields))
            module_kind, terminal_number = self.module.kind, self.module.terminal_number()
        self.facts = CardFacts(
            region_code=issuer.region_code,
            card_number=issuer.card_number,
            category=issuer.category,
            expiry_date=issuer.expiry_date,
            generation=issuer.generation,
            genuine=self.module is not None,
            module=module_kind,
            terminal_number=terminal_number,
        )
        return self.facts

    def verify_pin(self, pin: str | None) -> None:
        """VERIFY the holder's PIN (profiles with ``pin = true``).

        :param pin: the PIN from the caller
        :raises PinFormatError: no PIN given, or a malformed one
        :raises WrongPin: wrong, with the tries left
        :raises PinBlocked: blocked
        """
        if pin is None:
            raise PinFormatError("this scenario needs the holder's PIN")
        if self._session is None:
            raise SscardError("read the card's base data first")
        self._session.verify_pin(pin)

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
            holder = self.holder = self._session.read_holder(items)
            for item in items:
                value = _text(getattr(holder, item))
                if value is not None:
                    personal[item] = value
            birth_date = holder.birth_date if "birth_date" in items else None
            # the SSN read only to take sex or the birth date from it: named, never kept
            if "ssn" not in items and holder.ssn is not None:
                derived_from = ("ssn",)
        if self.profile.medical_fields:
            medical = self._session.read_medical(self.profile.medical_fields)
            for item in self.profile.medical_fields:
                value = _text(getattr(medical, item))
                if value is not None:
                    personal[f"{MEDICAL_PREFIX}{item}"] = value
        self.facts = replace(
            facts, personal=personal, birth_date=birth_date, derived_from=derived_from
        )
        return self.facts

    def national(self, terminal_number: str, device_number: str = "") -> str:
        """The ``iReadCardBas`` string (spec §4.3) of what this tap read, for the host API's
        callers written against the vendor DLLs.

        It needs EF06's SSN and name, so only a profile that reads both (hotel, hospital) gives
        one; the string is built from the tap's own reads, never by reading the card again.

        :param terminal_number: the security module's 终端机编号 (12 digits)
        :param device_number: 终端设备号
        :raises ValueError: the tap did not read EF05 and the holder's SSN and name
        """
        session, holder = self._session, self.holder
        if session is None or session.issuer is None or holder is None:
            raise ValueError("this scenario does not read the holder's SSN and name")
        if holder.ssn is None or holder.name is None:
            raise ValueError("this scenario does not read the holder's SSN and name")
        algorithm = CardAlgorithm.from_id(session.algorithm_id, session.issuer.card_id)
        contents = CardContents(self.historical, algorithm, session.issuer, holder)
        return ireadcardbas(contents, terminal_number=terminal_number, device_number=device_number)
