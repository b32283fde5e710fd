"""The connection contract and the T=0 transmit chain.

A *connection* is anything that sends one command APDU and returns ``(data, sw)``; drivers
(pyscard, the in-process virtual card) implement it. On top of a raw connection the chain adds,
each in its own small wrapper:

* :class:`WrongLengthConnection` — ``6Cxx``: re-issue the same command once with ``Le = xx``;
* :class:`GetResponseConnection` — ``61xx``: send ``GET RESPONSE`` with ``Le = xx`` until the
  card stops answering ``61xx``, joining the data.

Only :func:`send` turns a status word other than ``9000`` into :class:`~apdu.errors.ApduError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from apdu.command import SW_OK, CommandApdu
from apdu.errors import ApduError, ApduFormatError, SscardError
from apdu.resources import Closing

log = logging.getLogger(__name__)

INS_GET_RESPONSE = 0xC0
# A card that answers 61xx forever would hang the reader; no SSC response needs this many rounds.
MAX_GET_RESPONSE_ROUNDS = 64


@runtime_checkable
class Connection(Protocol):
    """One card, one logical channel: send a command APDU, get data and status word."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send a command APDU and return ``(data, sw)``.

        :param apdu: the encoded command APDU
        :raises CardRemoved: when the card leaves or stops answering
        """
        ...

    def close(self) -> None:
        """Release the connection; calling it twice is harmless."""
        ...


class _Wrapper(Closing):
    """Base of the chain links: delegates ``close`` and supports ``with``."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner

    def close(self) -> None:
        """Close the wrapped connection."""
        self.inner.close()


class WrongLengthConnection(_Wrapper):
    """Handle ``6Cxx`` by re-issuing the command once with the exact Le the card named."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send ``apdu``; on ``6Cxx`` send it again with ``Le = xx``.

        :param apdu: the encoded command APDU
        :raises ApduFormatError: when ``apdu`` cannot be parsed to change its Le
        """
        data, sw = self.inner.transmit(apdu)
        if sw >> 8 != 0x6C:
            return data, sw
        exact = (sw & 0xFF) or 256
        retry = CommandApdu.parse(apdu).with_le(exact).to_bytes()
        log.debug("event=wrong_le ins=%02X exact_le=%d", apdu[1], exact)
        return self.inner.transmit(retry)


class GetResponseConnection(_Wrapper):
    """Handle ``61xx`` by fetching the rest with GET RESPONSE until the card is done."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send ``apdu`` and collect every chunk announced by ``61xx``.

        :param apdu: the encoded command APDU
        :raises ApduFormatError: when the card announces more data than any response can hold
        """
        data, sw = self.inner.transmit(apdu)
        collected = bytearray(data)
        rounds = 0
        while sw >> 8 == 0x61:
            rounds += 1
            if rounds > MAX_GET_RESPONSE_ROUNDS:
                raise ApduFormatError(
                    f"card answered 61xx more than {MAX_GET_RESPONSE_ROUNDS} times in a row"
                )
            available = (sw & 0xFF) or 256
            get_response = CommandApdu(0x00, INS_GET_RESPONSE, 0x00, 0x00, le=available)
            data, sw = self.inner.transmit(get_response.to_bytes())
            collected += data
        return bytes(collected), sw


def t0_chain(raw: Connection) -> Connection:
    """Wrap a raw connection in the 6Cxx and 61xx handlers (they are harmless on T=1).

    :param raw: the driver's connection
    """
    return GetResponseConnection(WrongLengthConnection(raw))


def send(
    connection: Connection,
    command: CommandApdu,
    *meanings: Callable[[int], SscardError | None],
) -> bytes:
    """Send a command and return its data, raising on any status word but ``9000``.

    :param connection: a connection, normally from :func:`t0_chain`
    :param command: the command to send
    :param meanings: what a refusal means, each mapping a status word to its error or
        ``None``; the first that names it is raised, caused by the :class:`ApduError`
    :raises ApduError: when the status word is not ``9000`` and no meaning names it
    """
    raw = command.to_bytes()
    data, sw = connection.transmit(raw)
    if sw != SW_OK:
        error = ApduError(command=raw, sw=sw, data=data)
        for meaning in meanings:
            named = meaning(sw)
            if named is not None:
                raise named from error
        raise error
    return data
