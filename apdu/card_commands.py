"""What the terminal may send to a holder's card, and what it must never send.

A service point must never retain a card: "不得非法扣押持卡人的社会保障卡" (Jiangxi §16; also
Jiangxi §19(七), Guangdong draft §25(六)), and must not stop a holder from using it lawfully
(Guangdong draft §25(三), Jiangxi §19(四)). A terminal that blocked a card or one of its
applications, changed its PIN or wrote to its files would do exactly that, from a distance: the
card would leave the reader but be useless until the holder queued at a bank branch (where
locking, unlocking and PIN resets belong: Guangzhou §6). So the terminal reads, proves the card
genuine, and lets the holder enter — and, through ``sscard pin change`` only, change — their own
PIN (Jiangxi §9 asks for 密码修改 to be made easy). Nothing else.

The lists below are the contract, checked by two tests:

* ``tests/unit/test_card_commands.py`` finds every command APDU the non-test code can build
  (every ``CommandApdu(...)``, its CLA and INS resolved from the source) and fails on any that is
  not in :data:`READ_ONLY` or :data:`HOLDER_INITIATED`, on any in :data:`FORBIDDEN`, and on a
  holder-initiated command that some other entry point than its own command can reach;
* ``tests/emulated/test_card_retention.py`` runs the flows (read, tap for every scenario and
  refusal, PIN verify and change) against emulated cards and records every command the card
  received.

Payments joined :data:`HOLDER_INITIATED` this way: DEBIT FOR PURCHASE (``80 54``, after
INITIALIZE FOR PURCHASE ``80 50``) and the medical DEBIT FOR PURCHASE (``B0 2C``, after
``B0 28``) change the card's balance, so each is there with the reason the holder asked for it
(an amount the holder confirmed: the fare shown before the tap, the bill the holder approved
with the PIN) and the one place that reaches it: the purchase flow of :mod:`apdu.purchase`,
which every path to them passes through (``through``) until the daemon and the hospital API
give them a command of their own. Their reads (GET BALANCE, GET TRANSACTION PROOF, READ
BINARY of the transit public data) change nothing and are :data:`READ_ONLY`. Loads, overdraft
changes and CAPP cache updates stay :data:`FORBIDDEN`.

Sources: ISO/IEC 7816-4 (interindustry commands), JR/T 0025 (PBOC: issuer scripts, e-purse),
and the SSC specification as summarised in ``domain/ssc-card-spec.md`` §5 and §7 (S3-P5).
"""

from __future__ import annotations

from dataclasses import dataclass

ANY_CLASS = frozenset(range(0x100))  # whatever the class byte: no meaning of it may be sent
INTERINDUSTRY = frozenset(range(0x00, 0x80))  # CLA b8 = 0: ISO/IEC 7816-4 meanings
PROPRIETARY = frozenset({0x80, 0x84})  # PBOC / SSC proprietary, with and without SM (84)
MEDICAL = frozenset({0xB0})  # SSC medical payment (spec doc §7.1)


@dataclass(frozen=True, slots=True)
class CardCommand:
    """A command the terminal sends to a holder's card, and why it neither writes nor locks.

    :param cla: the class byte
    :param ins: the instruction byte
    :param name: the command's name in its specification
    :param why: why the terminal sends it and why the card stays the holder's
    """

    cla: int
    ins: int
    name: str
    why: str


@dataclass(frozen=True, slots=True)
class HolderCommand:
    """A command that changes the card, sent only when the holder asks for it.

    :param cla: the class byte
    :param ins: the instruction byte
    :param name: the command's name in its specification
    :param why: what it changes and why the holder may ask for it
    :param command: the only ``sscard`` command line that may reach it (``pin change``), or
        ``()`` where no command of its own exists yet
    :param through: the functions (``module.Class.method``) every path to it passes through,
        where ``command`` is empty
    """

    cla: int
    ins: int
    name: str
    why: str
    command: tuple[str, ...]
    through: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForbiddenCommand:
    """A command that writes to, blocks or locks a card: never sent, whoever asks.

    :param ins: the instruction byte
    :param clas: the class bytes under which the instruction has this meaning
    :param name: the command's name in its specification
    :param source: where it is specified
    """

    ins: int
    clas: frozenset[int]
    name: str
    source: str


READ_ONLY: tuple[CardCommand, ...] = (
    CardCommand(0x00, 0xA4, "SELECT", "chooses SSSE, DF04 or an EF; stores nothing"),
    CardCommand(0x00, 0xB2, "READ RECORD", "reads one record of EF05, EF06 or DF04 EF05"),
    CardCommand(0x00, 0xC0, "GET RESPONSE", "fetches the data a T=0 card announced with 61xx"),
    CardCommand(
        0x00, 0x84, "GET CHALLENGE", "the card draws a random number for an authentication"
    ),
    CardCommand(
        0x00,
        0x88,
        "INTERNAL AUTHENTICATE",
        "the card proves it is genuine (spec doc §3.4); no key or counter changes",
    ),
    CardCommand(
        0x00,
        0x82,
        "EXTERNAL AUTHENTICATE",
        "the terminal proves it may read a 3.0 card's EF06 (RKSSSE, spec doc §3.4); sent once "
        "per read and never retried, because a wrong cryptogram counts against the key",
    ),
    CardCommand(
        0x00,
        0x20,
        "VERIFY",
        "the PIN the holder entered, or with no data the tries left (spec doc §5); the "
        "terminal never retries a wrong PIN on its own, so only the holder can spend tries",
    ),
    CardCommand(
        0x00,
        0xB0,
        "READ BINARY",
        "reads the transit application's public data (EF 0015: issuer id, serial, validity)",
    ),
    CardCommand(0x80, 0x5C, "GET BALANCE", "reads the transit purse's balance; changes nothing"),
    CardCommand(
        0x80,
        0x5A,
        "GET TRANSACTION PROOF",
        "reads again the MAC2 and TAC of the card's last purchase, for a terminal that lost "
        "the debit's answer (anti-tearing); changes nothing",
    ),
    CardCommand(
        0xB0, 0x26, "GET BALANCE (medical)", "reads the DF04 account balances; changes nothing"
    ),
    CardCommand(
        0xB0,
        0x2E,
        "GET TRANSACTION PROOF (medical)",
        "reads again the MAC2 and TAC of the account's last debit (anti-tearing)",
    ),
)

_FLOW = "apdu.purchase"
_HOLDER_PAYS = (
    "an amount the holder confirmed: the fare shown before the holder taps, or the bill the "
    "holder approved with the PIN"
)

HOLDER_INITIATED: tuple[HolderCommand, ...] = (
    HolderCommand(
        0x80,
        0x5E,
        "CHANGE PIN",
        "the holder replaces their own PIN, proving the old one (spec doc §5, S3-P5 §6.3; "
        "Jiangxi §9)",
        ("pin", "change"),
    ),
    HolderCommand(
        0x80,
        0x50,
        "INITIALIZE FOR PURCHASE",
        "opens a transit purchase of " + _HOLDER_PAYS + "; moves no money (spec doc §7.2), and "
        "a returning torn purchase is read with it",
        (),
        (f"{_FLOW}.Purchase.start", f"{_FLOW}.recover"),
    ),
    HolderCommand(
        0x80,
        0x54,
        "DEBIT FOR PURCHASE",
        "debits the transit purse by " + _HOLDER_PAYS + " (spec doc §7.2); journaled pending "
        "before it is sent",
        (),
        (f"{_FLOW}.Purchase.send_debit",),
    ),
    HolderCommand(
        0xB0,
        0x28,
        "INITIALIZE FOR PURCHASE (medical)",
        "opens a medical settlement of " + _HOLDER_PAYS + "; moves no money (spec doc §7.1)",
        (),
        (f"{_FLOW}.Purchase.start", f"{_FLOW}.recover"),
    ),
    HolderCommand(
        0xB0,
        0x2C,
        "DEBIT FOR PURCHASE (medical)",
        "debits the personal account (个人账户) by " + _HOLDER_PAYS + ", after the holder's "
        "PIN (spec doc §7.1)",
        (),
        (f"{_FLOW}.Purchase.send_debit",),
    ),
)

_ISO = "ISO/IEC 7816-4"
_PBOC = "JR/T 0025 (PBOC), issuer script"
_SSC = "SSC spec doc §5 (S3-P5)"
FORBIDDEN: tuple[ForbiddenCommand, ...] = (
    # ISO/IEC 7816-4: writing, erasing, and the life cycle of files and of the card
    ForbiddenCommand(0x04, INTERINDUSTRY, "DEACTIVATE FILE", _ISO),
    ForbiddenCommand(0x0C, INTERINDUSTRY, "ERASE RECORD(S)", _ISO),
    ForbiddenCommand(0x0E, INTERINDUSTRY, "ERASE BINARY", _ISO),
    ForbiddenCommand(0x0F, INTERINDUSTRY, "ERASE BINARY (odd)", _ISO),
    ForbiddenCommand(0x24, ANY_CLASS, "CHANGE REFERENCE DATA / PIN CHANGE/UNBLOCK (84 24)", _ISO),
    ForbiddenCommand(0x26, INTERINDUSTRY, "DISABLE VERIFICATION REQUIREMENT", _ISO),
    ForbiddenCommand(0x28, INTERINDUSTRY, "ENABLE VERIFICATION REQUIREMENT", _ISO),
    ForbiddenCommand(0x2C, INTERINDUSTRY, "RESET RETRY COUNTER", _ISO),
    ForbiddenCommand(0x44, INTERINDUSTRY, "ACTIVATE FILE", _ISO),
    ForbiddenCommand(0x46, INTERINDUSTRY, "GENERATE ASYMMETRIC KEY PAIR", _ISO),
    ForbiddenCommand(0xD0, INTERINDUSTRY, "WRITE BINARY", _ISO),
    ForbiddenCommand(0xD1, INTERINDUSTRY, "WRITE BINARY (odd)", _ISO),
    ForbiddenCommand(0xD2, INTERINDUSTRY, "WRITE RECORD", _ISO),
    ForbiddenCommand(0xD6, INTERINDUSTRY, "UPDATE BINARY", _ISO),
    ForbiddenCommand(0xD7, INTERINDUSTRY, "UPDATE BINARY (odd)", _ISO),
    ForbiddenCommand(0xDA, INTERINDUSTRY, "PUT DATA", _ISO),
    ForbiddenCommand(0xDB, INTERINDUSTRY, "PUT DATA (odd)", _ISO),
    ForbiddenCommand(0xDC, INTERINDUSTRY, "UPDATE RECORD", _ISO),
    ForbiddenCommand(0xDD, INTERINDUSTRY, "UPDATE RECORD (odd)", _ISO),
    ForbiddenCommand(0xE0, INTERINDUSTRY, "CREATE FILE", _ISO),
    ForbiddenCommand(0xE2, INTERINDUSTRY, "APPEND RECORD", _ISO),
    ForbiddenCommand(0xE4, INTERINDUSTRY, "DELETE FILE", _ISO),
    ForbiddenCommand(0xE6, INTERINDUSTRY, "TERMINATE DF", _ISO),
    ForbiddenCommand(0xE8, INTERINDUSTRY, "TERMINATE EF", _ISO),
    ForbiddenCommand(0xFE, INTERINDUSTRY, "TERMINATE CARD USAGE", _ISO),
    # PBOC issuer scripts and e-purse writes, the SSC's own blocks (CLA 80/84)
    ForbiddenCommand(0x16, ANY_CLASS, "CARD BLOCK (84 16: every command then 6A81)", _SSC),
    ForbiddenCommand(0x18, ANY_CLASS, "APPLICATION UNBLOCK", _PBOC),
    ForbiddenCommand(0x1E, ANY_CLASS, "APPLICATION BLOCK (84 1E: SELECT then 9303)", _SSC),
    ForbiddenCommand(0xDA, PROPRIETARY, "PUT DATA", _PBOC),
    ForbiddenCommand(0xDC, PROPRIETARY, "UPDATE CAPP DATA CACHE / UPDATE RECORD", _PBOC),
    ForbiddenCommand(0x52, PROPRIETARY, "CREDIT FOR LOAD (e-purse load)", "JR/T 0025"),
    ForbiddenCommand(0x58, PROPRIETARY, "UPDATE OVERDRAW LIMIT", "JR/T 0025"),
    # the medical account is credited by the insurer, never at a terminal
    ForbiddenCommand(0x2A, MEDICAL, "CREDIT FOR LOAD (medical account 划入)", "spec doc §7.1"),
)


def allowed(cla: int, ins: int) -> CardCommand | HolderCommand | None:
    """The entry that lets the terminal send ``cla ins`` to a card, or ``None``.

    :param cla: the class byte
    :param ins: the instruction byte
    """
    entries: tuple[CardCommand | HolderCommand, ...] = (*READ_ONLY, *HOLDER_INITIATED)
    for entry in entries:
        if (entry.cla, entry.ins) == (cla, ins):
            return entry
    return None


def forbidden(cla: int, ins: int) -> ForbiddenCommand | None:
    """The forbidden command ``cla ins`` is, or ``None``.

    :param cla: the class byte
    :param ins: the instruction byte
    """
    for entry in FORBIDDEN:
        if ins == entry.ins and cla in entry.clas:
            return entry
    return None
