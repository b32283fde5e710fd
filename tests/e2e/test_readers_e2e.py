"""The ``pcsc`` reader back-end keeps the reader contract (tests/reader_contract.py) through a
real pcscd and the vpcd driver, as the in-process virtual reader does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from pipeline_support import World, world
from reader_contract import (
    a_card_is_connected_and_answers,
    a_tap_goes_through_the_pipeline,
    an_empty_reader_times_out,
)
from support import READER0, READER1, make_card

from apdu.errors import ReaderTimeout
from config.settings import Settings
from drivers.pcsc import PcscSlotReader

if TYPE_CHECKING:  # a type only: "conftest" names more than one module in the suite
    from conftest import InsertedCards
from drivers.readers import Reader, list_readers
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.compose import open_reader

__all__ = ["world"]


class PcscRig:
    """Cards go into vpcd slot 0; the reader under test is built as ``sscard`` builds it."""

    def __init__(self, cards: InsertedCards) -> None:
        self.cards = cards
        self.reader: Reader = open_reader(Settings(reader=READER0))

    def insert(self, card: VirtualSscCard) -> None:
        self.cards.insert(card, slot=0, wait=False)

    def remove(self) -> None:
        bridge, _name = self.cards.bridges.pop()
        bridge.remove()  # type: ignore[attr-defined]


@pytest.fixture
def rig(cards: InsertedCards) -> Iterator[PcscRig]:
    made = PcscRig(cards)
    with made.reader:
        yield made


def test_an_empty_pcsc_reader_times_out(rig: PcscRig) -> None:
    assert isinstance(rig.reader, PcscSlotReader)
    an_empty_reader_times_out(rig)


@pytest.mark.parametrize("t0", [False, True], ids=["T=1", "T=0"])
def test_a_card_in_the_pcsc_reader_is_connected_and_answers(rig: PcscRig, t0: bool) -> None:
    a_card_is_connected_and_answers(rig, t0)


def test_a_tap_through_the_pipeline_with_the_pcsc_reader(rig: PcscRig, world: World) -> None:
    a_tap_goes_through_the_pipeline(rig, world)


def test_the_psam_slot_is_never_taken_for_the_card(cards: InsertedCards) -> None:
    cards.insert(make_card("elderly"), slot=1)  # only the "PSAM" slot holds a card
    assert {READER0, READER1} <= set(list_readers("pcsc"))
    with (
        open_reader(Settings(), exclude=["PCD 00 01"]) as reader,
        pytest.raises(ReaderTimeout, match="no card within"),
    ):
        reader.wait_for_card(0.5)
    with open_reader(Settings()) as reader, reader.wait_for_card(2.0) as card:
        assert card.reader == READER1
