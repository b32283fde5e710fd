"""The real reader: PC/SC through pyscard's low-level ``smartcard.scard`` API.

:class:`PcscReader` is the PC/SC service (every reader pcscd knows); :class:`PcscSlotReader`
is the ``pcsc`` back-end of :mod:`drivers.readers`: one reader (or any) behind the
:class:`~drivers.readers.Reader` interface.

It lists readers, waits for a card with ``SCardGetStatusChange`` (never a fixed sleep), connects
in shared mode and transmits raw APDUs; the T=0 chain of :mod:`apdu.transport` goes on top.
When pcscd goes away (restart, crash) the context becomes invalid: the waiter drops it and
establishes a new one until its deadline instead of dying.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from smartcard import scard

from apdu.errors import CardRemoved, ReaderTimeout, ReaderUnavailable
from apdu.resources import Closing
from drivers.readers import ANY, one_reader

log = logging.getLogger(__name__)

_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE & 0xFFFFFFFF,
    scard.SCARD_E_SERVICE_STOPPED & 0xFFFFFFFF,
    scard.SCARD_E_INVALID_HANDLE & 0xFFFFFFFF,
    scard.SCARD_E_NO_READERS_AVAILABLE & 0xFFFFFFFF,
    scard.SCARD_E_READER_UNAVAILABLE & 0xFFFFFFFF,
    scard.SCARD_E_UNKNOWN_READER & 0xFFFFFFFF,
    scard.SCARD_E_COMM_DATA_LOST & 0xFFFFFFFF,
}
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD & 0xFFFFFFFF,
    scard.SCARD_E_NO_SMARTCARD & 0xFFFFFFFF,
    scard.SCARD_W_UNPOWERED_CARD & 0xFFFFFFFF,
    scard.SCARD_W_UNRESPONSIVE_CARD & 0xFFFFFFFF,
    scard.SCARD_E_NOT_TRANSACTED & 0xFFFFFFFF,
    scard.SCARD_W_RESET_CARD & 0xFFFFFFFF,
}
_OK = scard.SCARD_S_SUCCESS
_TIMEOUT = scard.SCARD_E_TIMEOUT & 0xFFFFFFFF
POLL_MS = 500  # one GetStatusChange slice; short enough to notice a dead pcscd quickly
RECONNECT_PAUSE = 0.2
LOOK_ONCE = 0.05  # connect(): long enough for one GetStatusChange that finds a present card


def _rc(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def _message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult)} (0x{_rc(hresult):08X})"


class PcscConnection(Closing):
    """One card in one reader, connected in shared mode.

    :param context: the PC/SC context (owned by the caller's :class:`PcscReader`)
    :param reader: the reader name
    :raises CardRemoved: when the card cannot be powered or left already
    :raises ReaderUnavailable: when pcscd or the reader is gone
    """

    def __init__(self, context: int, reader: str) -> None:
        self.reader = reader
        hresult, self._card, self.protocol = scard.SCardConnect(
            context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if hresult != _OK:
            _raise_for(hresult, f"connect to {reader!r}")
        hresult, _name, _state, _proto, atr = scard.SCardStatus(self._card)
        if hresult != _OK:
            self.close()
            _raise_for(hresult, f"status of {reader!r}")
        self.atr = bytes(atr)
        self._closed = False

    @property
    def protocol_name(self) -> str:
        """``T=0`` or ``T=1``."""
        return "T=0" if self.protocol == scard.SCARD_PROTOCOL_T0 else "T=1"

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one raw APDU.

        :param apdu: the command bytes
        :raises CardRemoved: when the card left or stopped answering
        :raises ReaderUnavailable: when pcscd or the reader went away
        """
        if self._closed:
            raise CardRemoved("connection closed")
        hresult, response = scard.SCardTransmit(self._card, self.protocol, list(apdu))
        if hresult != _OK:
            _raise_for(hresult, "transmit")
        if len(response) < 2:
            raise CardRemoved("card returned no valid response")
        raw = bytes(response)
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def close(self) -> None:
        """Disconnect, leaving the card powered; harmless when called twice."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)


def _raise_for(hresult: int, what: str) -> None:
    code = _rc(hresult)
    if code in _CARD_GONE:
        raise CardRemoved(f"{what}: {_message(hresult)}")
    raise ReaderUnavailable(f"{what}: {_message(hresult)}")


@dataclass(frozen=True, slots=True)
class Presence:
    """A reader's card presence (:meth:`PcscReader.presence`).

    :param present: a card is in the reader (and not mute)
    :param events: pcsc-lite's count of insertions and removals seen in the reader
    """

    present: bool
    events: int

    @classmethod
    def of(cls, state: int) -> Presence:
        """Read an event state word.

        :param state: ``dwEventState``
        """
        present = bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_MUTE
        return cls(present, (state >> 16) & 0xFFFF)


class PcscReader:
    """Access to the PC/SC service: list readers and wait for cards, surviving pcscd restarts.

    The object owns one PC/SC context at a time and re-establishes it after the service died.
    """

    def __init__(self) -> None:
        self._context: int | None = None

    def _ensure_context(self) -> int:
        if self._context is None:
            hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult != _OK:
                raise ReaderUnavailable(f"PC/SC service: {_message(hresult)}")
            self._context = context
        return self._context

    def _drop_context(self) -> None:
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def list_readers(self) -> list[str]:
        """The names of the readers pcscd knows now.

        :raises ReaderUnavailable: when the PC/SC service is not running
        """
        context = self._ensure_context()
        hresult, readers = scard.SCardListReaders(context, [])
        if _rc(hresult) == scard.SCARD_E_NO_READERS_AVAILABLE & 0xFFFFFFFF:
            return []
        if hresult != _OK:
            self._drop_context()
            raise ReaderUnavailable(f"list readers: {_message(hresult)}")
        return list(readers)

    def wait_for_card(
        self,
        timeout: float,
        *,
        reader: str | None = None,
        exclude: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> PcscConnection:
        """Wait until a card is present in a reader, then connect to it.

        :param timeout: seconds until :class:`ReaderTimeout`
        :param reader: an exact reader name, or a substring that matches one reader;
            ``None`` takes the first reader that has a card
        :param exclude: readers never to take (e.g. the PSAM's)
        :param clock: the monotonic clock (tests pass their own)
        :raises ReaderTimeout: when no card came before the deadline
        :raises ReaderUnavailable: when the PC/SC service was still not there at the deadline
            (it may come back during the wait: pcscd restarts are survived)
        """
        deadline = clock() + timeout
        excluded = set(exclude)
        last_problem = "no card presented"
        service_down = False
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                if service_down:
                    raise ReaderUnavailable(
                        f"no PC/SC service within {timeout:g} s ({last_problem})"
                    )
                raise ReaderTimeout(f"no card within {timeout:g} s ({last_problem})")
            try:
                names = [r for r in self.list_readers() if r not in excluded]
                service_down = False
                names = self._match(names, reader)
                if not names:
                    last_problem = "no matching reader"
                    time.sleep(min(RECONNECT_PAUSE, max(remaining, 0)))
                    continue
                found = self._wait_present(names, min(POLL_MS, int(remaining * 1000) + 1))
                if found is None:
                    continue
                try:
                    return PcscConnection(self._ensure_context(), found)
                except CardRemoved as exc:
                    # pcscd can report a card for ~400 ms after it left (feasibility §6.1)
                    last_problem = str(exc)
                    time.sleep(0.05)
            except ReaderUnavailable as exc:
                if not service_down or str(exc) != last_problem:  # once per outage, not per retry
                    log.warning("event=pcsc_unavailable detail=%r", str(exc))
                last_problem = str(exc)
                service_down = True
                self._drop_context()
                time.sleep(min(RECONNECT_PAUSE, max(deadline - clock(), 0)))

    @staticmethod
    def _match(names: list[str], wanted: str | None) -> list[str]:
        return one_reader(names, wanted)

    def _states_now(self, names: list[str]) -> list[tuple[str, int, list[int]]]:
        """Each reader's state now (a status change that waits for none).

        :raises ReaderUnavailable: pcscd failed (its context is dropped)
        """
        states = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        hresult, now = scard.SCardGetStatusChange(self._ensure_context(), 0, states)
        if hresult != _OK and _rc(hresult) != _TIMEOUT:
            self._drop_context()
            raise ReaderUnavailable(f"status: {_message(hresult)}")
        return list(now)

    def _wait_present(self, names: list[str], timeout_ms: int) -> str | None:
        states = self._states_now(names)
        present = self._first_present(states)
        if present is not None:
            return present
        watch = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _atr in states]
        hresult, states = scard.SCardGetStatusChange(self._ensure_context(), timeout_ms, watch)
        if _rc(hresult) == _TIMEOUT:
            return None
        if hresult != _OK:
            self._drop_context()
            raise ReaderUnavailable(f"status change: {_message(hresult)}")
        return self._first_present(states)

    @staticmethod
    def _first_present(states: list[tuple[str, int, list[int]]]) -> str | None:
        return next((name for name, state, _atr in states if _usable(state)), None)

    def cards_present(self) -> dict[str, bool]:
        """Each reader pcscd knows now and whether a usable card is in it.

        :raises ReaderUnavailable: when the PC/SC service is not running
        """
        names = self.list_readers()
        if not names:
            return {}
        return {name: _usable(state) for name, state, _atr in self._states_now(names)}

    def wait_for_removal(self, reader: str, timeout: float) -> bool:
        """Wait until the reader is empty.

        :param reader: the reader name
        :param timeout: seconds to wait
        :returns: True when the card left within ``timeout``
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                context = self._ensure_context()
                hresult, states = scard.SCardGetStatusChange(
                    context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
                )
                if hresult == _OK and states[0][1] & scard.SCARD_STATE_EMPTY:
                    return True
            except ReaderUnavailable:
                self._drop_context()
            time.sleep(0.05)
        return False

    def presence(self, reader: str, *, since: int | None = None, timeout: float = 0.0) -> Presence:
        """Whether a card is in a reader, and the reader's event count: pcsc-lite counts the
        insertions and removals it saw in the high 16 bits of the event state, so a card pulled
        and presented again between two looks shows as a new count, not as "still there".

        :param reader: the exact reader name
        :param since: an event count seen before: wait up to ``timeout`` for it to change
            (or the card to leave); ``None`` answers at once
        :param timeout: seconds to wait for a change
        :raises ReaderUnavailable: the PC/SC service or the reader is gone
        """
        context = self._ensure_context()
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
        )
        if hresult != _OK:
            self._drop_context()
            raise ReaderUnavailable(f"status of {reader!r}: {_message(hresult)}")
        now = Presence.of(states[0][1])
        if since is None or now.events != since or not now.present or timeout <= 0:
            return now
        watch = [(reader, states[0][1] & ~scard.SCARD_STATE_CHANGED)]
        hresult, states = scard.SCardGetStatusChange(context, int(timeout * 1000), watch)
        if _rc(hresult) == _TIMEOUT:
            return now
        if hresult != _OK:
            self._drop_context()
            raise ReaderUnavailable(f"status change of {reader!r}: {_message(hresult)}")
        return Presence.of(states[0][1])

    def close(self) -> None:
        """Release the PC/SC context."""
        self._drop_context()

    def __enter__(self) -> PcscReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcscSlotReader:
    """The ``pcsc`` reader back-end (:class:`drivers.readers.Reader`): a PC/SC reader named
    exactly or by a unique part of its name, or any reader that gets a card.

    :param name: the reader's name, a unique part of it, or ``None`` / ``"*"`` for any reader
    :param exclude: names, or parts of names, of readers never to take (the PSAM's slot)
    :param pcsc: the PC/SC service to use (default: its own, released by :meth:`close`)
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        exclude: Iterable[str] = (),
        pcsc: PcscReader | None = None,
    ) -> None:
        self.name = name or ANY
        self.exclude = tuple(exclude)
        self.pcsc = pcsc if pcsc is not None else PcscReader()
        self._owns_pcsc = pcsc is None
        self._last: str | None = None

    def list_readers(self) -> list[str]:
        """The names of the readers pcscd knows now.

        :raises ReaderUnavailable: the PC/SC service is not running
        """
        return self.pcsc.list_readers()

    def _avoided(self) -> list[str]:
        if not self.exclude:
            return []
        return [r for r in self.list_readers() if any(part in r for part in self.exclude)]

    def connect(self) -> PcscConnection:
        """Connect to the card in the reader now.

        :raises ReaderTimeout: no card is there
        :raises CardRemoved: the card left while being powered
        :raises ReaderUnavailable: no such reader, or pcscd is not running
        """
        return self.wait_for_card(LOOK_ONCE)

    def wait_for_card(self, timeout: float) -> PcscConnection:
        """Wait until a card is present, then connect to it (:meth:`PcscReader.wait_for_card`).

        :param timeout: seconds until :class:`ReaderTimeout`
        :raises ReaderTimeout: no card came in time, or the name is ambiguous
        :raises ReaderUnavailable: pcscd was still not there at the deadline
        """
        wanted = None if self.name == ANY else self.name
        connection = self.pcsc.wait_for_card(timeout, reader=wanted, exclude=self._avoided())
        self._last = connection.reader
        return connection

    def wait_for_removal(self, timeout: float) -> bool:
        """Wait until the reader of the card last connected to is empty; before any card, the
        reader :attr:`name` names exactly (another process may have read the card).

        :param timeout: seconds to wait
        :returns: ``True`` when the reader is empty within ``timeout`` (at once for a reader
            of any name that connected no card)
        """
        target = self._last if self._last is not None else self.name
        if target == ANY:
            return True
        return self.pcsc.wait_for_removal(target, timeout)

    def close(self) -> None:
        """Release the PC/SC context, if it is this reader's own."""
        if self._owns_pcsc:
            self.pcsc.close()

    def __enter__(self) -> PcscSlotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _usable(state: int) -> bool:
    """A reader state with a card present that answered its reset (not mute)."""
    return bool(state & scard.SCARD_STATE_PRESENT and not state & scard.SCARD_STATE_MUTE)
