"""The transit e-purse inside an emulated card: a second application next to SSSE.

It answers what :mod:`apdu.transit` sends, byte for byte, with the layouts decided there
(``docs/payments.md``): SELECT by AID ``A000000632010105`` (FCI ``6F 84 <AID> A5 9F08 01 02``),
READ BINARY of EF ``0015`` by SFI, READ RECORD of the log EF ``0018`` by SFI (``P2 = C4``),
GET BALANCE, INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE and GET TRANSACTION PROOF.

Keys. The card's purchase key (DPK) and TAC key (DTK) derive from the **transit** roots of the
key file (TEST KEYS), two levels down: by the issuer id, then by the card serial (the last 8
bytes of the application serial). Without transit roots the purse has no keys and refuses
INITIALIZE with ``9403``; a forged persona gets keys of its own, so its MAC2 and TAC are wrong.

What it varies, as real purses do (switched per persona ``[transit]`` table and
:class:`~drivers.virtual.card.Behaviour`):

* the balance, the offline sequence and the overdraft limit (透支限额): INITIALIZE answers
  ``9401`` when the amount exceeds balance + overdraft, and the balance may go below zero
  down to the overdraft limit;
* ``locked = true``: SELECT and INITIALIZE answer ``9303``;
* a sequence at ``FFFF``: INITIALIZE answers ``9402``;
* a wrong MAC1: DEBIT answers ``9302`` and debits nothing; DEBIT without the INITIALIZE just
  before it (any other command in between forgets it): ``6901``;
* T=0 or T=1, latency, and tearing at any command — before the card acts on it
  (``tear_after``) or after it committed and before it answered (``tear_before_answer``).

A debit is atomic, as on a real card: balance, sequence, the log record and the proof of the
transaction change together, and survive power-off (EEPROM), so a torn debit is visible to the
terminal when the card returns. GET TRANSACTION PROOF answers the proof of the last purchase
for the offline sequence after it, else ``9406``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from apdu import purse, transit
from apdu.command import CommandApdu, ResponseApdu
from apdu.errors import ProtocolError
from apdu.payment import PurchaseInit
from apdu.sw import Sw
from apdu.tlv import encode_ber
from drivers.keyfile import RootKeys, TransitRoots
from drivers.virtual.card import VirtualCard, debit_request
from drivers.virtual.tables import checked_table

KEY_INDEX = 0x01
APPLICATION_TYPE_PURSE = 0x02
APPLICATION_VERSION = 0x02
SEQUENCE_MAX = 0xFFFF
OVERDRAFT_MAX = 0xFFFFFF
TAG_PROPRIETARY = 0xA5
TAG_APP_VERSION = 0x9F08
_TABLE_KEYS = {
    "balance",
    "sequence",
    "overdraft_limit",
    "serial",
    "issuer_id",
    "valid_from",
    "valid_until",
    "locked",
    "key_version",
}


class TransitTableError(ValueError):
    """A persona ``[transit]`` table that does not describe a purse."""


@dataclass(frozen=True, slots=True)
class TransitAccount:
    """A persona's ``[transit]`` table: the purse as issued.

    :param balance: fen
    :param sequence: the offline transaction sequence
    :param overdraft_limit: fen
    :param public: EF ``0015``
    :param locked: the application is locked (``9303``)
    :param key_version: the version of the purse's keys
    """

    balance: int
    sequence: int
    overdraft_limit: int
    public: transit.TransitPublicData
    locked: bool = False
    key_version: int = 1


def _int(
    table: dict[str, Any], key: str, low: int, high: int, *, default: int | None, where: str
) -> int:
    value = table.get(key, default)
    if value is None:
        raise TransitTableError(f"{where}: missing required key {key!r}")
    if type(value) is not int or not low <= value <= high:
        raise TransitTableError(f"{where}: {key} must be an integer {low}-{high}, got {value!r}")
    return value


def _hex(table: dict[str, Any], key: str, length: int, default: str, where: str) -> bytes:
    value = table.get(key, default)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) and value.isascii() else b""
    except ValueError:
        raw = b""
    if len(raw) != length:
        raise TransitTableError(f"{where}: {key} must be {2 * length} hex digits")
    return raw


def parse_transit(table: Any, city_code: str, name: str = "persona") -> TransitAccount:
    """Validate a ``[transit]`` table::

        [transit]
        balance = 5000                  # fen (required)
        sequence = 41                   # offline transaction sequence, 0-65535
        overdraft_limit = 0             # fen
        serial = "31004401000000A1B2C3" # 应用序列号, 20 hex digits
        issuer_id = "4401000000000000"  # 发卡机构标识, 16 hex digits (default: city code ‖ 0…)
        valid_from = 2021-03-15
        valid_until = 2031-03-14
        locked = false
        key_version = 1

    :param table: the table from the document
    :param city_code: the card's city code (the default issuer id)
    :param name: a label for messages
    :raises TransitTableError: unknown keys, a missing balance, values of the wrong type
    """
    where = f"{name} [transit]"
    table = checked_table(table, _TABLE_KEYS, where, TransitTableError)
    overdraft = _int(table, "overdraft_limit", 0, OVERDRAFT_MAX, default=0, where=where)
    balance = _int(table, "balance", -overdraft, purse.AMOUNT_MAX >> 1, default=None, where=where)
    dates = []
    for key in ("valid_from", "valid_until"):
        value = table.get(key)
        if value is not None and not (
            isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        ):
            raise TransitTableError(f"{where}: {key} must be a TOML date like 2031-03-14")
        dates.append(value)
    locked = table.get("locked", False)
    if not isinstance(locked, bool):
        raise TransitTableError(f"{where}: locked must be true or false")
    public = transit.TransitPublicData(
        issuer_id=_hex(table, "issuer_id", 8, city_code + "0" * 10, where),
        application_type=APPLICATION_TYPE_PURSE,
        application_version=APPLICATION_VERSION,
        serial=_hex(table, "serial", transit.SERIAL_LEN, "", where),
        valid_from=dates[0],
        valid_until=dates[1],
        issuer_data=b"\x00\x00",
    )
    return TransitAccount(
        balance=balance,
        sequence=_int(table, "sequence", 0, SEQUENCE_MAX, default=0, where=where),
        overdraft_limit=overdraft,
        public=public,
        locked=locked,
        key_version=_int(table, "key_version", 1, 0xFF, default=1, where=where),
    )


def build_fci() -> bytes:
    """The transit FCI: ``6F L 84 L <AID> A5 L 9F08 01 02`` (application version)."""
    proprietary = encode_ber(TAG_APP_VERSION, bytes([APPLICATION_VERSION]))
    body = encode_ber(0x84, transit.AID_TRANSIT) + encode_ber(TAG_PROPRIETARY, proprietary)
    return encode_ber(transit.TAG_FCI, body)


def _sw(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


@dataclass(slots=True)
class _Pending:
    """An INITIALIZE the next DEBIT may complete."""

    init: PurchaseInit
    amount: int
    terminal_number: str


class VirtualTransitPurse:
    """The purse's state and its answers (see the module docstring).

    :param account: the purse as issued
    :param roots: the key file's roots (its ``transit`` table), or ``None`` for no keys
    :param forged: keys from random roots (a forged card)
    """

    def __init__(
        self, account: TransitAccount, roots: RootKeys | None, forged: bool = False
    ) -> None:
        self.account = account
        self.public = account.public
        self.fci = build_fci()
        # persistent state (EEPROM)
        self.balance = account.balance
        self.sequence = account.sequence
        self.locked = account.locked
        self.log: list[transit.TransitLogRecord] = []  # newest first
        self.proof: tuple[int, bytes] | None = None  # (sequence after, MAC2 ‖ TAC)
        tree = roots.transit if roots is not None else None
        if forged:
            tree = TransitRoots(os.urandom(16), os.urandom(16), account.key_version)
        self.keys = tree.card_keys(self.public.factors()) if tree is not None else None
        self.pending: _Pending | None = None

    def reset(self) -> None:
        """Power-off or another application selected: the pending INITIALIZE is gone."""
        self.pending = None

    def handle(self, command: CommandApdu, t0: bool) -> ResponseApdu:
        """Answer one command sent while the transit application is selected.

        :param command: the parsed command
        :param t0: the card runs T=0 (exact Le for reads)
        """
        pending, self.pending = self.pending, None  # only the very next DEBIT may use it
        key = (command.cla, command.ins)
        if key == (0x00, transit.INS_READ_BINARY):
            return self._read_binary(command, t0)
        if key == (0x00, 0xB2):
            return self._read_record(command, t0)
        if key == (transit.CLA_PBOC, transit.INS_GET_BALANCE):
            if (command.p1, command.p2) != (0x00, transit.P2_PURSE):
                return _sw(Sw.BAD_P1_P2)
            return VirtualCard.fit_le(command, max(self.balance, 0).to_bytes(4, "big"), t0)
        if key == (transit.CLA_PBOC, transit.INS_INITIALIZE):
            return self._initialize(command)
        if key == (transit.CLA_PBOC, transit.INS_DEBIT):
            return self._debit(command, pending)
        if key == (transit.CLA_PBOC, transit.INS_GET_PROOF):
            return self._proof(command)
        return _sw(Sw.INS_NOT_SUPPORTED)

    def _read_binary(self, command: CommandApdu, t0: bool) -> ResponseApdu:
        if command.p1 != transit.P1_READ_BINARY_SFI | transit.SFI_PUBLIC:
            return _sw(Sw.FILE_NOT_FOUND)
        data = self.public.to_bytes()
        if command.p2 >= len(data):
            return _sw(0x6B00)
        return VirtualCard.fit_le(command, data[command.p2 :], t0)

    def _read_record(self, command: CommandApdu, t0: bool) -> ResponseApdu:
        if command.p2 != (transit.SFI_LOG << 3 | transit.P2_RECORD_NUMBER):
            return _sw(Sw.FILE_NOT_FOUND if command.p2 >> 3 else Sw.BAD_P1_P2)
        if not 1 <= command.p1 <= len(self.log):
            return _sw(Sw.RECORD_NOT_FOUND)
        return VirtualCard.fit_le(command, self.log[command.p1 - 1].to_bytes(), t0)

    def _initialize(self, command: CommandApdu) -> ResponseApdu:
        if (command.p1, command.p2) != (transit.P1_PURCHASE, transit.P2_PURSE):
            return _sw(Sw.BAD_P1_P2)
        if len(command.data) != 11:
            return _sw(Sw.WRONG_LENGTH)
        if self.locked:
            return _sw(Sw.APPLICATION_LOCKED)
        if command.data[0] != KEY_INDEX or self.keys is None:
            return _sw(Sw.KEY_INDEX_NOT_SUPPORTED)
        amount = int.from_bytes(command.data[1:5], "big")
        terminal = command.data[5:11].hex()
        if amount == 0 or not terminal.isdigit():
            return _sw(Sw.BAD_DATA_FIELD)
        if self.sequence >= SEQUENCE_MAX:
            return _sw(Sw.COUNTER_AT_MAXIMUM)
        if amount > self.balance + self.account.overdraft_limit:
            return _sw(Sw.INSUFFICIENT_FUNDS)
        init = PurchaseInit(
            balance=self.balance,
            sequence=self.sequence,
            key_version=self.account.key_version,
            algorithm_id=purse.PURSE_ALG_DES,
            random=os.urandom(4),
            overdraft_limit=self.account.overdraft_limit,
        )
        self.pending = _Pending(init, amount, terminal)
        return ResponseApdu(transit.init_bytes(init), Sw.OK)

    def _debit(self, command: CommandApdu, pending: _Pending | None) -> ResponseApdu:
        debit = debit_request(command)
        if isinstance(debit, ResponseApdu):
            return debit
        if pending is None or self.keys is None:
            return _sw(Sw.COMMAND_NOT_ACCEPTED)
        terminal_sequence, when = debit.terminal_sequence, debit.when
        request = purse.PurchaseRequest(
            card_random=pending.init.random,
            card_sequence=pending.init.sequence,
            amount=pending.amount,
            transaction_type=purse.TYPE_PURCHASE,
            when=when,
            key_version=pending.init.key_version,
            algorithm_id=pending.init.algorithm_id,
            factors=self.public.factors(),
        )
        dpk, dtk = self.keys
        sespk = purse.session_key(dpk, request, terminal_sequence)
        try:
            expected = purse.mac1(sespk, request, pending.terminal_number)
        except ProtocolError:
            return _sw(Sw.BAD_DATA_FIELD)
        if debit.mac1 != expected:
            return _sw(Sw.MAC_INVALID)
        # the debit: balance, sequence, log and proof change together (EEPROM)
        mac2 = purse.mac2(sespk, pending.amount)
        tac = purse.tac(
            dtk,
            purse.tac_data(
                pending.amount,
                purse.TYPE_PURCHASE,
                pending.terminal_number,
                terminal_sequence,
                when,
            ),
        )
        self.balance -= pending.amount
        self.sequence += 1
        record = transit.TransitLogRecord(
            pending.init.sequence,
            self.account.overdraft_limit,
            pending.amount,
            purse.TYPE_PURCHASE,
            pending.terminal_number,
            when,
        )
        self.log = [record, *self.log][: transit.LOG_RECORDS]
        self.proof = (self.sequence, mac2 + tac)
        return ResponseApdu(tac + mac2, Sw.OK)

    def _proof(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 != 0x00 or command.p2 not in transit.PURCHASE_TYPES:
            return _sw(Sw.BAD_P1_P2)
        if len(command.data) != 2:
            return _sw(Sw.WRONG_LENGTH)
        sequence = int.from_bytes(command.data, "big")
        if self.proof is None or self.proof[0] != sequence:
            return _sw(Sw.MAC_UNAVAILABLE)
        return ResponseApdu(self.proof[1], Sw.OK)
