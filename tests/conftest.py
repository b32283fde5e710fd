"""Shared fixtures: persona files, emulated cards and (for end-to-end tests) a real pcscd.

End-to-end tests share one pcscd for the session (only one can run per host). Every card a test
inserts is removed by the fixture, which then waits until pcscd reports the reader empty, so no
card leaks into the next test.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from privacy import CaptureHandler, find_leaks, persona_secrets
from support import READER0, READER1

from drivers.virtual.ssc_card import VirtualSscCard

_CAPTURE = CaptureHandler()
_CHILD_LOG = Path(tempfile.mkdtemp(prefix="sscard-privacy-")) / "children.log"


def pytest_configure(config: pytest.Config) -> None:
    """Log everything at DEBUG, here and in every ``sscard`` child, for the privacy check."""
    root = logging.getLogger()
    root.addHandler(_CAPTURE)
    root.setLevel(logging.DEBUG)
    os.environ["SSCARD_LOG_FILE"] = str(_CHILD_LOG)
    os.environ["SSCARD_LOG_LEVEL"] = "DEBUG"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any log line of the session shows a persona's personal data."""
    lines = list(_CAPTURE.lines)
    if _CHILD_LOG.exists():
        lines += _CHILD_LOG.read_text(encoding="utf-8", errors="replace").splitlines()
    leaks = find_leaks(lines, persona_secrets())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"privacy check: {len(lines)} log lines, {len(leaks)} leaks")
        for leak in leaks[:20]:
            reporter.write_line(f"  {leak}", red=True)
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(_CHILD_LOG.parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves a vpcd card thread running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name.startswith("vpcd-card")
    ]
    assert not leaked, f"test leaked card threads: {leaked}"


class Pcscd:
    """The session's pcscd, restartable by tests that exercise recovery."""

    def __init__(self, log_dir: Path) -> None:
        from drivers.virtual.pcscd import PcscdProcess

        self.process = PcscdProcess(log_dir / "pcscd.log")

    def start(self) -> None:
        self.process.start()

    def stop(self, crash: bool = False) -> None:
        import signal

        self.process.stop(signal.SIGKILL if crash else signal.SIGTERM)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """A real pcscd with the vpcd driver, started for the session and stopped by pid."""
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        pytest.fail("pcscd is not installed: run `make test`, which installs it")
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
    daemon.start()
    yield daemon
    daemon.stop()


class InsertedCards:
    """Insert emulated cards into vpcd slots; everything is removed at teardown."""

    def __init__(self) -> None:
        from drivers.pcsc import PcscReader

        self.bridges: list[tuple[object, str]] = []
        self.readers = PcscReader()

    def insert(self, card: VirtualSscCard, slot: int = 0, wait: bool = True) -> VirtualSscCard:
        from drivers.virtual.vpcd import VpcdBridge

        bridge = VpcdBridge(card, slot=slot)
        bridge.insert()
        self.bridges.append((bridge, READER0 if slot == 0 else READER1))
        if wait:
            conn = self.readers.wait_for_card(5, reader=READER0 if slot == 0 else READER1)
            conn.close()
        return card

    def remove_all(self) -> None:
        for bridge, reader in self.bridges:
            bridge.remove()  # type: ignore[attr-defined]
            assert self.readers.wait_for_removal(reader, timeout=5), f"{reader} stayed busy"
        self.bridges.clear()
        self.readers.close()


@pytest.fixture
def cards(pcscd: Pcscd) -> Iterator[InsertedCards]:
    """Insert emulated cards into the real pcscd; removed (and waited for) afterwards."""
    inserted = InsertedCards()
    yield inserted
    inserted.remove_all()
