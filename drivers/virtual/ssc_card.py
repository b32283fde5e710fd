"""An emulated social security card (2.0 / 3.0) built from a persona.

File system (spec doc §2): MF ``3F00`` → SSSE (selected by AID) → EF05 (issuer data, free) and
EF06 (holder data; free on 2.0, RKSSSE on 3.0). Records are read by identifier
(``00 B2 tag 00``), by number (``00 B2 n 04``) or by SFI (``00 B2 tag (sfi<<3)``).
"""

from __future__ import annotations

import os

from apdu import ssc
from apdu.command import CommandApdu, ResponseApdu
from apdu.tlv import encode_ber
from drivers.virtual.card import Behaviour, VirtualCard
from drivers.virtual.persona import Persona

INS_SELECT = 0xA4
INS_READ_RECORD = 0xB2
INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_INTERNAL_AUTHENTICATE = 0x88
FID_MF = 0x3F00
KEY_RKSSSE = 0x0A
SFI_EF05 = 0x05
SFI_EF06 = 0x06
DIR_SFI = 0x1E


def build_fci(algorithm_id: int | None) -> bytes:
    """The SSSE FCI as a real 3.0 card sends it (spec doc §2.2).

    :param algorithm_id: FCI tag 86 value, or ``None`` to leave ``9F0C`` out
    """
    proprietary = encode_ber(ssc.TAG_SFI_DIR, bytes((DIR_SFI,)))
    if algorithm_id is not None:
        proprietary += encode_ber(
            ssc.TAG_ISSUER_DISCRETIONARY, encode_ber(ssc.TAG_ALGORITHM, bytes((algorithm_id,)))
        )
    body = encode_ber(ssc.TAG_DF_NAME, ssc.AID_SSSE) + encode_ber(
        ssc.TAG_FCI_PROPRIETARY, proprietary
    )
    return encode_ber(ssc.TAG_FCI, body)


class VirtualSscCard(VirtualCard):
    """A social security card that answers like the chip, byte for byte.

    :param persona: the card content
    :param behaviour: switchable behaviours (T=0, latency, tearing, locks)
    """

    def __init__(self, persona: Persona, behaviour: Behaviour | None = None) -> None:
        super().__init__(persona.historical, behaviour)
        self.persona = persona
        self.fci = build_fci(persona.algorithm_id)
        self.reset_state()

    def reset_state(self) -> None:
        """Power-on state: MF selected, no EF, no challenge, no authentication."""
        self.in_ssse = False
        self.current_ef: int | None = None
        self.challenge: bytes | None = None
        self.rkssse_authenticated = False

    @property
    def is_v3(self) -> bool:
        """Whether EF06 is guarded by RKSSSE."""
        return self.persona.generation == ssc.Generation.V3

    def handle(self, command: CommandApdu) -> ResponseApdu:
        """Answer one command (see the module docstring for the file system).

        :param command: the parsed command
        """
        if command.cla not in (0x00, 0x80, 0x84):
            return ResponseApdu(b"", 0x6E00)
        handlers = {
            INS_SELECT: self._select,
            INS_READ_RECORD: self._read_record,
            INS_GET_CHALLENGE: self._get_challenge,
            INS_EXTERNAL_AUTHENTICATE: self._external_authenticate,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            return ResponseApdu(b"", 0x6D00)
        return handler(command)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 == 0x04:
            if command.data != ssc.AID_SSSE:
                return ResponseApdu(b"", 0x6A82)
            if self.behaviour.app_locked:
                return ResponseApdu(b"", 0x9303)
            self.reset_state()
            self.in_ssse = True
            return ResponseApdu(self.fci, 0x9000)
        if len(command.data) != 2:
            return ResponseApdu(b"", 0x6700)
        fid = int.from_bytes(command.data, "big")
        if command.p1 == 0x00 and fid == FID_MF:
            self.reset_state()
            return ResponseApdu(b"", 0x9000)
        if command.p1 in (0x00, 0x02) and self.in_ssse and fid in (ssc.FID_EF05, ssc.FID_EF06):
            self.current_ef = fid
            return ResponseApdu(b"", 0x9000)
        return ResponseApdu(b"", 0x6A82)

    def _records(self, fid: int) -> dict[int, bytes]:
        return self.persona.ef05 if fid == ssc.FID_EF05 else self.persona.ef06

    def _read_record(self, command: CommandApdu) -> ResponseApdu:
        sfi, mode = command.p2 >> 3, command.p2 & 0x07
        if sfi:
            fid = {SFI_EF05: ssc.FID_EF05, SFI_EF06: ssc.FID_EF06}.get(sfi)
            if fid is None or not self.in_ssse:
                return ResponseApdu(b"", 0x6A82)
            self.current_ef = fid
        if self.current_ef is None:
            return ResponseApdu(b"", 0x6986)
        if self.current_ef == ssc.FID_EF06 and self.is_v3 and not self.rkssse_authenticated:
            return ResponseApdu(b"", 0x6982)
        records = self._records(self.current_ef)
        if mode == 0x00:  # first record whose identifier is P1
            record = records.get(command.p1)
        elif mode == 0x04:  # record number P1
            ordered = [records[tag] for tag in sorted(records)]
            record = ordered[command.p1 - 1] if 1 <= command.p1 <= len(ordered) else None
        else:
            return ResponseApdu(b"", 0x6A86)
        if record is None:
            return ResponseApdu(b"", 0x6A83)
        return self.fit_le(command, record, self.behaviour.t0)

    def _get_challenge(self, command: CommandApdu) -> ResponseApdu:
        if command.le not in (4, 8, 16):
            return ResponseApdu(b"", 0x6700)
        self.challenge = os.urandom(command.le)
        return ResponseApdu(self.challenge, 0x9000)

    def _external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        if command.p2 != KEY_RKSSSE or not self.in_ssse:
            return ResponseApdu(b"", 0x6A88)
        if len(command.data) not in (0x10, 0x11):
            return ResponseApdu(b"", 0x6700)
        if self.challenge is None:
            return ResponseApdu(b"", 0x6984)
        # The card keys arrive with the security-module work; a card without keys cannot
        # verify a cryptogram, which a real card reports as key not found.
        self.challenge = None
        return ResponseApdu(b"", 0x6A88)


def make_card(persona: Persona, behaviour: Behaviour | None = None) -> VirtualSscCard:
    """Build the emulated card for a persona.

    :param persona: the card content
    :param behaviour: switchable behaviours
    """
    return VirtualSscCard(persona, behaviour)
