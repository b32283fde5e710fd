"""A real ``socat`` pty pair for serial device tests: one end for the driver, one for the
emulated device. The same idea as the pair in ``tests/emulated/test_indicators.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest


class SocatPair:
    """Two linked ptys from a real socat: ``terminal`` for the driver, ``device`` for the
    emulator.

    Stopping it (by pid) hangs up both ends, like a pulled USB adaptor; starting it again makes
    the same paths reappear.

    :param directory: where the two links (and socat's log) are made
    """

    def __init__(self, directory: Path) -> None:
        self.terminal = directory / "terminal"
        self.device = directory / "device"
        self.log = directory / "socat.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start socat and wait until both links exist."""
        if shutil.which("socat") is None:
            pytest.fail("socat is not installed: run `make test`, which installs it")
        with self.log.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    "socat",
                    "-d",
                    "-d",
                    f"pty,raw,echo=0,link={self.terminal}",
                    f"pty,raw,echo=0,link={self.device}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        deadline = time.monotonic() + 5
        while not (self.terminal.exists() and self.device.exists()):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "socat did not create its ptys"
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop socat (by pid) and remove its links; harmless when it is not running."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # socat removes its links on exit; make sure before a restart reuses the names
        self.terminal.unlink(missing_ok=True)
        self.device.unlink(missing_ok=True)
