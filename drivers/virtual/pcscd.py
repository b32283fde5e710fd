"""Run a real pcscd in the foreground, for the demo and the end-to-end tests.

pcscd (pcsc-lite) with the vsmartcard ``vpcd`` driver gives two readers,
``Virtual PCD 00 00`` and ``Virtual PCD 00 01``, listening on TCP 35963 and 35964. Only one pcscd
can run per host (its socket path ``/run/pcscd/pcscd.comm`` is compiled in), so this refuses to
start a second one and stops only the process it started, by pid.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from apdu.errors import ReaderUnavailable
from drivers.virtual.vpcd import vpcd_port

log = logging.getLogger(__name__)

RUN_DIR = Path("/run/pcscd")
SOCKET = RUN_DIR / "pcscd.comm"
PID_FILE = RUN_DIR / "pcscd.pid"
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")


def running_pid() -> int | None:
    """The pid of a live pcscd, from its pid file, or ``None``."""
    try:
        text = PID_FILE.read_bytes().replace(b"\x00", b"").strip()  # the file ends with a NUL
        pid = int(text)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _listening(port: int) -> bool:
    # Never probe vpcd with connect(): it would accept the probe as a card (feasibility §6.2).
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A = LISTEN
                return True
    return False


class PcscdProcess:
    """A pcscd started by us in the foreground and stopped by pid.

    :param log_path: where pcscd's output goes
    :param debug: pass ``-d -a`` (debug and APDU logging)
    """

    def __init__(self, log_path: str | Path, debug: bool = False) -> None:
        self.log_path = Path(log_path)
        self.debug = debug
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def check_installed() -> str:
        """Return the pcscd executable path.

        :raises ReaderUnavailable: when pcscd or the vpcd driver is not installed
        """
        exe = shutil.which("pcscd") or (
            "/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None
        )
        if exe is None:
            raise ReaderUnavailable("pcscd is not installed (Debian package pcscd)")
        if not VPCD_CONF.exists():
            raise ReaderUnavailable("the vpcd driver is not installed (package vsmartcard-vpcd)")
        return exe

    def start(self, timeout: float = 30.0) -> None:
        """Start pcscd and wait until its socket exists and both vpcd slots listen.

        :param timeout: seconds to wait for readiness (it is usually there within 0.1 s; a
            loaded machine has taken more than 10)
        :raises ReaderUnavailable: when pcscd is missing, another one runs, or it does not start
        """
        exe = self.check_installed()
        other = running_pid()
        if other is not None:
            raise ReaderUnavailable(
                f"another pcscd (pid {other}) is running; stop it first "
                "(systemctl stop pcscd.socket pcscd, or kill it)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [exe, "--foreground"] + (["-d", "-a"] if self.debug else [])
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ReaderUnavailable(
                    f"pcscd exited with {self.process.returncode}; see {self.log_path}"
                )
            if SOCKET.exists() and _listening(vpcd_port(0)) and _listening(vpcd_port(1)):
                log.info("event=pcscd_started pid=%d", self.process.pid)
                return
            time.sleep(0.01)
        self.stop()
        raise ReaderUnavailable(f"pcscd did not become ready in {timeout} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the pcscd we started (by pid) and wait for it.

        :param sig: ``SIGTERM`` for a clean stop, ``SIGKILL`` to simulate a crash
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log.info("event=pcscd_stopped pid=%d rc=%s", self.process.pid, self.process.returncode)
        self.process = None

    def __enter__(self) -> PcscdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
