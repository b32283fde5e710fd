"""The contract every card reader back-end keeps (drivers/readers.py), written once and run
against each: the in-process virtual reader (tests/emulated/test_readers.py) and a PC/SC reader
through a real pcscd and vpcd (tests/e2e/test_readers_e2e.py)."""

from __future__ import annotations

from typing import Protocol

import pytest
from pipeline_support import World
from support import load_test_roots, make_card

from apdu.atr import Atr
from apdu.errors import CardRemoved, ReaderTimeout
from apdu.ssc import AID_SSSE
from apdu.transport import t0_chain
from config.settings import Settings
from drivers.readers import CardConnection, Reader
from drivers.soft_sam import SoftSam
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.card_read import ScenarioRead
from terminal.reasons import Reason

SELECT_SSSE = bytes([0x00, 0xA4, 0x04, 0x00, len(AID_SSSE)]) + AID_SSSE + b"\x00"


class Rig(Protocol):
    """A reader under test and the hand that puts cards into it."""

    reader: Reader

    def insert(self, card: VirtualSscCard) -> None: ...

    def remove(self) -> None: ...


def an_empty_reader_times_out(rig: Rig) -> None:
    assert isinstance(rig.reader, Reader)
    with pytest.raises(ReaderTimeout, match="no card"):
        rig.reader.wait_for_card(0.3)
    with pytest.raises(ReaderTimeout):
        rig.reader.connect()


def a_card_is_connected_and_answers(rig: Rig, t0: bool) -> None:
    card = make_card("ordinary-2.0", t0=t0)
    rig.insert(card)
    connection = rig.reader.wait_for_card(5.0)
    with connection:
        assert isinstance(connection, CardConnection)
        assert connection.atr == card.atr
        assert connection.reader in rig.reader.list_readers()
        assert connection.protocol_name == ("T=0" if t0 else "T=1")
        data, sw = t0_chain(connection).transmit(SELECT_SSSE)
        assert sw == 0x9000 and data  # the FCI
    connection.close()  # harmless twice
    with pytest.raises(CardRemoved):
        connection.transmit(SELECT_SSSE)
    with rig.reader.connect() as again:  # the card is still there
        assert again.atr == card.atr
    rig.remove()
    assert rig.reader.wait_for_removal(5.0)
    with pytest.raises(ReaderTimeout):
        rig.reader.wait_for_card(0.3)


def a_tap_goes_through_the_pipeline(rig: Rig, world: World) -> None:
    """The same three steps as ``sscard tap``: wait, read for the scenario, decide."""
    rig.insert(make_card("ordinary-2.0"))
    sam = SoftSam(load_test_roots(), Settings())
    pipeline = world.pipeline("transit")
    with rig.reader.wait_for_card(5.0) as connection:
        historical = Atr.parse(connection.atr).historical
        read = ScenarioRead(t0_chain(connection), historical, pipeline.profile, sam)
        decision = pipeline.process(read)
    assert decision.accepted and decision.reason == Reason.OK
    assert world.store.journal.last() is not None
    rig.remove()
    assert rig.reader.wait_for_removal(5.0)
