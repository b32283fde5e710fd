"""Fixtures of the emulated tests: the pipeline's world (store, catalogue, deny list, clock), and a
serial code scanner emulated on a socat pty pair."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import world
from pty_pair import SocatPair

from drivers.virtual.qr_scanner import VirtualQrScanner

__all__ = ["device", "pty_pair", "world"]


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[SocatPair]:
    """A socat pty pair, stopped (by pid) at teardown."""
    pair = SocatPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


@pytest.fixture
def device(pty_pair: SocatPair) -> Iterator[VirtualQrScanner]:
    """The emulated scanner on the pair's device end."""
    with VirtualQrScanner(pty_pair.device) as emulated:
        assert emulated.wait_until(lambda s: s.connections >= 1, 5)
        yield emulated
