"""Card readers: one small interface, back-ends chosen by name.

A :class:`Reader` is what a terminal waits on: a card arrives, the terminal connects, sends
APDUs through the :class:`CardConnection` (``transmit(bytes) -> (data, sw)``, the contract
:mod:`apdu.transport` builds on), disconnects and waits for the card to leave. Two back-ends
implement it, registered in :data:`BACKENDS` and imported on first use:

* ``pcsc`` (:class:`drivers.pcsc.PcscSlotReader`): a PC/SC reader through pcscd, named
  exactly or by a unique part of its name, or any reader that gets a card (pyscard);
* ``virtual`` (:class:`drivers.virtual.reader.VirtualReader`): an emulated card of
  :mod:`drivers.virtual`, in-process — no pcscd, no socket — for development and tests.

::

    from drivers.readers import BACKENDS

    with BACKENDS.create({"backend": "pcsc", "name": "ACS"}) as reader:
        with reader.wait_for_card(timeout=20.0) as card:
            data, sw = card.transmit(bytes.fromhex("00A4040000"))
        reader.wait_for_removal(timeout=3.0)

The application builds its reader from the settings (:func:`terminal.compose.open_reader`).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, runtime_checkable

from apdu.errors import ReaderTimeout, ReaderUnavailable
from drivers.registry import Registry

#: the name a reader answers to when it takes a card from any reader of its back-end
ANY = "*"


@runtime_checkable
class CardConnection(Protocol):
    """One card, connected: what :mod:`apdu.transport` sends APDUs through.

    :ivar reader: the name of the reader the card is in
    :ivar atr: the card's answer to reset
    """

    reader: str
    atr: bytes

    @property
    def protocol_name(self) -> str:
        """``T=0`` or ``T=1``."""
        ...

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one raw command APDU; the response data and status word.

        :param apdu: the command bytes
        :raises CardRemoved: the card left or stopped answering
        :raises ReaderUnavailable: the reader or its service went away
        """
        ...

    def close(self) -> None:
        """Disconnect (the card stays powered in the reader); harmless when called twice."""
        ...

    def __enter__(self) -> CardConnection: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Reader(Protocol):
    """A card reader, blocking, no threads of its own (the daemon owns them).

    :ivar name: what the reader answers to: its name, a part of it, or :data:`ANY`
    """

    name: str

    def list_readers(self) -> list[str]:
        """The names of the readers the back-end sees now.

        :raises ReaderUnavailable: the back-end's service is not there
        """
        ...

    def connect(self) -> CardConnection:
        """Connect to the card in the reader now, without waiting.

        :raises ReaderTimeout: no card is there
        :raises CardRemoved: the card left while being powered
        :raises ReaderUnavailable: no such reader, or its service is not there
        """
        ...

    def wait_for_card(self, timeout: float) -> CardConnection:
        """Wait until a card is present, then connect to it.

        :param timeout: seconds until :class:`~apdu.errors.ReaderTimeout`
        :raises ReaderTimeout: no card came in time (or the name is ambiguous)
        :raises ReaderUnavailable: the service was still not there at the deadline
        """
        ...

    def wait_for_removal(self, timeout: float) -> bool:
        """Wait until the card last connected to has left its reader.

        :param timeout: seconds to wait
        :returns: ``True`` when the reader is empty within ``timeout``
        """
        ...

    def close(self) -> None:
        """Release the back-end's resources; harmless when called twice."""
        ...

    def __enter__(self) -> Reader: ...

    def __exit__(self, *exc: object) -> None: ...


#: reader back-end name → ``module:class``; each class takes ``name`` (a reader name, a part of
#: one, or ``None`` for any) and its own keyword options
BACKENDS: Registry[Reader] = Registry(
    "reader",
    ReaderUnavailable,
    {
        "pcsc": "drivers.pcsc:PcscSlotReader",
        "virtual": "drivers.virtual.reader:VirtualReader",
    },
)


def match_readers(
    names: Iterable[str], wanted: str | None, exclude: Iterable[str] = ()
) -> list[str]:
    """The readers a name selects: an exact name, else every reader whose name contains it;
    ``None`` (or :data:`ANY`) selects every reader. Readers whose names contain one of
    ``exclude`` (the PSAM's slot) are never selected.

    :param names: the reader names there are
    :param wanted: an exact name, a part of one, :data:`ANY` or ``None``
    :param exclude: names, or parts of names, of readers never to select
    """
    avoid = [part for part in exclude if part]
    names = [n for n in names if not any(part in n for part in avoid)]
    if wanted is None or wanted == ANY:
        return names
    if wanted in names:
        return [wanted]
    return [n for n in names if wanted in n]


def one_reader(names: Iterable[str], wanted: str | None, exclude: Iterable[str] = ()) -> list[str]:
    """:func:`match_readers`, refusing a part of a name that several readers share.

    :param names: the reader names there are
    :param wanted: an exact name, a part of one, :data:`ANY` or ``None`` (any reader)
    :param exclude: names, or parts of names, of readers never to select
    :raises ReaderTimeout: ``wanted`` matches more than one reader
    """
    matches = match_readers(names, wanted, exclude)
    if wanted not in (None, ANY) and len(matches) > 1:
        raise ReaderTimeout(f"reader {wanted!r} is ambiguous: {matches}")
    return matches


def list_readers(backend: str = "pcsc") -> list[str]:
    """The names of the readers a back-end sees now.

    :param backend: the back-end's name (:data:`BACKENDS`)
    :raises ReaderUnavailable: an unknown back-end, or its service is not there
    """
    with BACKENDS.create(backend) as reader:
        return reader.list_readers()
