"""Run a real pcscd in the foreground, for the demo and the end-to-end tests.

pcscd (pcsc-lite) with the vsmartcard ``vpcd`` driver gives two readers,
``Virtual PCD 00 00`` and ``Virtual PCD 00 01``, listening on TCP 35963 and 35964. Only one pcscd
can run per host (its socket path ``/run/pcscd/pcscd.comm`` is compiled in), so this refuses to
start a second one and stops only the process it started, by pid.

A test that wants more readers at once asks for up to :data:`MAX_READERS`: pcscd then reads a
``reader.conf.d`` of its own (``pcscd -c``, next to its log) with one vpcd entry per pair of
slots — the first the system's own, the next ones ``Virtual PCD 1``, ``Virtual PCD 2``, … — so
slot ``n`` listens on TCP 35963 + n (:func:`~drivers.virtual.vpcd.vpcd_port`) and is named by
:func:`reader_name`. Each entry must have a name and a copy of the driver library of its own:
two entries both called ``Virtual PCD`` gave four readers with only two names between them, and
two entries of one library share vpcd's slots (every reader answered for the last entry's
ports).
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
VPCD_LIBRARY = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SLOTS_PER_ENTRY = 2  # vpcd 3.3 makes two slots of each reader.conf entry (feasibility §3)
MAX_READERS = 8  # `sscard run` watches up to 8 card readers ([daemon] readers)


def reader_name(slot: int) -> str:
    """The PC/SC name of a vpcd slot: ``Virtual PCD 00 00``, ``Virtual PCD 00 01``, then
    ``Virtual PCD 1 00 00`` for slot 2 and so on (pcscd started with that many readers).

    :param slot: the vpcd slot, 0 to :data:`MAX_READERS` - 1
    """
    entry, index = divmod(slot, SLOTS_PER_ENTRY)
    friendly = f"Virtual PCD {entry}" if entry else "Virtual PCD"
    return f"{friendly} 00 {index:02d}"


def write_reader_conf(folder: Path, readers: int) -> Path:
    """Write a ``reader.conf.d`` with enough vpcd entries for ``readers`` slots, in ``folder``;
    the ``reader.conf.d``.

    vpcd keeps its slots in globals, so two entries of one library share them (both entries'
    readers then answer for the last entry's ports): each entry after the first loads a copy
    of the library of its own, from ``folder/drivers`` (pcscd reads every file of its
    ``reader.conf.d`` as configuration).

    :param folder: where (made if missing)
    :param readers: 2 to :data:`MAX_READERS`
    :raises ValueError: for another count
    """
    if not SLOTS_PER_ENTRY <= readers <= MAX_READERS:
        raise ValueError(f"vpcd readers must be {SLOTS_PER_ENTRY} to {MAX_READERS}, not {readers}")
    conf, drivers = folder / "reader.conf.d", folder / "drivers"
    for made in (conf, drivers):
        made.mkdir(parents=True, exist_ok=True)
    entries = []
    for first in range(0, readers, SLOTS_PER_ENTRY):
        channel = vpcd_port(first)
        friendly = reader_name(first).removesuffix(" 00 00")
        library = VPCD_LIBRARY
        if first:
            library = drivers / f"libifdvpcd-{first // SLOTS_PER_ENTRY}.so"
            shutil.copyfile(VPCD_LIBRARY, library)
        entries.append(
            f'FRIENDLYNAME "{friendly}"\nDEVICENAME   /dev/null:0x{channel:04X}\n'
            f"LIBPATH      {library}\nCHANNELID    0x{channel:04X}\n"
        )
    (conf / "vpcd").write_text("\n".join(entries), encoding="utf-8")
    return conf


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
    :param readers: vpcd slots, 2 (the system's ``/etc/reader.conf.d``) to :data:`MAX_READERS`
        (a ``reader.conf.d`` of its own, :func:`write_reader_conf`); read at each :meth:`start`
    """

    def __init__(self, log_path: str | Path, debug: bool = False, readers: int = 2) -> None:
        self.log_path = Path(log_path)
        self.debug = debug
        self.readers = readers
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
        """Start pcscd and wait until its socket exists and every vpcd slot listens.

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
        if self.readers != SLOTS_PER_ENTRY:
            conf = write_reader_conf(self.log_path.parent / "vpcd", self.readers)
            args += ["--config", str(conf)]
        ports = [vpcd_port(slot) for slot in range(self.readers)]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ReaderUnavailable(
                    f"pcscd exited with {self.process.returncode}; see {self.log_path}"
                )
            if SOCKET.exists() and all(_listening(port) for port in ports):
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
