"""Fixtures of the sync tests: a reference platform per test (its own database, keys and port,
stopped by pid), a terminal registered on it, and a 100 000-row journal made once per session
and copied for each test that drains it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_support import (
    BACKLOG_ROWS,
    TERMINAL_ID,
    PlatformProcess,
    TerminalSetup,
    fill_journal,
    register,
    served_platform,
)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[PlatformProcess]:
    """A fresh reference platform, serving on loopback."""
    with served_platform(tmp_path / "platform") as served:
        yield served


@pytest.fixture
def terminal(platform: PlatformProcess, tmp_path: Path) -> TerminalSetup:
    """The terminal ``440100-T0001`` registered on the platform, with its settings file."""
    return register(platform, tmp_path / "terminal", TERMINAL_ID)


@pytest.fixture(scope="session")
def backlog_100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding 100 000 journal rows of ``440100-T0001`` (copy it before use)."""
    path = tmp_path_factory.mktemp("backlog") / "store.db"
    fill_journal(path, BACKLOG_ROWS, TERMINAL_ID)
    return path
