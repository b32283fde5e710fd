"""Shared fixtures: persona files, emulated cards and (for end-to-end tests) a real pcscd.

End-to-end tests share one pcscd for the session (only one can run per host). Every card a test
inserts is removed by the fixture, which then waits until pcscd reports the reader empty, so no
card leaks into the next test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import golden
import postgres
import pytest
from privacy import CaptureHandler, find_leaks, persona_secrets

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
    # a shell's background job (`make test &`, nohup) starts with SIGINT ignored, and every child
    # inherits that: the tests that press Ctrl-C on an sscard child would wait for nothing
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# --- golden outputs of every sscard call (tests/golden.py) ---------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The session's tests, and its temporary folder (normalised in the golden outputs)."""
    whole = (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
        and not config.option.deselect
    )
    golden.RECORDER.collected([item.nodeid for item in items], whole=whole)
    golden.configure(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """The sscard calls of a test (its setup, call and teardown) are keyed by its id."""
    with golden.RECORDER.scope(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Iterator[object]:
    """Calls made while a fixture wider than a test is set up are keyed by the fixture, so they
    are the same whichever test happens to set it up."""
    if fixturedef.scope == "function":
        return (yield)
    nodeid = request.node.nodeid
    with golden.RECORDER.scope(nodeid, f"{nodeid} fixture {fixturedef.argname}"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[object]:
    """A test whose sscard calls differ from the golden ones (or that made fewer) fails; the
    difference was raised where the call was made, and is repeated here in case a thread or an
    ``except`` swallowed it."""
    report = yield
    failed = item.stash.setdefault(_FAILED, False) or report.failed  # type: ignore[attr-defined]
    item.stash[_FAILED] = failed
    if call.when == "teardown" and not failed:
        problems = golden.RECORDER.problems(item.nodeid)
        if problems:
            report.outcome = "failed"  # type: ignore[attr-defined]
            report.longrepr = "\n\n".join(problems)  # type: ignore[attr-defined]
    return report


_FAILED = pytest.StashKey[bool]()


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
    for path in golden.RECORDER.save():
        if reporter is not None:
            reporter.write_line(f"golden: recorded {path}")
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

    @contextlib.contextmanager
    def readers(self, count: int) -> Iterator[None]:
        """pcscd restarted with ``count`` vpcd readers (slots ``0`` to ``count - 1``, named by
        :func:`drivers.virtual.pcscd.reader_name`), and with the usual two again afterwards;
        a :meth:`stop` and :meth:`start` inside keep the count. Take every card out first.

        :param count: 2 to 8
        """
        self.stop()
        self.process.readers = count
        try:
            self.start()
            yield
        finally:
            self.stop()
            self.process.readers = 2
            self.start()


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """A real pcscd with the vpcd driver, started for the session and stopped by pid."""
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        pytest.fail("pcscd is not installed: run `make test`, which installs it")
    if os.environ.get("SSCARD_TEST_HALF") == "rest":  # tests/parallel.py: pcscd is the other's
        pytest.fail("this test starts pcscd: list it in the end-to-end half (tests/parallel.py)")
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
        from drivers.virtual.pcscd import reader_name
        from drivers.virtual.vpcd import VpcdBridge

        bridge = VpcdBridge(card, slot=slot)
        bridge.insert()
        self.bridges.append((bridge, reader_name(slot)))
        if wait:
            conn = self.readers.wait_for_card(5, reader=reader_name(slot))
            conn.close()
        return card

    def remove_all(self) -> None:
        """Take every card out, then wait until pcscd shows each reader empty (the readers are
        polled side by side, so several cards leave in one poll)."""
        for bridge, _reader in self.bridges:
            bridge.remove()  # type: ignore[attr-defined]
        for _bridge, reader in self.bridges:
            assert self.readers.wait_for_removal(reader, timeout=5), f"{reader} stayed busy"
        self.bridges.clear()
        self.readers.close()


@pytest.fixture
def cards(pcscd: Pcscd) -> Iterator[InsertedCards]:
    """Insert emulated cards into the real pcscd; removed (and waited for) afterwards."""
    inserted = InsertedCards()
    yield inserted
    inserted.remove_all()


# --- the platform's databases (tests/postgres.py) -------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session, started on first use: the URL of a throwaway cluster
    (or of ``$SSCARD_TEST_POSTGRES_URL``). Skips where none can be had, unless the run requires
    one (``$SSCARD_TEST_POSTGRES=required``, as ``make test`` does): then it fails."""
    try:
        with postgres.throwaway_cluster() as url:
            yield url
    except postgres.NoPostgres as exc:
        if postgres.required():
            pytest.fail(f"PostgreSQL is required for this run: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def platform_db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The reference platform's database, once on each it supports: ``None`` (an SQLite file of
    the test's own), then a PostgreSQL schema of the test's own, dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    try:
        with postgres.schema_url(server) as url:
            yield url
    except postgres.NoPostgres as exc:
        if postgres.required():
            pytest.fail(f"PostgreSQL is required for this run: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL: {exc}")
