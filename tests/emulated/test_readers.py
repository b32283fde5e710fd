"""The ``virtual`` reader back-end: the reader contract (tests/reader_contract.py) in-process,
and the reader a terminal's settings build (:func:`terminal.compose.open_reader`)."""

from __future__ import annotations

import argparse
import threading

import pytest
from pipeline_support import World
from reader_contract import (
    SELECT_SSSE,
    a_card_is_connected_and_answers,
    a_tap_goes_through_the_pipeline,
    an_empty_reader_times_out,
)
from support import make_card

from apdu.errors import CardRemoved, ReaderTimeout, ReaderUnavailable, SscardError
from config.settings import Settings
from drivers.readers import BACKENDS, Reader, list_readers, match_readers, one_reader
from drivers.virtual.reader import DEFAULT_NAME, VirtualReader
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.compose import open_reader
from terminal.modules import open_module


class VirtualRig:
    """Cards go straight into the in-process reader's slot."""

    def __init__(self) -> None:
        self.reader: Reader = VirtualReader()

    def insert(self, card: VirtualSscCard) -> None:
        assert isinstance(self.reader, VirtualReader)
        self.reader.insert(card)

    def remove(self) -> None:
        assert isinstance(self.reader, VirtualReader)
        self.reader.remove()


def test_an_empty_virtual_reader_times_out() -> None:
    an_empty_reader_times_out(VirtualRig())


@pytest.mark.parametrize("t0", [False, True], ids=["T=1", "T=0"])
def test_a_card_in_the_virtual_reader_is_connected_and_answers(t0: bool) -> None:
    a_card_is_connected_and_answers(VirtualRig(), t0)


def test_a_tap_through_the_pipeline_with_the_virtual_reader(world: World) -> None:
    a_tap_goes_through_the_pipeline(VirtualRig(), world)


def test_a_waiter_sees_the_card_another_thread_inserts() -> None:
    reader = VirtualReader()
    card = make_card("elderly")
    later = threading.Timer(0.1, reader.insert, args=(card,))
    later.start()
    try:
        with reader.wait_for_card(5.0) as connection:
            assert connection.atr == card.atr
    finally:
        later.join()
    assert not reader.wait_for_removal(0.05)
    threading.Timer(0.1, reader.remove).start()
    assert reader.wait_for_removal(5.0)


def test_a_card_that_tore_away_is_absent_until_it_comes_back() -> None:
    card = make_card("ordinary-2.0", tear_after=0)
    reader = VirtualReader(card=card)
    with reader.connect() as connection, pytest.raises(CardRemoved):
        connection.transmit(SELECT_SSSE)
    assert card.torn and reader.wait_for_removal(0.0)
    with pytest.raises(ReaderTimeout):
        reader.connect()
    reader.insert(card)  # the holder taps again
    with reader.connect() as connection:
        assert connection.transmit(SELECT_SSSE)[1] == 0x9000


def test_the_settings_build_a_virtual_reader_holding_a_persona() -> None:
    settings = Settings(reader_backend="virtual", virtual_card="v3-sm4", reader="Front desk")
    with open_reader(settings) as reader:
        assert isinstance(reader, VirtualReader) and reader.list_readers() == ["Front desk"]
        with reader.wait_for_card(1.0) as connection:
            assert connection.reader == "Front desk"
    assert open_reader(Settings(reader_backend="virtual")).list_readers() == [DEFAULT_NAME]


def test_a_production_terminal_has_no_virtual_reader() -> None:
    settings = Settings(production=True, reader_backend="virtual", source="t.toml")
    with pytest.raises(SscardError, match=r"t.toml: a production terminal has no virtual reader"):
        open_reader(settings)


def test_an_unknown_back_end_or_persona_is_one_clear_error() -> None:
    with pytest.raises(ReaderUnavailable, match="unknown reader 'usb'; known: pcsc, virtual"):
        open_reader(Settings(reader_backend="usb"))
    with pytest.raises(ReaderUnavailable, match=r"virtual reader: .*nobody") as raised:
        open_reader(Settings(reader_backend="virtual", virtual_card="nobody"))
    assert raised.value.__cause__ is not None
    with pytest.raises(ReaderUnavailable, match=r"reader 'virtual': .*colour"):
        BACKENDS.create({"backend": "virtual", "colour": "red"})


def test_a_psam_slot_needs_the_pcsc_back_end() -> None:
    args = argparse.Namespace(sam_reader="PCD 00 01", hsm=None, soft_sam=None)
    with pytest.raises(SscardError, match=r"--sam-reader: .* needs the pcsc reader back-end"):
        open_module(args, VirtualReader(), Settings())


def test_list_readers_names_the_back_ends_readers() -> None:
    assert list_readers("virtual") == [DEFAULT_NAME]


def test_a_name_selects_readers_exactly_or_by_a_unique_part() -> None:
    names = ["ACS ACR1252 PICC 00", "ACS ACR1252 SAM 01", "Virtual PCD 00 00"]
    assert match_readers(names, None) == names and match_readers(names, "*") == names
    assert match_readers(names, "Virtual PCD 00 00") == ["Virtual PCD 00 00"]
    assert match_readers(names, "ACR1252") == names[:2]
    assert match_readers(names, "ACR1252", exclude=["SAM"]) == ["ACS ACR1252 PICC 00"]
    assert match_readers(names, None, exclude=["SAM", ""]) == [names[0], names[2]]
    assert match_readers(names, "Omnikey") == []
    with pytest.raises(ReaderTimeout, match="'ACR1252' is ambiguous"):
        one_reader(names, "ACR1252")
    assert one_reader(names, "PICC") == ["ACS ACR1252 PICC 00"]
