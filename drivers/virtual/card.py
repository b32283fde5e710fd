"""What every emulated card shares: power states, T=0 response chaining, faults, transports.

A virtual card answers raw command APDUs with raw response APDUs, like the chip does. The
behaviours a reader must survive are switchable per card (:class:`Behaviour`):

* ``t0``: data-returning case 4 commands answer ``61xx`` and the data waits for GET RESPONSE; a
  case 2 command whose Le is not the exact length answers ``6Cxx``;
* ``latency_ms``: a delay before each answer;
* ``tear_after``: the card leaves the field in the middle of command number N+1, before it
  acted on it;
* ``tear_before_answer``: the card acts on command number N (1-based) — a debit is committed —
  then leaves the field before its answer is out (the case anti-tearing exists for);
* ``app_locked`` / ``card_blocked``: the application answers ``9303`` to SELECT / the card
  answers ``6A81`` to everything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from apdu.atr import build_atr
from apdu.command import CommandApdu, ResponseApdu
from apdu.errors import ApduFormatError, CardRemoved, RecordFormatError
from apdu.payment import DEBIT_DATA_LEN, P1_DEBIT, DebitRequest
from apdu.sw import Sw

INS_GET_RESPONSE = 0xC0


class CardTorn(Exception):
    """The emulated card left the field while processing a command."""


@dataclass(slots=True)
class Behaviour:
    """Switchable behaviours of an emulated card.

    :param t0: answer as a T=0 card (``61xx`` / ``6Cxx``); otherwise announce T=1
    :param latency_ms: delay before each answer
    :param tear_after: leave the field during the command after this many commands
    :param tear_before_answer: act on this command (1-based), then leave before answering
    :param app_locked: SELECT of the application answers ``9303``
    :param card_blocked: every command answers ``6A81``
    :param factor_from_challenge: INTERNAL AUTHENTICATE answers ``6984`` to a process factor
        that is not the card's last GET CHALLENGE random (the card OS the vendor traces would
        fit; whether a real one insists is not settled by the public sources)
    """

    t0: bool = False
    latency_ms: float = 0.0
    tear_after: int | None = None
    tear_before_answer: int | None = None
    app_locked: bool = False
    card_blocked: bool = False
    factor_from_challenge: bool = False


def sw_only(sw: int) -> bytes:
    """A response APDU with no data.

    :param sw: the status word
    """
    return sw.to_bytes(2, "big")


def debit_request(command: CommandApdu) -> DebitRequest | ResponseApdu:
    """A DEBIT FOR PURCHASE as a payment application (transit purse, medical account) reads it:
    the request, or the answer refusing its form (P1-P2, length, a time that is no time).

    :param command: the command received
    """
    if (command.p1, command.p2) != (P1_DEBIT, 0x00):
        return ResponseApdu(b"", Sw.BAD_P1_P2)
    if len(command.data) != DEBIT_DATA_LEN:
        return ResponseApdu(b"", Sw.WRONG_LENGTH)
    try:
        return DebitRequest.parse(command.data)
    except RecordFormatError:
        return ResponseApdu(b"", Sw.BAD_DATA_FIELD)


class VirtualCard:
    """Base of the emulators: subclasses implement :meth:`handle` for one parsed command.

    :param historical: ATR historical bytes
    :param behaviour: switchable behaviours
    """

    def __init__(self, historical: bytes, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.historical = historical
        self.atr = build_atr(historical, protocols=(0,) if self.behaviour.t0 else (1,))
        self.commands_seen = 0
        self.torn = False
        self._pending = b""
        self.log: list[tuple[bytes, bytes]] = []

    # -- power -------------------------------------------------------------------------------

    def power_on(self) -> None:
        """Cold reset: forget volatile state (selection, challenge, authentications)."""
        self._pending = b""
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the application's volatile state; subclasses extend this."""

    # -- processing --------------------------------------------------------------------------

    def process(self, raw: bytes) -> bytes:
        """Answer one command APDU with a response APDU.

        :param raw: the command bytes
        :raises CardTorn: when the card leaves the field during this command
        """
        if self.torn:
            raise CardTorn("card already left the field")
        if self.behaviour.latency_ms:
            time.sleep(self.behaviour.latency_ms / 1000)
        tear = self.behaviour.tear_after
        if tear is not None and self.commands_seen >= tear:
            self.torn = True
            raise CardTorn(f"card left the field during command {self.commands_seen + 1}")
        self.commands_seen += 1
        response = self._process(raw)
        self.log.append((bytes(raw), response))
        if self.behaviour.tear_before_answer == self.commands_seen:
            self.torn = True
            raise CardTorn(f"card left the field before answering command {self.commands_seen}")
        return response

    def return_to_field(self) -> None:
        """The holder taps again: the card is back, with no tearing planned; its persistent
        state (balances, counters, logs) is what it was when it left."""
        self.torn = False
        self.commands_seen = 0
        self.behaviour.tear_after = None
        self.behaviour.tear_before_answer = None

    def _process(self, raw: bytes) -> bytes:
        if self.behaviour.card_blocked:
            return sw_only(0x6A81)
        try:
            command = CommandApdu.parse(raw)
        except ApduFormatError:
            return sw_only(0x6700)
        if command.ins == INS_GET_RESPONSE and command.cla == 0x00:
            return self._get_response(command)
        self._pending = b""
        response = self.handle(command)
        return self._shape(command, response)

    def _shape(self, command: CommandApdu, response: ResponseApdu) -> bytes:
        """Apply T=0 rules to a response computed by :meth:`handle`."""
        if not self.behaviour.t0 or not response.data or response.sw != 0x9000:
            return response.to_bytes()
        if command.case in (3, 4):
            # T=0 case 4 becomes case 3 plus GET RESPONSE: announce the data (ISO 7816-3 §12.2.4)
            self._pending = response.data
            return sw_only(0x6100 | (len(response.data) % 256))
        if command.le != len(response.data):
            return sw_only(0x6C00 | (len(response.data) % 256))
        return response.to_bytes()

    def _get_response(self, command: CommandApdu) -> bytes:
        if not self._pending:
            return sw_only(0x6985)
        if command.le is None:
            return sw_only(0x6700)
        available = len(self._pending)
        if command.le > available:
            return sw_only(0x6C00 | (available % 256))
        chunk, self._pending = self._pending[: command.le], self._pending[command.le :]
        if self._pending:
            return chunk + sw_only(0x6100 | (len(self._pending) % 256))
        return chunk + sw_only(0x9000)

    def handle(self, command: CommandApdu) -> ResponseApdu:
        """Answer one command; T=0 shaping and faults are applied around it.

        :param command: the parsed command
        """
        raise NotImplementedError

    @staticmethod
    def fit_le(command: CommandApdu, data: bytes, t0: bool) -> ResponseApdu:
        """Answer a case 2 read: T=1 returns up to Le bytes, otherwise ``6Cxx``.

        :param command: the read command
        :param data: the full answer
        :param t0: whether the card runs T=0 (exact Le only)
        """
        if command.le is None:
            return ResponseApdu(b"", 0x6700)
        if command.le == len(data) or (not t0 and command.le > len(data)):
            return ResponseApdu(data, 0x9000)
        return ResponseApdu(b"", 0x6C00 | (len(data) % 256))


class VirtualConnection:
    """In-process transport to an emulated card, for fast tests (no daemon, no socket).

    :param card: the emulated card; it is powered on here
    """

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.closed = False
        card.power_on()

    @property
    def atr(self) -> bytes:
        """The card's ATR."""
        return self.card.atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command to the card.

        :param apdu: the command bytes
        :raises CardRemoved: when the card left the field
        """
        if self.closed:
            raise CardRemoved("connection closed")
        try:
            response = ResponseApdu.parse(self.card.process(apdu))
        except CardTorn as exc:
            raise CardRemoved(str(exc)) from exc
        return response.data, response.sw

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
