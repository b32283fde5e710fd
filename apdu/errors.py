"""The exception tree of sscard-terminal.

Every error the project raises on purpose derives from :class:`SscardError`::

    SscardError
    ├── ProtocolError            malformed bytes from a card or a file
    │   ├── ApduFormatError      an APDU that cannot be encoded or parsed
    │   ├── TlvError             SIMPLE-TLV / BER-TLV that does not parse
    │   ├── AtrError             an ATR that violates ISO 7816-3
    │   └── RecordFormatError    an SSC record with the wrong tag, length or encoding
    │       └── CardIdFormatError  EF05 record 01 (卡识别码) missing or not 16 bytes
    ├── ApduError                the card answered a status word other than 9000
    ├── CardStateError           what a status word means for the person at the terminal
    │   ├── WrongPin             63Cx on VERIFY: x tries left
    │   ├── PinBlocked           6983
    │   ├── ApplicationLocked    9303
    │   ├── CardBlocked          6A81
    │   ├── SecurityNotSatisfied 6982: the file needs an authentication first
    │   ├── ExternalAuthFailed   63Cx / 6983 on EXTERNAL AUTHENTICATE: terminal key refused
    │   ├── CardNotGenuine       INTERNAL AUTHENTICATE did not match
    │   └── PaymentRefused       a payment step refused, nothing debited (apdu.payment: 9401 …)
    ├── PurchaseTorn             the card left during a DEBIT: tap again (apdu.payment)
    └── DriverError              the edges: readers and transports
        ├── ReaderUnavailable    no PC/SC service or no such reader
        ├── CardRemoved          the card left (or stopped answering) during a command
        └── ReaderTimeout        no card arrived before the deadline
"""

from __future__ import annotations

from apdu.sw import describe


class SscardError(Exception):
    """Root of every error raised by sscard-terminal."""


class ProtocolError(SscardError):
    """Bytes that do not follow the protocol or file format they claim to follow."""


class ApduFormatError(ProtocolError):
    """A command or response APDU that cannot be encoded or parsed."""


class TlvError(ProtocolError):
    """A SIMPLE-TLV or BER-TLV structure that does not parse."""


class AtrError(ProtocolError):
    """An answer-to-reset that violates ISO/IEC 7816-3."""


class RecordFormatError(ProtocolError):
    """An SSC record that has the wrong tag, runs past its data or holds an invalid value."""


class CardIdFormatError(RecordFormatError):
    """EF05 record 01, 卡识别码, is missing or malformed (national code -20, 卡识别码格式错)."""


class ApduError(SscardError):
    """The card answered a status word other than ``9000``.

    :param command: the command APDU that was sent, as bytes
    :param sw: the status word, as a 16-bit integer
    :param data: response data that came with the status word
    """

    def __init__(self, *, command: bytes, sw: int, data: bytes = b"") -> None:
        self.command = bytes(command)
        self.sw = sw
        self.data = bytes(data)
        ins = f"{command[1]:02X}" if len(command) > 1 else "??"
        super().__init__(f"INS {ins}: SW {sw:04X} ({describe(sw)})")


class CardStateError(SscardError):
    """A status word that tells something about the card or its holder, not about the bytes.

    :param message: what happened; by default the class's :attr:`message`
    """

    sw: int = 0
    #: what the status word means, for the kinds that need no more words
    message: str = ""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(self.message if message is None else message)


class WrongPin(CardStateError):
    """VERIFY failed; ``tries_left`` attempts remain (``63Cx``)."""

    def __init__(self, tries_left: int) -> None:
        self.tries_left = tries_left
        self.sw = 0x63C0 | tries_left
        super().__init__(f"wrong PIN, {tries_left} tries left")


class PinBlocked(CardStateError):
    """The PIN try counter is exhausted (``6983``)."""

    sw = 0x6983
    message = "PIN blocked"


class ApplicationLocked(CardStateError):
    """The application is permanently locked (``9303``)."""

    sw = 0x9303
    message = "application permanently locked"


class CardBlocked(CardStateError):
    """The card is blocked and answers ``6A81`` to everything."""

    sw = 0x6A81
    message = "card blocked"


class SecurityNotSatisfied(CardStateError):
    """The file needs an authentication first (``6982``)."""

    sw = 0x6982

    def __init__(self, what: str = "") -> None:
        super().__init__(f"security status not satisfied{': ' + what if what else ''}")


class ExternalAuthFailed(CardStateError):
    """The card refused the terminal's EXTERNAL AUTHENTICATE cryptogram.

    This is not a PIN error: the card does not trust the terminal's key (a wrong or forged
    security module, or a card whose keys do not derive from the module's roots). The card
    counts these attempts; ``tries_left`` is ``0`` once the key is blocked (``6983``).

    :param sw: the status word, ``63Cx`` or ``6983``
    """

    def __init__(self, sw: int) -> None:
        self.sw = sw
        self.tries_left = sw & 0x0F if sw & 0xFFF0 == 0x63C0 else 0
        state = "key blocked" if sw == 0x6983 else f"{self.tries_left} tries left"
        super().__init__(f"the card refused the terminal's authentication ({state})")


class CardNotGenuine(CardStateError):
    """INTERNAL AUTHENTICATE did not give the answer the security module expects."""

    message = "the answer to INTERNAL AUTHENTICATE does not match the security module"


class DriverError(SscardError):
    """An error at the edge: a reader, a daemon, a transport."""


class ReaderUnavailable(DriverError):
    """The PC/SC service or the named reader is not there."""


class CardRemoved(DriverError):
    """The card was removed, or stopped answering, during a command."""


class ReaderTimeout(DriverError):
    """No card was presented before the deadline."""


def card_state_error(sw: int) -> CardStateError | None:
    """Return the person-level error a status word stands for, or ``None``.

    :param sw: SW1SW2 as a 16-bit integer
    """
    if sw & 0xFFF0 == 0x63C0:
        return WrongPin(sw & 0x0F)
    simple: dict[int, type[CardStateError]] = {
        0x6983: PinBlocked,
        0x9303: ApplicationLocked,
        0x6A81: CardBlocked,
        0x6982: SecurityNotSatisfied,
    }
    cls = simple.get(sw)
    return cls() if cls else None
