"""The ``virtual`` reader back-end: an emulated card in-process, behind the same
:class:`drivers.readers.Reader` interface as a PC/SC reader — no pcscd, no socket.

A test (or a developer's terminal with ``[terminal] reader_backend = "virtual"``) inserts and
removes cards; whoever waits on the reader sees them arrive and leave, as with a real one::

    reader = VirtualReader(persona="ordinary-3.0")     # a demo persona, TEST KEYS
    with reader.wait_for_card(timeout=1.0) as card:
        data, sw = card.transmit(bytes.fromhex("00A4040000"))
    reader.remove()

A card that tears (:class:`~drivers.virtual.card.Behaviour`) has left the field: it is absent
until it is inserted again. The cards' keys derive from the public TEST KEYS: a production
terminal never builds this reader (:func:`terminal.compose.open_reader`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from apdu.errors import ReaderTimeout, ReaderUnavailable
from drivers.keyfile import load_root_keys
from drivers.readers import ANY
from drivers.virtual import PERSONAS, TEST_KEYS
from drivers.virtual.card import Behaviour, VirtualCard, VirtualConnection
from drivers.virtual.persona import PersonaError, load_persona
from drivers.virtual.ssc_card import VirtualSscCard

DEFAULT_NAME = "Virtual SSC reader"
ROOTS_FILE = "test-roots.toml"


def persona_card(
    persona: str | Path, behaviour: Behaviour | None = None, keys: Path = TEST_KEYS
) -> VirtualSscCard:
    """The emulated card of a persona, its keys derived from the TEST KEYS.

    :param persona: a demo persona's name (``ordinary-3.0``) or a persona file
    :param behaviour: switchable behaviours (T=0, faults)
    :param keys: the folder of the TEST KEYS
    :raises ReaderUnavailable: the persona file cannot be read (the reader has no card)
    :raises KeyFileError: the TEST KEYS cannot be read
    """
    path = Path(persona)
    if path.suffix != ".toml":
        path = PERSONAS / f"{persona}.toml"
    try:
        holder = load_persona(path)
    except PersonaError as exc:
        raise ReaderUnavailable(f"virtual reader: {exc}") from exc
    roots = load_root_keys(keys / ROOTS_FILE, require_private=False)  # public by design
    return VirtualSscCard(holder, behaviour or Behaviour(), roots)


class VirtualCardConnection(VirtualConnection):
    """A connection to the card in a :class:`VirtualReader`.

    :param card: the emulated card; it is powered on here
    :param reader: the reader's name
    """

    def __init__(self, card: VirtualCard, reader: str) -> None:
        super().__init__(card)
        self.reader = reader

    @property
    def protocol_name(self) -> str:
        """``T=0`` or ``T=1``, as the card's ATR announces."""
        return "T=0" if self.card.behaviour.t0 else "T=1"

    def __enter__(self) -> VirtualCardConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VirtualReader:
    """One reader with an emulated card slot (:class:`drivers.readers.Reader`).

    :param name: the reader's name (default ``Virtual SSC reader``)
    :param card: the card in the slot at the start, or ``None``
    :param persona: else a demo persona's name or file, whose card is in the slot
    :param keys: the folder of the TEST KEYS the persona's card derives from
    :raises ReaderUnavailable: the persona cannot be read
    :raises KeyFileError: the TEST KEYS cannot be read
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        card: VirtualCard | None = None,
        persona: str | Path | None = None,
        keys: Path = TEST_KEYS,
    ) -> None:
        self.name = DEFAULT_NAME if name in (None, ANY) else str(name)
        if card is None and persona is not None:
            card = persona_card(persona, keys=keys)
        self._card = card
        self._changed = threading.Condition()

    @property
    def card(self) -> VirtualCard | None:
        """The card in the slot, or ``None``."""
        return self._card

    def insert(self, card: VirtualCard) -> None:
        """Put a card in the slot (a torn card comes back to the field).

        :param card: the emulated card
        """
        if card.torn:
            card.return_to_field()
        with self._changed:
            self._card = card
            self._changed.notify_all()

    def remove(self) -> None:
        """Take the card out of the slot."""
        with self._changed:
            self._card = None
            self._changed.notify_all()

    def _present(self) -> bool:
        return self._card is not None and not self._card.torn

    def list_readers(self) -> list[str]:
        """This reader's name: the only one it sees."""
        return [self.name]

    def connect(self) -> VirtualCardConnection:
        """Connect to the card in the slot now (a cold reset: its volatile state is gone).

        :raises ReaderTimeout: the slot is empty
        """
        card = self._card
        if card is None or card.torn:
            raise ReaderTimeout(f"no card in {self.name!r}")
        return VirtualCardConnection(card, self.name)

    def wait_for_card(self, timeout: float) -> VirtualCardConnection:
        """Wait until a card is in the slot, then connect to it.

        :param timeout: seconds until :class:`ReaderTimeout`
        :raises ReaderTimeout: no card came in time
        """
        with self._changed:
            if not self._changed.wait_for(self._present, timeout=max(timeout, 0.0)):
                raise ReaderTimeout(f"no card within {timeout:g} s (no card presented)")
            return self.connect()

    def wait_for_removal(self, timeout: float) -> bool:
        """Wait until the slot is empty (or its card tore away).

        :param timeout: seconds to wait
        :returns: ``True`` when the slot is empty within ``timeout``
        """
        with self._changed:
            return self._changed.wait_for(lambda: not self._present(), timeout=max(timeout, 0.0))

    def close(self) -> None:
        """Nothing to release; the card stays in the slot."""

    def __enter__(self) -> VirtualReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
