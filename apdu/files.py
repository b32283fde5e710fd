"""File selection and record reading on the card (spec doc §3.2–§3.3): the commands below the
sessions.

* SELECT by name ``00 A4 04 00 Lc AID 00`` answers the FCI; SELECT by file identifier
  ``00 A4 02 00 02 FID`` answers nothing.
* READ RECORD by identifier ``00 B2 <tag> 00 <len+2>`` reads the first record of the current EF
  whose SIMPLE-TLV tag is ``tag``; ``6A83`` means the card has no such record.

:func:`send_card` turns the status words about the holder (``63Cx``, ``6983``, ``9303``,
``6A81``, ``6982``) into their errors. The SSSE and DF04 sessions (:mod:`apdu.ssc`,
:mod:`apdu.medical`) and the payment applications build on these.
"""

from __future__ import annotations

from apdu.command import CommandApdu
from apdu.errors import ApduError, SecurityNotSatisfied, card_state_error
from apdu.records import parse_record
from apdu.sw import Sw
from apdu.transport import Connection, send

AID_SSSE = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh." + GBK "社会保障"
RID_SSC = bytes.fromhex("D156000005")
FID_EF05 = 0xEF05
FID_EF06 = 0xEF06

CLA_ISO = 0x00
INS_SELECT = 0xA4
INS_READ_RECORD = 0xB2
P1_SELECT_BY_NAME = 0x04
P1_SELECT_EF = 0x02
P2_RECORD_BY_ID = 0x00  # spec doc §3.2: first record whose identifier is P1, current EF
SELECT_LE = 256  # SELECT by name asks for the whole FCI (Le = 00)


def send_card(connection: Connection, command: CommandApdu) -> bytes:
    """Send a command to the card and turn a status word about its holder into that error.

    :param connection: a connection to the card, with the T=0 chain
    :param command: the command
    :raises WrongPin: ``63Cx``
    :raises PinBlocked: ``6983``
    :raises ApplicationLocked: ``9303``
    :raises CardBlocked: ``6A81``
    :raises SecurityNotSatisfied: ``6982``
    :raises ApduError: any other status word but ``9000``
    """
    return send(connection, command, card_state_error)


def _select_command(p1: int, data: bytes) -> CommandApdu:
    # by name the card answers the FCI (Le 00); by file identifier it answers nothing
    le = SELECT_LE if p1 == P1_SELECT_BY_NAME else None
    return CommandApdu(CLA_ISO, INS_SELECT, p1, 0x00, data, le)


def select_by_name(connection: Connection, aid: bytes) -> bytes:
    """Select an application (DDF or ADF) by its AID and return the FCI bytes.

    :param connection: a connection to the card, with the T=0 chain
    :param aid: the application identifier, e.g. :data:`AID_SSSE`
    :raises ApplicationLocked: ``9303``
    :raises CardBlocked: ``6A81``
    :raises ApduError: any other refusal, e.g. ``6A82`` when the card has no such application
    """
    return send_card(connection, _select_command(P1_SELECT_BY_NAME, aid))


def select_ef(connection: Connection, fid: int) -> None:
    """Select an elementary file of the current application by file identifier.

    :param connection: a connection to the card, with the T=0 chain
    :param fid: e.g. ``0xEF05``
    :raises ApduError: when the card refuses, e.g. ``6A82`` for a file it does not have
    """
    send_card(connection, _select_command(P1_SELECT_EF, fid.to_bytes(2, "big")))


def read_record_by_id(connection: Connection, tag: int, length: int) -> bytes | None:
    """READ RECORD ``00 B2 <tag> 00 <length+2>`` in the current EF and return the value.

    :param connection: a connection to the card, with the T=0 chain
    :param tag: the record identifier (the TLV tag)
    :param length: the item's value length (spec doc §3.1: Le = value length + 2)
    :returns: the value, or ``None`` when the card has no such record (``6A83``)
    :raises SecurityNotSatisfied: ``6982`` (naming the record), the file needs an
        authentication first
    :raises RecordFormatError: when the answer is not exactly one TLV of the requested record
    :raises ApduError: any other refusal
    """
    command = CommandApdu(CLA_ISO, INS_READ_RECORD, tag, P2_RECORD_BY_ID, le=length + 2)
    try:
        data = send_card(connection, command)
    except SecurityNotSatisfied as exc:
        raise SecurityNotSatisfied(f"record {tag:02X}") from exc.__cause__
    except ApduError as exc:
        if exc.sw == Sw.RECORD_NOT_FOUND:
            return None
        raise
    return parse_record(tag, data)
