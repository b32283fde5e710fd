"""What ``sscard run`` loads when no camera and no platform is configured (issue 16: ≤ 60 MB
resident idle). numpy (about 12 MB; sqlite-utils, which the store no longer uses, imported it
whenever it was installed), OpenCV and SQLAlchemy (the reference platform's) belong to other
configurations, and sqlite-utils to none (about 13 MB with click, pluggy, dateutil); FastAPI and
uvicorn (about 12 MB) are the host API's, imported only with ``[host] enabled``; the daemon is
started in a child process under ``python -X importtime``, which names every module imported,
and stopped once it is ready. The configured reader does not exist, so no pcscd is needed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drivers.keyfile import private_copy
from drivers.virtual import TEST_KEYS

pytestmark = pytest.mark.emulated

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "cv2", "sqlalchemy", "pandas", "sqlite_utils", "fastapi", "uvicorn")
READY_TIMEOUT_S = 60.0  # a loaded machine; it returns as soon as the daemon says it is ready


def _config(folder: Path) -> Path:
    (folder / "pepper").write_bytes(b"TEST PEPPER: daemon import test")
    (folder / "pepper").chmod(0o600)
    private_copy(TEST_KEYS / "test-roots.toml", folder / "roots.toml")
    config = folder / "terminal.toml"
    config.write_text(
        '[security]\nsoft_sam_keys = "roots.toml"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        "[indicators]\nconsole = false\nvoice = false\n"
        '[daemon]\nreaders = ["No Such Reader 7"]\nsync_interval_s = 0\n'
    )
    return config


def _imported(lines: list[str]) -> set[str]:
    """The modules named by ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")} - {
        "imported package"
    }


def test_the_idle_daemon_imports_neither_numpy_nor_opencv_nor_sqlalchemy_nor_sqlite_utils(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SSCARD_LOG_FILE", None)
    daemon = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "terminal.cli", "-v", "run", "--config",
         str(config)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert daemon.stderr is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert daemon.stderr is not None
        for line in daemon.stderr:
            lines.append(line)
            if "event=daemon_ready" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.is_set() and daemon.poll() is None and time.monotonic() < deadline:
            ready.wait(0.1)
        assert ready.is_set(), "".join(lines[-20:])
    finally:
        daemon.terminate()
        daemon.wait(30)
        reader.join(30)
    imported = _imported(lines)
    assert "offline_store.db" in imported  # the store is open
    assert {name for name in imported if name.split(".")[0] in HEAVY} == set()
