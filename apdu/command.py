"""Command and response APDUs (ISO/IEC 7816-4 §5.1), cases 1–4, short and extended.

``le`` is the number of bytes expected, not its encoding: ``None`` means no Le field,
``256`` is written ``00`` in a short APDU and ``65536`` is written ``0000`` in an extended one.
"""

from __future__ import annotations

from dataclasses import dataclass

from apdu.errors import ApduFormatError

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_LE = 65536
SW_OK = 0x9000


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU.

    :param cla: class byte
    :param ins: instruction byte
    :param p1: parameter 1
    :param p2: parameter 2
    :param data: command data (Lc is its length)
    :param le: expected response length, ``None`` when the command expects no data
    :param extended: force the extended length encoding even where short would do
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ApduFormatError(f"{name.upper()} must be one byte, got {value!r}")
        if len(self.data) > EXTENDED_MAX_LC:
            raise ApduFormatError(f"command data of {len(self.data)} bytes exceeds 65535")
        if self.le is not None and not 1 <= self.le <= EXTENDED_MAX_LE:
            raise ApduFormatError(f"Le must be 1..65536 (256 is written 00), got {self.le}")

    @property
    def case(self) -> int:
        """The ISO 7816-3 case: 1 no data, 2 Le only, 3 Lc only, 4 both."""
        if self.data:
            return 4 if self.le is not None else 3
        return 2 if self.le is not None else 1

    @property
    def is_extended(self) -> bool:
        """Whether the APDU needs (or was asked for) the extended length encoding."""
        return (
            self.extended
            or len(self.data) > SHORT_MAX_LC
            or (self.le is not None and self.le > SHORT_MAX_LE)
        )

    def with_le(self, le: int | None) -> CommandApdu:
        """Return the same command with another Le.

        :param le: the new expected length, or ``None`` for none
        """
        return CommandApdu(self.cla, self.ins, self.p1, self.p2, self.data, le, self.extended)

    def to_bytes(self) -> bytes:
        """Encode the APDU.

        :raises ApduFormatError: never for a constructed instance; kept for symmetry
        """
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if not self.is_extended:
            body = b""
            if self.data:
                body += bytes((len(self.data),)) + self.data
            if self.le is not None:
                body += bytes((self.le % 256,))
            return header + body
        body = b""
        if self.data:
            body += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if self.le is not None:
            le_bytes = (self.le % 65536).to_bytes(2, "big")
            body += le_bytes if self.data else b"\x00" + le_bytes
        return header + body

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode a command APDU in any of the seven encodings of ISO 7816-4 §5.1.

        :param raw: the APDU bytes
        :raises ApduFormatError: when the body matches no case
        """
        if len(raw) < 4:
            raise ApduFormatError(f"a command APDU has at least 4 bytes, got {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:
            lc = body[0]
            if n == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
            raise ApduFormatError(f"short Lc {lc} does not match a body of {n} bytes")
        # body[0] == 0 and n >= 2: extended length
        if n == 3:
            le = int.from_bytes(body[1:3], "big") or 65536
            return cls(cla, ins, p1, p2, le=le, extended=True)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduFormatError("extended Lc of 0 is not allowed")
        if n == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:], extended=True)
        if n == 5 + lc:
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, body[3 : 3 + lc], le, extended=True)
        raise ApduFormatError(f"extended Lc {lc} does not match a body of {n} bytes")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data followed by the status word.

    :param data: response data
    :param sw: status word SW1SW2 as a 16-bit integer
    """

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        """The first status byte."""
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        """The second status byte."""
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        """True for ``9000``."""
        return self.sw == SW_OK

    def to_bytes(self) -> bytes:
        """Encode as data ‖ SW1 ‖ SW2."""
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split raw response bytes into data and status word.

        :param raw: the response bytes
        :raises ApduFormatError: when fewer than two bytes arrived
        """
        if len(raw) < 2:
            raise ApduFormatError(f"a response APDU has at least 2 bytes, got {len(raw)}")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))
