"""Known-answer vectors of the SSC records and their APDUs, shared by test_records and test_ssc.

Known answers: the FCI is the real 3.0 card of spec doc §2.2 (trace S5); the card id, card
number, dates and SSN are those of the interface spec's own iReadCardBas example (spec doc
§4.3); the EF06 record shapes (``0A 01 32``, ``0B 01 FF`` …) are the masked 2.0 card of spec
doc §3.3. Not collected by pytest (the name does not start with ``test_``).
"""

from __future__ import annotations

from scripted_connection import hexbytes

AID_SSSE = "7378312E73682EC9E7BBE1B1A3D5CF"
# spec doc §2.2: the FCI of a real 3.0 card (DIR SFI 1E, algorithm 03 = SM4), without 9000.
FCI_3_0 = f"6F1C840F{AID_SSSE}A50988011E9F0C03860103"
# The same without 9F0C: the algorithm then follows from the region code.
FCI_NO_ALGORITHM = f"6F16840F{AID_SSSE}A50388011E"

CARD_ID = "639900D15600000500BF7C7A48FB4966"  # spec doc §4.3 example
SSN = "111111198101011110"  # spec doc §4.3 example: born 1981-01-01, digit 17 odd → male
ZHANG_SAN = "张三".encode("gb18030")  # D5C5 C8FD
HISTORICAL = hexbytes("00814E43238697159900BF7C7A")

# spec doc §3.3, in order
SELECT_SSSE = f"00A404000F{AID_SSSE}00"
SELECT_EF05 = "00A4020002EF05"
SELECT_EF06 = "00A4020002EF06"
READ = {
    0x01: "00B2010012",
    0x02: "00B2020003",
    0x03: "00B2030006",
    0x04: "00B204000E",
    0x05: "00B2050006",
    0x06: "00B2060006",
    0x07: "00B207000B",
    0x08: "00B2080014",
    0x09: "00B2090020",
    0x4E: "00B24E0016",
    0x0A: "00B20A0003",
    0x0B: "00B20B0003",
    0x0C: "00B20C0005",
    0x0D: "00B20D0006",
}


def record(tag: int, value: bytes) -> str:
    """One SIMPLE-TLV record as hex, the way READ RECORD returns it.

    :param tag: the record identifier
    :param value: the value, under 255 bytes
    """
    return (bytes((tag, len(value))) + value).hex().upper()


def ascii_bytes(text: str) -> bytes:
    return text.encode("ascii")


def name_30(raw: bytes) -> bytes:
    """Right-pad a GB18030 name to the 30 bytes of tag 09."""
    return raw + bytes(30 - len(raw))


EF05_2_0 = {
    0x01: hexbytes(CARD_ID),
    0x02: ascii_bytes("3"),
    0x03: hexbytes("322E3000"),  # "2.0" + NUL, as seen on a real card (spec doc §2.4)
    0x04: hexbytes("915600000263990063990001"),
    0x05: hexbytes("20101001"),
    0x06: hexbytes("20201001"),
    0x07: ascii_bytes("X00000019"),
}
EF06_2_0 = {
    0x08: ascii_bytes(SSN),
    0x09: name_30(ZHANG_SAN),
    0x4E: bytes(20),
    0x0A: ascii_bytes("2"),
    0x0B: hexbytes("FF"),
    0x0C: hexbytes("FFFFFF"),
    0x0D: hexbytes("FFFFFFFF"),
}


def reads(records: dict[int, bytes], tags: tuple[int, ...]) -> list[tuple[str, str]]:
    """The READ RECORD exchanges of ``tags``, each answered with its record and 9000."""
    return [(READ[tag], record(tag, records[tag]) + "9000") for tag in tags]


EF05_TAGS = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07)
EF06_TAGS_2_0 = (0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D)
