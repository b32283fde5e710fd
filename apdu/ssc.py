"""The social-security application (SSSE) of one card: the session that owns the card.

Spec doc §2–§5 (人社信息函〔2012〕37号 V2.0; 3.0 changes from S4 §10.2):

* SSSE is selected by AID; its FCI names the card algorithm under ``9F0C`` → ``86``.
* EF05 发卡机构数据 (issuer data) is free to read on every generation.
* EF06 持卡人基本信息 (holder data) is free on 2.0 cards and guarded by RKSSSE on 3.0 cards.
* The card is proven genuine with INTERNAL AUTHENTICATE checked through a security module
  (§4.3); a 3.0 card's EF06 opens after EXTERNAL AUTHENTICATE with RKSSSE.
* The holder's PIN (VERIFY, CHANGE PIN; §5) opens DF04, the medical-insurance items.

A reader of the card goes through the same three steps, whatever it serves: the base facts
(:meth:`SscSession.read_issuer`, :meth:`SscSession.authenticate`), the PIN
(:meth:`SscSession.verify_pin`), then the personal fields, only those asked for
(:meth:`SscSession.read_holder`, :meth:`SscSession.read_medical`). The record codecs live in
:mod:`apdu.records`, the file commands in :mod:`apdu.files`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection

from apdu.command import CommandApdu
from apdu.errors import (
    ApduError,
    CardNotGenuine,
    ExternalAuthFailed,
    ProtocolError,
    card_state_error,
)
from apdu.files import (
    AID_SSSE,
    CLA_ISO,
    FID_EF05,
    FID_EF06,
    read_record_by_id,
    select_by_name,
    select_ef,
    send_card,
)
from apdu.medical import MedicalInfo, MedicalSession, requested_fields
from apdu.pin import INS_CHANGE_PIN, INS_VERIFY, PIN_SEPARATOR, encode_pin
from apdu.records import (
    DERIVED_FROM_SSN,
    HOLDER_ITEMS,
    ISSUER_TAGS,
    RECORD_LENGTHS,
    TAG_CARD_ID,
    TAG_SSN,
    CardAlgorithm,
    Fci,
    Generation,
    HolderData,
    IssuerData,
    holder_tags,
    parse_holder,
    parse_issuer,
)
from apdu.sam import AuthRequest, CardIdentity, SecurityModule, SecurityModuleUnavailable
from apdu.transport import Connection, send

INS_GET_CHALLENGE = 0x84
INS_INTERNAL_AUTHENTICATE = 0x88
INS_EXTERNAL_AUTHENTICATE = 0x82
CLA_PROPRIETARY = 0x80  # CHANGE PIN (S3-P5 §6.3)
P1_CHANGE_PIN = 0x01
KEY_RKSSSE = 0x0A  # S4 App B: RKSSSE, card key id 0A
CHALLENGE_LENGTH = 8
CRYPTOGRAM_LENGTH = 8
SW_TRIES_LEFT = 0x63C0  # 63Cx: x tries left
SW_AUTH_BLOCKED = 0x6983
#: INTERNAL AUTHENTICATE refusals after which the factor is taken from GET CHALLENGE: ``6984``
#: reference data (random) not usable, ``6985`` conditions of use not satisfied
SW_WANTS_CARD_RANDOM = frozenset({0x6984, 0x6985})


class SscSession:
    """The SSSE application of one card: SELECT on construction, then the spec's verbs.

    :param connection: a connection to the card (use :func:`apdu.transport.t0_chain`)
    :param historical: the ATR historical bytes (卡复位信息), the security module's level-3
        factor; needed only by :meth:`authenticate`
    :param random: where the terminal's own random bytes come from (the original data and
        process factor of the authentications, :meth:`authenticate`)
    :raises ApplicationLocked: SELECT answered ``9303``
    :raises CardBlocked: SELECT answered ``6A81``
    :raises ApduError: any other refusal, e.g. ``6A82`` for a card without SSSE
    :raises RecordFormatError: when the FCI does not parse
    """

    def __init__(
        self,
        connection: Connection,
        historical: bytes = b"",
        *,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.connection = connection
        self.historical = historical
        self.random = random
        self.fci = Fci.parse(select_by_name(connection, AID_SSSE))
        #: EF05 once :meth:`read_issuer` ran
        self.issuer: IssuerData | None = None

    @property
    def algorithm_id(self) -> int | None:
        """The algorithm byte from the FCI, if the card gave one."""
        return self.fci.algorithm_id

    # -- files and records ---------------------------------------------------------------------

    def select_ef(self, fid: int) -> None:
        """Select an elementary file of SSSE by file identifier.

        :param fid: e.g. ``0xEF05``
        :raises ApduError: when the card refuses
        """
        select_ef(self.connection, fid)

    def read_record(self, tag: int) -> bytes | None:
        """Read one record of the current EF by record identifier and return its value.

        :param tag: the record identifier (the TLV tag)
        :returns: the value, or ``None`` when the card has no such record (``6A83``)
        :raises SecurityNotSatisfied: ``6982``, the file needs an authentication first
        :raises RecordFormatError: when the answer is not the requested record
        :raises ApduError: any other refusal
        """
        return read_record_by_id(self.connection, tag, RECORD_LENGTHS[tag])

    def _read_records(self, fid: int, tags: tuple[int, ...]) -> dict[int, bytes]:
        self.select_ef(fid)
        records: dict[int, bytes] = {}
        for tag in tags:
            value = self.read_record(tag)
            if value is not None:
                records[tag] = value
        return records

    def read_issuer(self, tags: Collection[int] = ISSUER_TAGS) -> IssuerData:
        """Read EF05 发卡机构数据 (free on every generation) and keep it on the session.

        :param tags: the records to read, in EF05's order whatever the order given: all of
            them by default; a tap reads :data:`apdu.records.DECISION_TAGS` and what its answer
            needs. A record not read is an absent item.
        :raises ValueError: a tag that is no EF05 record, or no 卡识别码 (01), which every
            use of the card needs (nothing is sent)
        :raises ApduError: when the card refuses a command
        :raises RecordFormatError: for a malformed record
        """
        unknown = set(tags) - set(ISSUER_TAGS)
        if unknown or TAG_CARD_ID not in tags:
            raise ValueError(f"EF05 records must include 01 and be among {ISSUER_TAGS}")
        wanted = tuple(tag for tag in ISSUER_TAGS if tag in tags)
        self.issuer = parse_issuer(self._read_records(FID_EF05, wanted))
        return self.issuer

    def _issuer(self) -> IssuerData:
        return self.issuer if self.issuer is not None else self.read_issuer()

    def read_holder(self, items: Collection[str] | None = None) -> HolderData:
        """Read EF06 持卡人基本信息: the records of the holder items asked for, and only those.

        When sex or the birth date is asked for without the SSN and the card leaves it ``FF``
        (real cards often do), the SSN is read too, to take it from there (spec doc §2.5); the
        result then holds the SSN, and the caller keeps only what it asked for. EF05 is read
        first if it was not (the generation decides whether 4E exists). An empty set sends
        nothing.

        :param items: names from :data:`apdu.records.HOLDER_ITEMS`, ``None`` for all
        :raises ValueError: for a name that is not a holder item (nothing is sent)
        :raises SecurityNotSatisfied: on a 3.0 card before RKSSSE external authentication
        :raises ApduError: when the card refuses a command
        :raises RecordFormatError: for a malformed record
        """
        wanted = tuple(HOLDER_ITEMS) if items is None else tuple(items)
        tags = holder_tags(wanted, self._issuer().generation)
        if not tags:
            return parse_holder({})
        records = self._read_records(FID_EF06, tags)
        holder = parse_holder(records)
        derive = [item for item in DERIVED_FROM_SSN if item in wanted]
        if "ssn" in wanted or all(getattr(holder, item) is not None for item in derive):
            return holder
        value = self.read_record(TAG_SSN)
        return holder if value is None else parse_holder({**records, TAG_SSN: value})

    # -- the genuineness proof (spec doc §3.4–§3.7, §4.3) ----------------------------------------

    def identity(self) -> CardIdentity:
        """What a security module needs to know about this card (reads EF05 if not yet read).

        :raises RecordFormatError: an unknown algorithm id or a malformed EF05
        :raises ApduError: when the card refuses a command
        """
        issuer = self._issuer()
        algorithm = CardAlgorithm.from_id(self.algorithm_id, issuer.card_id)
        return CardIdentity(algorithm, issuer.card_id, self.historical, issuer.generation)

    def authenticate(self, module: SecurityModule, *, holder: bool) -> None:
        """Prove the card genuine through the module; on a 3.0 card, open EF06 if it is to be read.

        In the national order (spec doc §4.3): the module must serve the card (``-2202``,
        ``-2203``); INTERNAL AUTHENTICATE ``00 88 00 00 10 factor‖original`` — the module's
        expected answer must match (``-21``). Only when EF06 is to be read on a 3.0 card:
        GET CHALLENGE → the EXTERNAL AUTHENTICATE factor, because the card computes that
        session key from its most recent random (§3.4), then ``00 82 00 0A 10
        cryptogram‖original``. Both answers are asked of the module in one call, so that the
        two-step HSM mode, which answers both at once, fits the same contract.

        The original data of both, and the INTERNAL AUTHENTICATE process factor, are the
        terminal's own random bytes, which the spec allows (§3.4: they are bytes the terminal
        sends; only EXTERNAL AUTHENTICATE is keyed on the card's random). The vendor traces
        take them from GET CHALLENGE instead, which costs a command each and proves less: a
        card that chooses the challenge the terminal checks it with can replay an answer it
        recorded from a genuine card. A card that insists on its own random as the process
        factor (``6984`` or ``6985`` to a factor it did not give; no public source says
        whether a real card OS does) gets one GET CHALLENGE and the command again; the
        original data stays the terminal's.

        :param module: the security module
        :param holder: whether EF06 is to be read (a 3.0 card then needs RKSSSE)
        :raises SecurityModuleError: the module cannot serve the card, with its national code
        :raises CardNotGenuine: the card's answer is not the module's (``-21``)
        :raises ExternalAuthFailed: the card refused the RKSSSE cryptogram
        :raises SscardError: other card or data errors
        """
        card = self.identity()
        module.check(card)
        internal_original = self.random(CHALLENGE_LENGTH)
        internal_factor = self.random(CHALLENGE_LENGTH)
        try:
            answer = self.internal_authenticate(internal_factor, internal_original)
        except ApduError as exc:
            if exc.sw not in SW_WANTS_CARD_RANDOM:
                raise
            internal_factor = self.get_challenge()
            answer = self.internal_authenticate(internal_factor, internal_original)
        external_original = external_factor = None
        if holder and card.generation == Generation.V3:
            external_original = self.random(CHALLENGE_LENGTH)
            external_factor = self.get_challenge()  # last: the card keys EXTERNAL AUTH on it
        request = AuthRequest(
            card, internal_factor, internal_original, external_factor, external_original
        )
        response = module.authenticate(request)
        if response.internal_expected != answer:
            raise CardNotGenuine()
        if external_original is None:
            return
        if response.external_cryptogram is None:
            raise SecurityModuleUnavailable("the security module returned no RKSSSE cryptogram")
        self.external_authenticate(KEY_RKSSSE, response.external_cryptogram, external_original)

    def get_challenge(self, length: int = CHALLENGE_LENGTH) -> bytes:
        """GET CHALLENGE: the card's random, which it also keeps for its next EXTERNAL AUTHENTICATE.

        :param length: 4, 8 or 16
        :raises ProtocolError: when the card returns another length
        """
        command = CommandApdu(CLA_ISO, INS_GET_CHALLENGE, 0x00, 0x00, le=length)
        data = send_card(self.connection, command)
        if len(data) != length:
            raise ProtocolError(f"GET CHALLENGE returned {len(data)} bytes, asked for {length}")
        return data

    def internal_authenticate(self, factor: bytes, original: bytes) -> bytes:
        """INTERNAL AUTHENTICATE ``00 88 00 00 10 factor‖original 00`` → 8-byte cryptogram.

        :param factor: 8-byte process factor
        :param original: 8-byte original data
        :raises ProtocolError: when the card answers other than 8 bytes
        """
        command = CommandApdu(
            CLA_ISO, INS_INTERNAL_AUTHENTICATE, 0x00, 0x00, factor + original, 256
        )
        data = send_card(self.connection, command)
        if len(data) != CRYPTOGRAM_LENGTH:
            raise ProtocolError(f"INTERNAL AUTHENTICATE returned {len(data)} bytes, expected 8")
        return data

    def external_authenticate(self, key_id: int, cryptogram: bytes, original: bytes) -> None:
        """EXTERNAL AUTHENTICATE ``00 82 00 <key> 10 cryptogram‖original``.

        :param key_id: P2, e.g. ``0x0A`` for RKSSSE
        :param cryptogram: 8-byte authentication data
        :param original: 8-byte original data
        :raises ExternalAuthFailed: ``63Cx`` (x tries left) or ``6983`` (the key is blocked)
        :raises ApduError: any other refusal
        """
        data = cryptogram + original
        command = CommandApdu(CLA_ISO, INS_EXTERNAL_AUTHENTICATE, 0x00, key_id, data)
        send(self.connection, command, _external_auth_failed, card_state_error)

    # -- the PIN (spec doc §5; S3-P5 §6.3, §6.14) -----------------------------------------------

    def _send_pin_command(self, command: CommandApdu) -> None:
        try:
            send(self.connection, command)
        except ApduError as exc:
            state = card_state_error(exc.sw)
            # the command bytes hold the PIN: do not let them travel in the exception
            exc.command = exc.command[:4]
            exc.args = (f"SW {exc.sw:04X}",)
            if state is not None:
                raise state from None
            raise

    def verify_pin(self, pin: str) -> None:
        """VERIFY ``00 20 00 00 Lc PIN`` the holder's PIN (BCD, ``F``-padded).

        The PIN is never logged, stored or put in an exception message.

        :param pin: 4–16 digits
        :raises PinFormatError: a malformed PIN (nothing is sent)
        :raises WrongPin: ``63Cx``, with ``tries_left``
        :raises PinBlocked: ``6983``
        :raises ApplicationLocked: ``9303``
        :raises CardBlocked: ``6A81``
        """
        command = CommandApdu(CLA_ISO, INS_VERIFY, 0x00, 0x00, encode_pin(pin))
        self._send_pin_command(command)

    def change_pin(self, old: str, new: str) -> None:
        """CHANGE PIN ``80 5E 01 00 Lc old‖FF‖new``; success resets the try counter.

        :param old: the current PIN
        :param new: the new PIN
        :raises PinFormatError: a malformed PIN (nothing is sent)
        :raises WrongPin: ``63Cx``, the old PIN was wrong
        :raises PinBlocked: ``6983``
        :raises ApplicationLocked: ``9303``
        :raises CardBlocked: ``6A81``
        """
        data = encode_pin(old) + PIN_SEPARATOR + encode_pin(new)
        command = CommandApdu(CLA_PROPRIETARY, INS_CHANGE_PIN, P1_CHANGE_PIN, 0x00, data)
        self._send_pin_command(command)

    def pin_tries_left(self) -> int | None:
        """Ask for the PIN state without spending a try (VERIFY with no data).

        Case 1 ``00 20 00 00`` is used: a 5-byte ``… 00`` APDU can be taken for case 2 by some
        readers on T=0 (spec doc §8 note 8).

        :returns: tries left, or ``None`` when the card reports no PIN state (``9000``)
        :raises PinBlocked: ``6983``
        :raises ApplicationLocked: ``9303``
        :raises CardBlocked: ``6A81``
        :raises ApduError: any other refusal
        """
        try:
            send(self.connection, CommandApdu(CLA_ISO, INS_VERIFY, 0x00, 0x00))
        except ApduError as exc:
            state = card_state_error(exc.sw)
            if state is None:
                raise
            if exc.sw & 0xFFF0 == SW_TRIES_LEFT:
                return exc.sw & 0x0F
            raise state from exc
        return None

    # -- DF04, the medical-insurance items (spec doc §2.6) ---------------------------------------

    def read_medical(self, fields: Collection[str] | None = None) -> MedicalInfo:
        """Select DF04 and read EF05 医疗保险基本信息: only the records of ``fields``.

        The PIN must have been verified (:meth:`verify_pin`). DF04 is then the current
        application. An empty field set sends nothing and returns an empty
        :class:`~apdu.medical.MedicalInfo`.

        :param fields: names from :data:`apdu.medical.MEDICAL_FIELDS`, ``None`` for all
        :raises ValueError: for a name that is not a medical field (nothing is sent)
        :raises NoMedicalApplication: the card has no DF04, or DF04 no EF05 (``6A82``)
        :raises SecurityNotSatisfied: ``6982``: the PIN (or RK1DF04) is needed first
        :raises ApplicationLocked: ``9303``
        :raises CardBlocked: ``6A81``
        :raises RecordFormatError: a malformed record
        :raises ApduError: any other refusal
        """
        wanted = requested_fields(fields)
        if not wanted:
            return MedicalInfo()
        return MedicalSession(self.connection).read(wanted)


def _external_auth_failed(sw: int) -> ExternalAuthFailed | None:
    """``63Cx`` and ``6983`` answer EXTERNAL AUTHENTICATE about its key, not about the PIN."""
    if sw & 0xFFF0 == SW_TRIES_LEFT or sw == SW_AUTH_BLOCKED:
        return ExternalAuthFailed(sw)
    return None
