"""An emulated social security card (2.0 / 3.0) built from a persona.

File system (spec doc §2): MF ``3F00`` → SSSE (selected by AID) → EF05 (issuer data, free) and
EF06 (holder data; free on 2.0, RKSSSE on 3.0). Records are read by identifier
(``00 B2 tag 00``), by number (``00 B2 n 04``) or by SFI (``00 B2 tag (sfi<<3)``).

A persona with a ``[medical]`` table also has the ADF DF04 社会保险信息区2 (spec doc §2.6),
selected by its AID ``D1 56 00 00 05 03`` from SSSE (or from DF04 itself); its FCI has the
SSSE FCI's layout without the DIR SFI. DF04 holds EF05 医疗保险基本信息, read like the SSSE
files; READ RECORD answers ``6982`` until the PIN was verified in this power session (RK1DF04
is not emulated). Like a real card's security status, the verified PIN survives the SELECT of
DF04 and is lost at power-off and at the next SELECT of SSSE or the MF. An application-locked
card answers ``9303`` to the SELECT of DF04 as to that of SSSE; a persona without
``[medical]`` answers ``6A82``.

Keys (spec doc §3.4–§3.6). Given root keys, the card's IRK and RKSSSE derive from them over
3 levels (province, city, card factors) exactly as a real card's do. Without roots the card
has no keys and answers ``6A88`` to INTERNAL and EXTERNAL AUTHENTICATE. A persona with
``[keys] forged = true`` gets keys from a root drawn at random for each card object: it
answers every command, only its cryptograms are wrong. SSF33 is not public, so an SSF33 card
(including a 1.0 card of region 11 whose FCI names no algorithm) cannot be emulated
cryptographically: it answers ``6A81`` (function not supported) to both authentications.

* INTERNAL AUTHENTICATE ``00 88 00 00 10|11 factor‖original[‖key version] [Le]``: the session
  key from the IRK and the process factor, then the authentication data of the original.
  Outside SSSE ``6985``.
* EXTERNAL AUTHENTICATE ``00 82 00 0A 10|11 cryptogram‖original[‖key version]``: the session
  key comes from the card's **last** GET CHALLENGE (spec doc §3.4), which every attempt
  consumes (none: ``6984``). Success opens EF06 until power-off or the next SELECT of SSSE;
  failure counts down the RKSSSE try counter (``63Cx``), and at 0 the key is blocked
  (``6983``). Outside SSSE, or a key id other than ``0A``: ``6A88`` (RKSSSE is an SSSE key).
  A key-version byte is accepted and not checked.
* VERIFY ``00 20 00 00 Lc PIN`` and CHANGE PIN ``80 5E 01 00 Lc old‖FF‖new`` (spec doc §5): a
  wrong PIN counts down (``63Cx``), a blocked PIN answers ``6983`` even to the right PIN, VERIFY
  with no data reports ``63Cx`` without counting. A persona without ``[pin]`` answers ``6A88``;
  on an application-locked card both answer ``9303``, as the SELECT would. Malformed PIN data
  answers ``6A80`` and costs no try.

Payments (spec doc §7). A persona with ``[transit]`` also has the transit e-purse
(:mod:`drivers.virtual.transit_purse`), selected by its AID from anywhere; while it is selected
every command but SELECT goes to it. A persona with ``[medical_account]`` has the medical
account in DF04 (:mod:`drivers.virtual.medical_account`): CLA ``B0`` and READ RECORD of EF08
by SFI go to it while DF04 is selected, behind the holder's PIN.

The try counters live in EEPROM on a real card: here they survive :meth:`power_on` and last
as long as the card object. The PIN and the keys are never logged.
"""

from __future__ import annotations

import os

from apdu import crypto, files, medical, records
from apdu.command import CommandApdu, ResponseApdu
from apdu.medical_payment import CLA_MEDICAL, SFI_DEBIT_RECORDS
from apdu.pin import MAX_PIN_DIGITS, MIN_PIN_DIGITS, PinFormatError, decode_pin
from apdu.tlv import encode_ber
from apdu.transit import AID_TRANSIT
from drivers.keyfile import KEY_LENGTH, RootKeys, crypto_algorithm
from drivers.virtual.card import Behaviour, VirtualCard
from drivers.virtual.medical_account import VirtualMedicalAccount
from drivers.virtual.persona import Persona, PersonaError
from drivers.virtual.transit_purse import VirtualTransitPurse

INS_SELECT = 0xA4
INS_READ_RECORD = 0xB2
INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_INTERNAL_AUTHENTICATE = 0x88
INS_VERIFY = 0x20
INS_CHANGE_PIN = 0x5E
FID_MF = 0x3F00
KEY_IRK = 0x00  # S3-P9 附录B: IRK is user-card key 00
KEY_RKSSSE = 0x0A  # S4 App B: RKSSSE, card key id 0A
SFI_EF05 = 0x05
SFI_EF06 = 0x06
DIR_SFI = 0x1E
ROOT_LEVELS = 3  # national roots: L1 province, L2 city, L3 card (spec doc §3.5)
AUTH_LC = (0x10, 0x11)  # 8 + 8 bytes, optionally a key-version byte (spec doc §3.4)
VERIFY_LC = range(2, 9)  # spec doc §5: Lc 02–08
CHANGE_PIN_LC = range(3, 0x12)  # spec doc §5: Lc 03–11
P1_CHANGE_PIN = 0x01
PIN_SEPARATOR = 0xFF

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_TRIES_LEFT = 0x63C0
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_NO_CHALLENGE = 0x6984
SW_CONDITIONS = 0x6985
SW_NO_CURRENT_EF = 0x6986
SW_WRONG_DATA = 0x6A80
SW_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_KEY_NOT_FOUND = 0x6A88
SW_INS_UNKNOWN = 0x6D00
SW_CLA_UNKNOWN = 0x6E00
SW_APP_LOCKED = 0x9303


def build_fci(algorithm_id: int | None) -> bytes:
    """The SSSE FCI as a real 3.0 card sends it (spec doc §2.2).

    :param algorithm_id: FCI tag 86 value, or ``None`` to leave ``9F0C`` out
    """
    proprietary = encode_ber(records.TAG_SFI_DIR, bytes((DIR_SFI,)))
    if algorithm_id is not None:
        proprietary += encode_ber(
            records.TAG_ISSUER_DISCRETIONARY,
            encode_ber(records.TAG_ALGORITHM, bytes((algorithm_id,))),
        )
    body = encode_ber(records.TAG_DF_NAME, files.AID_SSSE) + encode_ber(
        records.TAG_FCI_PROPRIETARY, proprietary
    )
    return encode_ber(records.TAG_FCI, body)


def build_df04_fci(algorithm_id: int | None) -> bytes:
    """The DF04 FCI: the SSSE FCI's layout (spec doc §2.2) without the DIR SFI.

    No trace of a real card's DF04 FCI is known (spec doc §9); an ADF has no DIR file.

    :param algorithm_id: FCI tag 86 value, or ``None`` to leave ``9F0C`` out
    """
    proprietary = b""
    if algorithm_id is not None:
        proprietary = encode_ber(
            records.TAG_ISSUER_DISCRETIONARY,
            encode_ber(records.TAG_ALGORITHM, bytes((algorithm_id,))),
        )
    body = encode_ber(records.TAG_DF_NAME, medical.AID_DF04) + encode_ber(
        records.TAG_FCI_PROPRIETARY, proprietary
    )
    return encode_ber(records.TAG_FCI, body)


def _sw(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


def derive_card_keys(
    persona: Persona, algorithm: records.CardAlgorithm, roots: RootKeys | None
) -> tuple[bytes | None, bytes | None]:
    """The card's IRK and RKSSSE: from the roots, from a random root if forged, or none.

    :param persona: the card content (city code, historical bytes, ``[keys]``)
    :param algorithm: the card algorithm (not SSF33)
    :param roots: the national roots, or ``None``
    :returns: ``(irk, rkssse)``; either is ``None`` when there is no root for it
    :raises PersonaError: when the historical bytes are too short to give a card factor
    """
    if persona.keys.forged:
        # a forged card has keys of its own, unrelated to any root a module holds
        roots = RootKeys(
            irk={algorithm: os.urandom(KEY_LENGTH)}, rkssse={algorithm: os.urandom(KEY_LENGTH)}
        )
    if roots is None:
        return None, None
    try:
        irk = roots.card_key(
            "irk", algorithm, persona.city_code, persona.historical, levels=ROOT_LEVELS
        )
        rkssse = roots.card_key(
            "rkssse", algorithm, persona.city_code, persona.historical, levels=ROOT_LEVELS
        )
    except ValueError as exc:
        raise PersonaError(f"{persona.name}: cannot derive the card keys: {exc}") from None
    return irk, rkssse


class VirtualSscCard(VirtualCard):
    """A social security card that answers like the chip, byte for byte.

    :param persona: the card content
    :param behaviour: switchable behaviours (T=0, latency, tearing, locks)
    :param roots: root keys to derive the card's IRK and RKSSSE from; ``None`` for a card
        without keys
    :raises PersonaError: when keys are asked for and the historical bytes cannot give them
    """

    def __init__(
        self, persona: Persona, behaviour: Behaviour | None = None, roots: RootKeys | None = None
    ) -> None:
        super().__init__(persona.historical, behaviour)
        self.persona = persona
        self.fci = build_fci(persona.algorithm_id)
        self.df04_fci = build_df04_fci(persona.algorithm_id)
        self.algorithm = records.CardAlgorithm.from_id(
            persona.algorithm_id, bytes.fromhex(persona.city_code)
        )
        self.irk: bytes | None = None
        self.rkssse: bytes | None = None
        if self.algorithm != records.CardAlgorithm.SSF33:
            self.irk, self.rkssse = derive_card_keys(persona, self.algorithm, roots)
        # persistent state (EEPROM on a real card): survives power_on
        self.rkssse_tries = persona.keys.rkssse_tries
        self._pin = persona.pin.value if persona.pin else None
        self.pin_tries = persona.pin.tries if persona.pin else 0
        forged = persona.keys.forged
        self.transit = (
            VirtualTransitPurse(persona.transit, roots, forged) if persona.transit else None
        )
        card_id = persona.ef05[records.TAG_CARD_ID][2:]
        self.medical_account = (
            VirtualMedicalAccount(persona.medical_account, card_id, roots, forged)
            if persona.medical_account
            else None
        )
        self.reset_state()

    def reset_state(self) -> None:
        """Power-on state: MF selected, no EF, no challenge, no authentication."""
        self.in_ssse = False
        self.in_df04 = False
        self.current_ef: int | None = None
        self.challenge: bytes | None = None
        self.rkssse_authenticated = False
        self.pin_verified = False
        self.in_transit = False
        for payment in (getattr(self, "transit", None), getattr(self, "medical_account", None)):
            if payment is not None:
                payment.reset()

    @property
    def is_v3(self) -> bool:
        """Whether EF06 is guarded by RKSSSE."""
        return self.persona.generation == records.Generation.V3

    @property
    def has_medical(self) -> bool:
        """Whether the card has DF04 (the persona has a ``[medical]`` table)."""
        return self.persona.medical is not None

    @property
    def has_pin(self) -> bool:
        """Whether the card holds a PIN."""
        return self._pin is not None

    def handle(self, command: CommandApdu) -> ResponseApdu:
        """Answer one command (see the module docstring for the file system).

        :param command: the parsed command
        """
        if command.cla not in (0x00, 0x80, 0x84, CLA_MEDICAL):
            return _sw(SW_CLA_UNKNOWN)
        if self.in_transit and self.transit is not None and command.ins != INS_SELECT:
            return self.transit.handle(command, self.behaviour.t0)
        if self.in_df04 and self.medical_account is not None and _is_medical(command):
            return self.medical_account.handle(command, self.behaviour.t0, self.pin_verified)
        if command.cla == CLA_MEDICAL:
            return _sw(SW_CLA_UNKNOWN if not self.in_df04 else SW_FILE_NOT_FOUND)
        handlers = {
            INS_SELECT: self._select,
            INS_READ_RECORD: self._read_record,
            INS_GET_CHALLENGE: self._get_challenge,
            INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
            INS_EXTERNAL_AUTHENTICATE: self._external_authenticate,
            INS_VERIFY: self._verify,
            INS_CHANGE_PIN: self._change_pin,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            return _sw(SW_INS_UNKNOWN)
        return handler(command)

    # -- files -------------------------------------------------------------------------------

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 == 0x04:
            if command.data == AID_TRANSIT:
                return self._select_transit()
            if command.data == medical.AID_DF04:
                return self._select_df04()
            if command.data != files.AID_SSSE:
                return _sw(SW_FILE_NOT_FOUND)
            if self.behaviour.app_locked:
                return _sw(SW_APP_LOCKED)
            self.reset_state()
            self.in_ssse = True
            return ResponseApdu(self.fci, SW_OK)
        if len(command.data) != 2:
            return _sw(SW_WRONG_LENGTH)
        fid = int.from_bytes(command.data, "big")
        if command.p1 == 0x00 and fid == FID_MF:
            self.reset_state()
            return _sw(SW_OK)
        if command.p1 in (0x00, 0x02) and fid in self._files():
            self.current_ef = fid
            return _sw(SW_OK)
        return _sw(SW_FILE_NOT_FOUND)

    def _select_transit(self) -> ResponseApdu:
        if self.transit is None:
            return _sw(SW_FILE_NOT_FOUND)
        if self.behaviour.app_locked or self.transit.locked:
            return _sw(SW_APP_LOCKED)
        self.reset_state()
        self.in_transit = True
        return ResponseApdu(self.transit.fci, SW_OK)

    def _select_df04(self) -> ResponseApdu:
        if not self.has_medical:
            return _sw(SW_FILE_NOT_FOUND)
        if self.behaviour.app_locked:
            return _sw(SW_APP_LOCKED)
        if not (self.in_ssse or self.in_df04):
            return _sw(SW_FILE_NOT_FOUND)  # DF04 lies under SSSE
        # leaving SSSE for its child keeps the security status (the verified PIN)
        self.in_ssse, self.in_df04, self.current_ef = False, True, None
        if self.medical_account is not None:
            self.medical_account.reset()
        return ResponseApdu(self.df04_fci, SW_OK)

    def _files(self) -> dict[int, dict[int, bytes]]:
        """The EFs of the current application: FID → records (tag → whole TLV)."""
        if self.in_ssse:
            return {files.FID_EF05: self.persona.ef05, files.FID_EF06: self.persona.ef06}
        if self.in_df04 and self.persona.medical is not None:
            return {files.FID_EF05: self.persona.medical}
        return {}

    def _read_record(self, command: CommandApdu) -> ResponseApdu:
        sfi, mode = command.p2 >> 3, command.p2 & 0x07
        if sfi:
            fid = {SFI_EF05: files.FID_EF05, SFI_EF06: files.FID_EF06}.get(sfi)
            if fid is None or fid not in self._files():
                return _sw(SW_FILE_NOT_FOUND)
            self.current_ef = fid
        if self.current_ef is None:
            return _sw(SW_NO_CURRENT_EF)
        if self.current_ef == files.FID_EF06 and self.is_v3 and not self.rkssse_authenticated:
            return _sw(SW_SECURITY_NOT_SATISFIED)
        if self.in_df04 and not self.pin_verified:  # spec doc §2.6: PIN or RK1DF04
            return _sw(SW_SECURITY_NOT_SATISFIED)
        records = self._files()[self.current_ef]
        if mode == 0x00:  # first record whose identifier is P1
            record = records.get(command.p1)
        elif mode == 0x04:  # record number P1
            ordered = [records[tag] for tag in sorted(records)]
            record = ordered[command.p1 - 1] if 1 <= command.p1 <= len(ordered) else None
        else:
            return _sw(SW_WRONG_P1P2)
        if record is None:
            return _sw(SW_RECORD_NOT_FOUND)
        return self.fit_le(command, record, self.behaviour.t0)

    # -- authentication (spec doc §3.4, §3.6) ------------------------------------------------

    def _get_challenge(self, command: CommandApdu) -> ResponseApdu:
        if command.le not in (4, 8, 16):
            return _sw(SW_WRONG_LENGTH)
        self.challenge = os.urandom(command.le)
        return ResponseApdu(self.challenge, SW_OK)

    def _internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        if not self.in_ssse:
            return _sw(SW_CONDITIONS)
        if command.p1 != 0x00:
            return _sw(SW_WRONG_P1P2)
        if command.p2 != KEY_IRK:
            return _sw(SW_KEY_NOT_FOUND)
        irk = self._auth_key(command, self.irk)
        if isinstance(irk, ResponseApdu):
            return irk
        factor, original = command.data[:8], command.data[8:16]
        if self.behaviour.factor_from_challenge and factor != (self.challenge or b"")[:8]:
            return _sw(SW_NO_CHALLENGE)
        alg = crypto_algorithm(self.algorithm)
        session = crypto.session_key(alg, irk, factor)
        return ResponseApdu(crypto.auth_data(alg, session, original), SW_OK)

    def _auth_key(self, command: CommandApdu, key: bytes | None) -> bytes | ResponseApdu:
        """The key an INTERNAL or EXTERNAL AUTHENTICATE uses, or the answer that refuses it
        first: data of another length, an SSF33 card (not emulated), no such key."""
        if len(command.data) not in AUTH_LC:
            return _sw(SW_WRONG_LENGTH)
        if self.algorithm == records.CardAlgorithm.SSF33:
            return _sw(SW_NOT_SUPPORTED)
        if key is None:
            return _sw(SW_KEY_NOT_FOUND)
        return key

    def _external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        if command.p2 != KEY_RKSSSE or not self.in_ssse:
            return _sw(SW_KEY_NOT_FOUND)
        rkssse = self._auth_key(command, self.rkssse)
        if isinstance(rkssse, ResponseApdu):
            return rkssse
        challenge, self.challenge = self.challenge, None  # every attempt consumes the random
        if self.rkssse_tries == 0:
            return _sw(SW_AUTH_BLOCKED)
        alg = crypto_algorithm(self.algorithm)
        if challenge is None or len(challenge) > alg.block_size:
            # spec doc §3.4: the session input is the card's currently valid random (a DES
            # card has no valid 16-byte random)
            return _sw(SW_NO_CHALLENGE)
        cryptogram, original = command.data[:8], command.data[8:16]
        session = crypto.session_key(alg, rkssse, challenge)
        if crypto.auth_data(alg, session, original) != cryptogram:
            self.rkssse_authenticated = False
            self.rkssse_tries -= 1
            return _sw(SW_TRIES_LEFT | self.rkssse_tries)
        self.rkssse_tries = self.persona.keys.rkssse_tries
        self.rkssse_authenticated = True
        return _sw(SW_OK)

    # -- PIN (spec doc §5) -------------------------------------------------------------------

    def _pin_refusal(self, command: CommandApdu, p1: int, lengths: range) -> int | None:
        """The status word that refuses a PIN command before the PIN is looked at, if any."""
        if self.behaviour.app_locked:
            return SW_APP_LOCKED
        if command.p1 != p1 or command.p2 != 0x00:
            return SW_WRONG_P1P2
        if self._pin is None:
            return SW_KEY_NOT_FOUND
        if command.data and len(command.data) not in lengths:
            return SW_WRONG_LENGTH
        if self.pin_tries == 0:
            return SW_AUTH_BLOCKED
        return None

    def _wrong_pin(self) -> ResponseApdu:
        self.pin_verified = False
        self.pin_tries -= 1
        return _sw(SW_TRIES_LEFT | self.pin_tries)

    def _pin_ok(self) -> None:
        self.pin_tries = self.persona.pin.tries if self.persona.pin else 0
        self.pin_verified = True

    def _verify(self, command: CommandApdu) -> ResponseApdu:
        refusal = self._pin_refusal(command, 0x00, VERIFY_LC)
        if refusal is not None:
            return _sw(refusal)
        if not command.data:  # Lc = 0: report the counter without spending a try
            return _sw(SW_TRIES_LEFT | self.pin_tries)
        try:
            pin = decode_pin(command.data)
        except PinFormatError:
            return _sw(SW_WRONG_DATA)
        if pin != self._pin:
            return self._wrong_pin()
        self._pin_ok()
        return _sw(SW_OK)

    def _change_pin(self, command: CommandApdu) -> ResponseApdu:
        refusal = self._pin_refusal(command, P1_CHANGE_PIN, CHANGE_PIN_LC)
        if refusal is not None:
            return _sw(refusal)
        if not command.data:
            return _sw(SW_WRONG_LENGTH)
        separator = command.data.find(PIN_SEPARATOR)
        if separator <= 0:
            return _sw(SW_WRONG_DATA)
        try:
            old = decode_pin(command.data[:separator])
            new = decode_pin(command.data[separator + 1 :])
        except PinFormatError:
            return _sw(SW_WRONG_DATA)
        if not MIN_PIN_DIGITS <= len(new) <= MAX_PIN_DIGITS:
            return _sw(SW_WRONG_DATA)
        if old != self._pin:
            return self._wrong_pin()
        self._pin = new
        self._pin_ok()
        return _sw(SW_OK)


def _is_medical(command: CommandApdu) -> bool:
    """A command for the DF04 medical account: CLA B0, or READ RECORD of EF08 by SFI."""
    if command.cla == CLA_MEDICAL:
        return True
    return command.ins == INS_READ_RECORD and command.p2 >> 3 == SFI_DEBIT_RECORDS


def make_card(
    persona: Persona, behaviour: Behaviour | None = None, roots: RootKeys | None = None
) -> VirtualSscCard:
    """Build the emulated card for a persona.

    :param persona: the card content
    :param behaviour: switchable behaviours
    :param roots: root keys for the card's IRK and RKSSSE, or ``None``
    """
    return VirtualSscCard(persona, behaviour, roots)
