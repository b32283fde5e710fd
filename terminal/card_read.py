"""Read a card for one scenario: the genuineness proof, then only the items the profile declares.

The order follows the national flow (spec doc §4.3): SELECT SSSE and EF05 (free; what every
scenario needs to decide: region, card number, category, validity), the security module's
INTERNAL AUTHENTICATE (and, when the profile reads EF06, RKSSSE EXTERNAL AUTHENTICATE on 3.0
cards), then — only if the profile lists them — the EF06 records for its holder fields, the
PIN and the DF04 EF05 records for its medical fields: the three steps of
:class:`apdu.ssc.SscSession`. A transit profile with no personal fields never selects EF06 and
never asks the card for EXTERNAL AUTHENTICATE.

An electronic card's code goes through the same three steps (:class:`CredentialRead`; the
code's side is :class:`CodeRead`), so the pipeline decides both alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from apdu.errors import SscardError
from apdu.national import ireadcardbas
from apdu.pin import PinFormatError
from apdu.records import (
    DECISION_TAGS,
    TAG_ISSUE_DATE,
    CardAlgorithm,
    CardContents,
    Generation,
    HolderData,
)
from apdu.sam import SecurityModule
from apdu.ssc import SscSession
from apdu.transport import Connection
from offline_store import canonical_card_id, canonical_ecard_id
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


class CredentialRead(Protocol):
    """The credential side of one tap — a card (:class:`ScenarioRead`) or an e-card code — in
    the three steps :meth:`terminal.pipeline.Pipeline.process` interleaves with its checks:
    base facts, PIN, personal fields. Each step raises an :class:`~apdu.errors.SscardError`
    the outcome table (:mod:`terminal.outcomes`) turns into a refusal.
    """

    def base(self) -> CardFacts:
        """What every scenario decides from: region, category, validity, genuineness."""
        ...

    def credential_id(self, facts: CardFacts) -> str:
        """The credential's canonical identifier, which the store keys into its hash (the
        deny list's and the journal's credential token)."""
        ...

    def verify_pin(self, pin: str | None) -> None:
        """The holder's PIN, where the profile or the service needs it."""
        ...

    def personal(self, facts: CardFacts) -> CardFacts:
        """The profile's personal fields, for a credential that passed every check."""
        ...


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
        issuer = session.read_issuer(self.issuer_tags())
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

    def issuer_tags(self) -> tuple[int, ...]:
        """The EF05 records this tap reads: those a decision needs, and 05 发卡日期 only where
        the tap can answer with the ``iReadCardBas`` string (:meth:`national`), which carries it.
        """
        if {"ssn", "name"} <= set(self.profile.holder_fields):
            return (*DECISION_TAGS, TAG_ISSUE_DATE)
        return DECISION_TAGS

    def credential_id(self, facts: CardFacts) -> str:
        """The card's canonical identifier: its region and card number.

        :param facts: what :meth:`base` returned
        :raises SscardError: a card without a card number
        """
        if facts.card_number is None:
            raise SscardError("the card has no card number (EF05 record 07)")
        return canonical_card_id(facts.region_code, facts.card_number)

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


@dataclass(frozen=True)
class CodeRead:
    """The credential side of a verified code, in the card's three steps
    (:class:`terminal.card_read.CredentialRead`), so the pipeline decides it as a card.

    * base facts: the credential's region, category and validity; genuine, since its
      signatures were verified (offline against the trust list, or by the platform);
    * PIN: an e-card has no card PIN. The holder's own authentication is the e-card's: the
      code is signed by a key the holder's device keeps, over a timestamp seconds old
      (docs/qr-format.md §5), and the e-card has the same force as the card. A profile with
      ``pin = true`` (a hospital) accepts it without one (docs/policy.md §7.1);
    * personal fields: the identity the code carried (sealed to this terminal's audience key,
      or given by the platform), only the profile's holder items; the DF04 medical items live
      on a card's chip only, and an e-card decision names them under ``not_on_ecard``.

    :param profile: the scenario profile (its fields decide what is taken)
    :param token: the credential's token (its canonical identifier's part)
    :param region: its issuing region
    :param category: its 卡类别
    :param expiry_date: the last day of its validity
    :param identity: the identity items it carried (empty when none)
    :param module: who verified it: ``ecard`` (offline), ``platform`` (a national code)
    """

    profile: Profile
    token: str
    region: str
    category: str | None
    expiry_date: dt.date | None
    identity: Mapping[str, object]
    module: str

    @property
    def credential(self) -> str:
        """The credential's kind, in the decision's detail: ``ecard`` or ``national``."""
        return "national" if self.module == "platform" else "ecard"

    @property
    def detail(self) -> dict[str, object]:
        """What every decision on the code adds to its detail: the credential's kind, and the
        profile's DF04 medical items, which only a card's chip holds (``not_on_ecard``)."""
        detail: dict[str, object] = {"credential": self.credential}
        if self.profile.medical_fields:
            detail["not_on_ecard"] = [MEDICAL_PREFIX + f for f in self.profile.medical_fields]
        return detail

    @property
    def missing(self) -> list[str]:
        """The profile's holder items the code did not carry."""
        return sorted(set(self.profile.holder_fields) - set(self.identity))

    def base(self) -> CardFacts:
        """The credential's facts, without personal fields.

        :raises: nothing
        """
        return CardFacts(
            region_code=self.region,
            card_number=None,
            category=self.category,
            expiry_date=self.expiry_date,
            generation=None,
            genuine=True,
            module=self.module,
        )

    def credential_id(self, facts: CardFacts | None = None) -> str:
        """The credential's canonical identifier (``ecard:<token>``).

        :param facts: unused: the token is the code's, not the facts'
        :raises SscardError: an empty or malformed token
        """
        return canonical_ecard_id(self.token)

    def verify_pin(self, pin: str | None) -> None:
        """Nothing to verify: the e-card's own authentication stands in (see the class).

        :param pin: ignored
        :raises: nothing
        """

    def personal(self, facts: CardFacts) -> CardFacts:
        """The profile's holder items from the code's identity.

        :param facts: what :meth:`base` returned
        :raises: nothing
        """
        wanted = self.profile.holder_fields
        personal = {k: str(self.identity[k]) for k in wanted if k in self.identity}
        birth = _date(self.identity.get("birth_date")) if "birth_date" in wanted else None
        return replace(facts, personal=personal, birth_date=birth)


def _date(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
