"""The medical account of DF04 inside an emulated card (spec doc §7.1, §2.6).

It answers what :mod:`apdu.medical_payment` sends, with the layouts decided there: GET BALANCE
``B0 26``, INITIALIZE ``B0 28``, DEBIT ``B0 2C``, GET TRANSACTION PROOF ``B0 2E`` and READ RECORD
of EF08 医疗交易明细 by SFI (``00 B2 <n> 44``). Every one of them needs the holder's PIN verified
in this power session (``6982`` otherwise), as the spec's "PIN first" says.

Keys (TEST KEYS): the card's DPK and DTK hang three levels below the key file's ``[des] dpk``
and ``[des] dtk`` roots, over :func:`apdu.medical_payment.medical_factors`; the SSC PSAM holds
the same DPK root (``drivers.virtual.psam``). No ``dtk`` root: the TAC is computed with a zero
key, which no platform will accept — as with a card of an unknown issuer.

What it varies (persona ``[medical_account]`` and :class:`~drivers.virtual.card.Behaviour`):
the balances, the pay year and sequence, ``locked = true`` (``9303``), an account too small
(``9401``), a wrong MAC1 (``9302``), T=0/T=1, latency and tearing before or after the debit
committed. The debit is atomic and persists across power-off: CIA falls by the account amount,
SPIP and SPFP grow by the self-paid and pooled amounts, the sequence counts up, an EF08 record
(newest first, 30 kept) and the proof are written together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from apdu import crypto, medical_payment, purse
from apdu.command import CommandApdu, ResponseApdu
from apdu.medical_payment import DebitRecord, MedicalBalances, MedicalInit
from apdu.payment import Charge
from apdu.sw import Sw
from drivers.keyfile import RootKeys
from drivers.virtual.card import VirtualCard, debit_request
from drivers.virtual.tables import checked_table

KEY_INDEX = 0x01
SEQUENCE_MAX = 0xFFFF
_TABLE_KEYS = {"balance", "self_pay", "pooled", "pay_year", "sequence", "locked", "key_version"}


class MedicalAccountTableError(ValueError):
    """A persona ``[medical_account]`` table that does not describe an account."""


@dataclass(frozen=True, slots=True)
class MedicalAccount:
    """A persona's ``[medical_account]`` table::

        [medical_account]
        balance = 120000    # CIA 个人账户, fen (required)
        self_pay = 0        # SPIP this pay year, fen
        pooled = 0          # SPFP this pay year, fen
        pay_year = 2026
        sequence = 3        # the medical transaction sequence
        locked = false
        key_version = 1

    :param balance: CIA, fen
    :param self_pay: SPIP, fen
    :param pooled: SPFP, fen
    :param pay_year: the year SPIP and SPFP count
    :param sequence: the medical transaction sequence
    :param locked: DF04's account is locked (``9303``)
    :param key_version: its keys' version
    """

    balance: int
    self_pay: int = 0
    pooled: int = 0
    pay_year: int = 2026
    sequence: int = 0
    locked: bool = False
    key_version: int = 1


def parse_medical_account(table: Any, city_code: str, name: str = "persona") -> MedicalAccount:
    """Validate a ``[medical_account]`` table (see :class:`MedicalAccount`).

    :param table: the table from the document
    :param city_code: unused (the account's keys come from 卡识别码)
    :param name: a label for messages
    :raises MedicalAccountTableError: unknown keys, a missing balance, values out of range
    """
    where = f"{name} [medical_account]"
    table = checked_table(table, _TABLE_KEYS, where, MedicalAccountTableError)
    if "balance" not in table:
        raise MedicalAccountTableError(f"{where}: missing required key 'balance'")
    limits = {
        "balance": (0, purse.AMOUNT_MAX),
        "self_pay": (0, purse.AMOUNT_MAX),
        "pooled": (0, purse.AMOUNT_MAX),
        "pay_year": (1900, 9999),
        "sequence": (0, SEQUENCE_MAX),
        "key_version": (1, 0xFF),
    }
    values: dict[str, Any] = {}
    for key, (low, high) in limits.items():
        if key in table:
            value = table[key]
            if type(value) is not int or not low <= value <= high:
                raise MedicalAccountTableError(f"{where}: {key} must be an integer {low}-{high}")
            values[key] = value
    locked = table.get("locked", False)
    if not isinstance(locked, bool):
        raise MedicalAccountTableError(f"{where}: locked must be true or false")
    return MedicalAccount(locked=locked, **values)


def _sw(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


class VirtualMedicalAccount:
    """The account's state and its answers (see the module docstring).

    :param account: the account as issued
    :param card_id: the card's 卡识别码 (the key factors)
    :param roots: the key file's roots (``[des] dpk`` and ``dtk``), or ``None`` for no keys
    :param forged: keys from a random root
    """

    def __init__(
        self, account: MedicalAccount, card_id: bytes, roots: RootKeys | None, forged: bool = False
    ) -> None:
        self.account = account
        self.balances = MedicalBalances(
            account.balance, account.self_pay, account.pooled, account.pay_year
        )
        self.sequence = account.sequence
        self.records: list[DebitRecord] = []  # newest first
        self.proof: tuple[int, bytes] | None = None
        factors = medical_payment.medical_factors(card_id)[::-1]
        dpk = roots.dpk if roots is not None else None
        dtk = (roots.dtk or bytes(16)) if roots is not None else None
        if forged:
            dpk, dtk = os.urandom(16), os.urandom(16)
        self.dpk = crypto.diversify_levels(crypto.Algorithm.DES, dpk, factors) if dpk else None
        self.dtk = crypto.diversify_levels(crypto.Algorithm.DES, dtk, factors) if dtk else None
        self.pending: tuple[MedicalInit, Charge, str] | None = None

    def reset(self) -> None:
        """Power-off or another application: the pending INITIALIZE is gone."""
        self.pending = None

    def handle(self, command: CommandApdu, t0: bool, pin_verified: bool) -> ResponseApdu:
        """Answer a ``B0`` command, or a READ RECORD of EF08, sent in DF04.

        :param command: the parsed command
        :param t0: the card runs T=0
        :param pin_verified: the holder's PIN was verified in this power session
        """
        pending, self.pending = self.pending, None
        if not pin_verified:
            return _sw(Sw.SECURITY_NOT_SATISFIED)
        if command.cla == 0x00:
            return self._read_record(command, t0)
        if command.ins == medical_payment.INS_GET_BALANCE:
            return self._balance(command, t0)
        if command.ins == medical_payment.INS_INITIALIZE:
            return self._initialize(command)
        if command.ins == medical_payment.INS_DEBIT:
            return self._debit(command, pending)
        if command.ins == medical_payment.INS_GET_PROOF:
            return self._proof(command)
        return _sw(Sw.INS_NOT_SUPPORTED)

    def _read_record(self, command: CommandApdu, t0: bool) -> ResponseApdu:
        if not 1 <= command.p1 <= len(self.records):
            return _sw(Sw.RECORD_NOT_FOUND)
        return VirtualCard.fit_le(command, self.records[command.p1 - 1].to_bytes(), t0)

    def _balance(self, command: CommandApdu, t0: bool) -> ResponseApdu:
        b = self.balances
        year = bytes.fromhex(f"{b.pay_year:04d}")
        answers = {
            medical_payment.P2_ACCOUNT: b.account.to_bytes(4, "big"),
            medical_payment.P2_SELF_PAY: b.self_pay.to_bytes(4, "big") + year,
            medical_payment.P2_POOLED: b.pooled.to_bytes(4, "big") + year,
        }
        if command.p1 != 0x00 or command.p2 not in answers:
            return _sw(Sw.BAD_P1_P2)
        return VirtualCard.fit_le(command, answers[command.p2], t0)

    def _initialize(self, command: CommandApdu) -> ResponseApdu:
        if (command.p1, command.p2) != (medical_payment.P1_PURCHASE, medical_payment.P2_INIT):
            return _sw(Sw.BAD_P1_P2)
        if len(command.data) != 0x13:
            return _sw(Sw.WRONG_LENGTH)
        if self.account.locked:
            return _sw(Sw.APPLICATION_LOCKED)
        if command.data[0] != KEY_INDEX or self.dpk is None:
            return _sw(Sw.KEY_INDEX_NOT_SUPPORTED)
        charge = Charge(*(int.from_bytes(command.data[i : i + 4], "big") for i in (1, 5, 9)))
        terminal = command.data[13:19].hex()
        if charge.amount == 0 or not terminal.isdigit():
            return _sw(Sw.BAD_DATA_FIELD)
        if self.sequence >= SEQUENCE_MAX:
            return _sw(Sw.COUNTER_AT_MAXIMUM)
        if charge.amount > self.balances.account:
            return _sw(Sw.INSUFFICIENT_FUNDS)
        init = MedicalInit(
            self.balances,
            self.sequence,
            self.account.key_version,
            purse.PURSE_ALG_DES,
            os.urandom(4),
        )
        self.pending = (init, charge, terminal)
        return ResponseApdu(init.to_bytes(), Sw.OK)

    def _debit(
        self, command: CommandApdu, pending: tuple[MedicalInit, Charge, str] | None
    ) -> ResponseApdu:
        debit = debit_request(command)
        if isinstance(debit, ResponseApdu):
            return debit
        if pending is None or self.dpk is None or self.dtk is None:
            return _sw(Sw.COMMAND_NOT_ACCEPTED)
        init, charge, terminal = pending
        terminal_sequence, when = debit.terminal_sequence, debit.when
        request = purse.PurchaseRequest(
            init.random,
            init.sequence,
            charge.amount,
            purse.TYPE_PURCHASE,
            when,
            init.key_version,
            init.algorithm_id,
            (b"\x00" * 8,),  # the factors do not enter the MACs
        )
        sespk = purse.session_key(self.dpk, request, terminal_sequence)
        if debit.mac1 != purse.mac1(sespk, request, terminal):
            return _sw(Sw.MAC_INVALID)
        mac2 = purse.mac2(sespk, charge.amount)
        tac = purse.tac(
            self.dtk, medical_payment.tac_data(charge, terminal, terminal_sequence, when)
        )
        b = self.balances
        self.balances = MedicalBalances(
            b.account - charge.amount,
            b.self_pay + charge.self_pay,
            b.pooled + charge.pooled,
            b.pay_year,
        )
        self.sequence += 1
        record = DebitRecord(
            init.sequence, medical_payment.TYPE_PURCHASE_AN, terminal, when, charge
        )
        self.records = [record, *self.records][: medical_payment.RECORDS_MAX]
        self.proof = (self.sequence, mac2 + tac)
        return ResponseApdu(tac + mac2, Sw.OK)

    def _proof(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 != 0x00 or command.p2 != purse.TYPE_PURCHASE:
            return _sw(Sw.BAD_P1_P2)
        if len(command.data) != 2:
            return _sw(Sw.WRONG_LENGTH)
        if self.proof is None or self.proof[0] != int.from_bytes(command.data, "big"):
            return _sw(Sw.MAC_UNAVAILABLE)
        return ResponseApdu(self.proof[1], Sw.OK)
