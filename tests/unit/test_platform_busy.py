"""The platform tells "another writer holds the database" by the driver's error code, not by
the words of its message (issue 12: no matching on message text)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from platform_server import db
from platform_server.errors import Busy, PlatformError


def test_a_database_locked_by_another_writer_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "platform.db"
    engine = db.open_engine(f"sqlite:///{path}", now=0.0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    try:
        with pytest.raises(Busy), db.transaction(engine) as conn:
            conn.execute(text("SELECT 1"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with db.transaction(engine) as conn:  # and once it is gone, the writer gets in
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_any_other_database_failure_is_named_by_its_type_only(tmp_path: Path) -> None:
    engine = db.open_engine(f"sqlite:///{tmp_path / 'platform.db'}", now=0.0)
    with (
        pytest.raises(PlatformError, match="OperationalError") as caught,
        db.transaction(engine) as conn,
    ):
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(caught.value, Busy)
    engine.dispose()
