"""An emulated transit PSAM (交通部 PSAM): the virtual twin of :mod:`apdu.transit_psam`.

Commands (byte for byte what :class:`apdu.transit_psam.TransitPsamModule` sends):

* ``00 A4 00 00 02 10 01``: the purchase DF (``00 A4 00 00 02 3F 00``: back to the MF);
* ``00 B0 96 00 06``: the terminal number, EF ``0016`` by SFI;
* ``80 70 00 00 24 <purchase data, two factors>`` (in DF ``1001``, else ``6985``; another Lc
  ``6700``; a key version other than its own or an algorithm other than ``00`` ``6A88``):
  the card's DPK from the ``[transit] dpk`` root over the card serial and the issuer id, the
  session key, MAC1; answers terminal sequence 4 ‖ MAC1 4 and counts the sequence up;
* ``80 72 00 00 04 <MAC2>``: ``9000`` when MAC2 matches the pending purchase, ``9302`` when
  not, ``6985`` with none pending.

The terminal transaction sequence (EF ``0019``) survives power-off, and, given a state file,
the process too: it is written (atomically) before MAC1 is answered, so a sequence is never
handed out twice. PSAMs are T=0 cards by default.

A transit PSAM file (TOML), a test device holding TEST KEYS only::

    test_keys = true
    terminal_number = "440100900001"   # 12 digits, EF 0016
    roots = "test-roots.toml"          # its [transit] table holds the roots
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apdu import purse
from apdu.command import CommandApdu, ResponseApdu
from apdu.errors import ProtocolError
from apdu.psam import (
    CLA_PROPRIETARY,
    INS_CREDIT_SAM_FOR_PURCHASE,
    INS_INIT_SAM_FOR_PURCHASE,
    INS_READ_BINARY,
    TERMINAL_NUMBER_LENGTH,
)
from apdu.sw import Sw
from apdu.transit_psam import FID_TRANSIT_DF, TRANSIT_FACTORS
from config.tomlfile import read_toml
from drivers.keyfile import KeyFileError, TransitRoots, load_root_keys
from drivers.virtual.card import Behaviour, VirtualCard

FID_MF = 0x3F00
SFI_TERMINAL_INFO = 0x16
HISTORICAL_PREFIX = b"\x00VTPSM"  # fictional: category 00, "VTPSM", then the terminal number
_KEYS = {"test_keys", "terminal_number", "roots"}


class TransitPsamFileError(KeyFileError):
    """A transit PSAM file that is unreadable or does not describe one."""


@dataclass(frozen=True, slots=True)
class TransitPsamConfig:
    """What a virtual transit PSAM holds.

    :param terminal_number: 12 digits
    :param roots: the transit roots (its purchase key is the ``dpk`` root)
    """

    terminal_number: str
    roots: TransitRoots


def parse_transit_psam(data: dict[str, Any], base: Path, source: str) -> TransitPsamConfig:
    """Build the configuration from a parsed file.

    :param data: the TOML document
    :param base: the directory ``roots`` is relative to
    :param source: where it came from, for messages
    :raises TransitPsamFileError: unknown or missing keys, no transit roots, not test keys
    """
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise TransitPsamFileError(f"{source}: unknown keys {unknown}")
    if data.get("test_keys") is not True:
        raise TransitPsamFileError(f"{source}: a virtual PSAM holds test keys only")
    number = data.get("terminal_number")
    if (
        not isinstance(number, str)
        or len(number) != 12
        or not (number.isascii() and number.isdigit())
    ):
        raise TransitPsamFileError(
            f"{source}: terminal_number must be a quoted string of 12 digits"
        )
    if not isinstance(data.get("roots"), str):
        raise TransitPsamFileError(f"{source}: roots must be the path of a root-key file")
    roots = load_root_keys(base / data["roots"], require_private=False)
    if not roots.test_keys or roots.transit is None:
        raise TransitPsamFileError(f"{source}: {data['roots']} has no [transit] TEST KEYS")
    return TransitPsamConfig(number, roots.transit)


def load_transit_psam(path: str | Path) -> TransitPsamConfig:
    """Read a transit PSAM file.

    :param path: the file
    :raises TransitPsamFileError: unreadable or not a transit PSAM
    :raises KeyFileError: its root-key file is unreadable or malformed
    """
    path = Path(path)
    data = read_toml(path, TransitPsamFileError, what="transit PSAM file")
    return parse_transit_psam(data, path.parent, str(path))


def _sw(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


def mac2_answer(mac2: bytes, pending: tuple[bytes, int] | None) -> ResponseApdu:
    """A PSAM's answer to CREDIT SAM FOR PURCHASE: does the card's MAC2 prove the debit?

    :param mac2: the command's data, the card's MAC2
    :param pending: the session key and amount of the purchase MAC1 was given for, if any
        (the caller has already forgotten it: a MAC2 is checked once)
    :raises: nothing
    """
    if pending is None:
        return _sw(Sw.CONDITIONS_NOT_SATISFIED)
    if len(mac2) != 4:
        return _sw(Sw.WRONG_LENGTH)
    sespk, amount = pending
    return _sw(Sw.OK if mac2 == purse.mac2(sespk, amount) else Sw.MAC_INVALID)


class VirtualTransitPsam(VirtualCard):
    """A transit PSAM that answers like the chip (see the module docstring).

    :param config: what it holds
    :param behaviour: switchable behaviours; T=0 by default
    :param state_path: a file keeping the terminal sequence across processes, or ``None``
    """

    def __init__(
        self,
        config: TransitPsamConfig,
        behaviour: Behaviour | None = None,
        state_path: str | Path | None = None,
    ) -> None:
        number = bytes.fromhex(config.terminal_number)
        super().__init__(HISTORICAL_PREFIX + number, behaviour or Behaviour(t0=True))
        self.config = config
        self.terminal_number = number
        self.state_path = Path(state_path) if state_path is not None else None
        self.terminal_sequence = self._load_sequence()
        self.reset_state()

    def _load_sequence(self) -> int:
        if self.state_path is None or not self.state_path.exists():
            return 1
        text = self.state_path.read_text(encoding="ascii").strip()
        if not text.isdigit():
            raise TransitPsamFileError(f"{self.state_path}: not a terminal sequence")
        return int(text)

    def _store_sequence(self, value: int) -> None:
        if self.state_path is None:
            return
        temporary = self.state_path.with_suffix(".tmp")
        with open(temporary, "w", encoding="ascii") as out:
            out.write(f"{value}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.state_path)

    def reset_state(self) -> None:
        """Power-on state: the MF selected, no purchase pending."""
        self.in_purchase_df = False
        self.pending: tuple[bytes, int] | None = None

    def handle(self, command: CommandApdu) -> ResponseApdu:
        """Answer one command.

        :param command: the parsed command
        """
        key = (command.cla, command.ins)
        if key == (0x00, 0xA4):
            return self._select(command)
        if key == (0x00, INS_READ_BINARY):
            if command.p1 != 0x80 | SFI_TERMINAL_INFO:
                return _sw(Sw.FILE_NOT_FOUND)
            if command.p2 >= TERMINAL_NUMBER_LENGTH:
                return _sw(0x6B00)
            return self.fit_le(command, self.terminal_number[command.p2 :], self.behaviour.t0)
        if key == (CLA_PROPRIETARY, INS_INIT_SAM_FOR_PURCHASE):
            return self._mac1(command)
        if key == (CLA_PROPRIETARY, INS_CREDIT_SAM_FOR_PURCHASE):
            return self._mac2(command)
        return _sw(Sw.INS_NOT_SUPPORTED)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 != 0x00 or len(command.data) != 2:
            return _sw(Sw.BAD_P1_P2)
        fid = int.from_bytes(command.data, "big")
        if fid not in (FID_MF, FID_TRANSIT_DF):
            return _sw(Sw.FILE_NOT_FOUND)
        self.reset_state()
        self.in_purchase_df = fid == FID_TRANSIT_DF
        return _sw(Sw.OK)

    def _mac1(self, command: CommandApdu) -> ResponseApdu:
        self.pending = None
        if command.p1 or command.p2:
            return _sw(Sw.BAD_P1_P2)
        if not self.in_purchase_df:
            return _sw(Sw.CONDITIONS_NOT_SATISFIED)
        if purse.mac1_levels(len(command.data)) != TRANSIT_FACTORS:
            return _sw(Sw.WRONG_LENGTH)
        try:
            request = purse.parse_mac1_data(command.data)
        except ProtocolError:
            return _sw(Sw.BAD_DATA_FIELD)
        roots = self.config.roots
        if request.key_version != roots.key_version or request.algorithm_id != purse.PURSE_ALG_DES:
            return _sw(Sw.REFERENCE_DATA_NOT_FOUND)
        sequence = self.terminal_sequence
        self.terminal_sequence = (sequence + 1) & 0xFFFFFFFF
        self._store_sequence(self.terminal_sequence)  # before MAC1 leaves: never handed out twice
        sespk = purse.session_key(purse.card_purchase_key(roots.dpk, request), request, sequence)
        self.pending = (sespk, request.amount)
        mac1 = purse.mac1(sespk, request, self.config.terminal_number)
        return ResponseApdu(sequence.to_bytes(4, "big") + mac1, Sw.OK)

    def _mac2(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 or command.p2:
            return _sw(Sw.BAD_P1_P2)
        pending, self.pending = self.pending, None
        return mac2_answer(command.data, pending)
