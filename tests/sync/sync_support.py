"""The sync tests' world: the reference platform as a child process (``sscard platform serve``)
with its own database and keys, a terminal registered on it with a settings file, journals
filled quickly through the store's own API, and the ``sscard`` commands to run.

Everything here is real: HTTP on loopback, SQLite files, child processes stopped by pid.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import golden
import requests
from daemon_support import TerminalFolder, free_port
from support import CATALOGUE, READER0, TEST_ROOTS

from drivers.keyfile import private_copy
from ecard.trust import save_trust_list
from offline_store import JournalEntry, Store
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.transport import RetryPolicy

ROOT = Path(__file__).resolve().parents[2]
TERMINAL_ID = "440100-T0001"
BACKLOG_ROWS = 100_000
START_TIMEOUT_S = 20.0
TOKEN = "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"
FAST_RETRIES = RetryPolicy(attempts=40, base_s=0.05, cap_s=1.0)


def sscard(command: str, *args: str) -> list[str]:
    """The argv of ``sscard COMMAND ARGS…`` in a child process.

    :param command: ``platform`` or ``sync``
    :param args: the rest
    """
    return [sys.executable, "-m", "terminal.cli", command, *args]


def run(
    argv: list[str], *, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end.

    :param argv: the command
    :param timeout: seconds
    :param check: fail the test on a non-zero exit status
    """
    done = golden.completed(
        subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{argv[2:]} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


@dataclass
class PlatformProcess:
    """``sscard platform serve`` on loopback, killable and restartable on the same port.

    :param folder: where its database and keys live
    """

    folder: Path
    port: int = 0
    process: subprocess.Popen[str] | None = None
    restarts: int = 0
    printed: str = ""

    @property
    def db(self) -> Path:
        return self.folder / "platform.db"

    @property
    def keys(self) -> Path:
        return self.folder / "keys"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def init(self) -> None:
        """``platform init`` with the repository's test keys."""
        self.run("init", "--test-keys", keys=True)

    def run(
        self, *args: str, keys: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run an operator command on this platform's database (and keys).

        :param args: the command after ``platform``
        :param keys: pass ``--keys`` too
        :param check: fail the test on a non-zero exit status
        """
        extra = ["--db", str(self.db)] + (["--keys", str(self.keys)] if keys else [])
        return run(sscard("platform", *args, *extra), check=check)

    def start(self, *extra: str) -> None:
        """Serve (on a free port the first time, then on the same port) and wait until it
        answers ``GET /v1/health``.

        :param extra: more ``serve`` options (``--tls-cert`` …)
        """
        assert self.process is None, "already running"
        argv = sscard(
            "platform", "serve", "--db", str(self.db), "--keys", str(self.keys),
            "--port", str(self.port), *extra,
        )  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        assert self.process.stdout is not None
        first = self.printed = self.process.stdout.readline()
        found = re.search(r":(\d+)/", first)
        assert found, f"platform serve printed {first!r}"
        self.port = int(found.group(1))
        if "https" in first:
            return  # the caller checks it with its own TLS settings
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if requests.get(self.url + "v1/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the platform did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown) and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close_pipe(self.process.returncode)

    def restart(self) -> None:
        """Start it again on the same port."""
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        """SIGTERM and wait (idempotent)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._close_pipe(self.process.returncode)

    def _close_pipe(self, status: int) -> None:
        assert self.process is not None
        if self.process.stdout is not None:
            self.process.stdout.close()
        golden.observed(self.process.args, status, self.printed)  # type: ignore[arg-type]
        self.process = None

    def journal(self, terminal_id: str) -> list[tuple[int, str]]:
        """(seq, hash) of every row the platform stored for a terminal, by seq.

        :param terminal_id: the terminal
        """
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT seq, hash FROM journal WHERE terminal_id = ? ORDER BY seq", (terminal_id,)
            ).fetchall()

    def ack_seq(self, terminal_id: str) -> int:
        """The platform's acknowledgement cursor for a terminal (read while it serves).

        :param terminal_id: the terminal
        """
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
            found = conn.execute(
                "SELECT ack_seq FROM journal_state WHERE terminal_id = ?", (terminal_id,)
            ).fetchone()
        return int(found[0]) if found else 0

    def verify(self) -> str:
        """``platform tx verify`` (must exit 0); its output."""
        return self.run("tx", "verify").stdout


@contextlib.contextmanager
def served_platform(folder: Path) -> Iterator[PlatformProcess]:
    """A fresh reference platform in ``folder``, serving on loopback until the block ends."""
    served = PlatformProcess(folder)
    served.init()
    served.start()
    try:
        yield served
    finally:
        served.stop()


@dataclass
class TerminalSetup:
    """A terminal registered on a platform: its folder, settings file and store path.

    :param folder: the terminal's folder
    :param terminal_id: its id
    :param key_id: its key id
    :param url: the platform URL in its settings
    """

    folder: Path
    terminal_id: str
    key_id: str
    url: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.folder / "terminal.toml"

    @property
    def store_path(self) -> Path:
        return self.folder / "store.db"

    def write_settings(self, url: str | None = None, **sync: str) -> Path:
        """(Re)write the settings file.

        :param url: the platform URL (default: the one registered)
        :param sync: more ``[sync]`` keys, as TOML values
        """
        lines = [
            "[terminal]",
            f'id = "{self.terminal_id}"',
            "[store]",
            'database = "store.db"',
            'pepper_file = "pepper"',
            'deny_public_key = "deny.pem"',
            "[ecard]",
            'trust_root_key = "qr-root.pem"',
            'audience_keys = "audience.keys"',
            "[sync]",
            f'url = "{url or self.url}"',
            f'key_id = "{self.key_id}"',
            'key_file = "sync.key"',
            "timeout_s = 5",
        ]
        lines += [f"{key} = {value}" for key, value in (self.extra | sync).items()]
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.config_file

    def config(self, **changes: object) -> SyncConfig:
        """The client configuration the settings give.

        :param changes: fields of :class:`SyncConfig` to replace
        """
        from dataclasses import replace

        from config.settings import load_settings

        config = SyncConfig.from_settings(load_settings(self.config_file))
        return replace(config, **changes)  # type: ignore[arg-type]

    def client(self, store: Store, **changes: object) -> SyncClient:
        """An in-process client with quick retries.

        :param store: the open store
        :param changes: fields of :class:`SyncConfig` to replace
        """
        return SyncClient(
            self.config(**changes), store, trust_saver=save_trust_list, policy=FAST_RETRIES
        )

    def sync_once(self, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``sscard sync --once --config …`` to its end (any exit status)."""
        return run(
            sscard("sync", "--once", "--config", str(self.config_file)),
            timeout=timeout,
            check=False,
        )


def register(
    platform: PlatformProcess, folder: Path, terminal_id: str, scenarios: str = "transit,gate"
) -> TerminalSetup:
    """``platform terminal add`` and a settings file for the new terminal.

    :param platform: the platform (serving or not)
    :param folder: the terminal's folder (created)
    :param terminal_id: its id
    :param scenarios: its scenarios
    """
    folder.mkdir(parents=True, exist_ok=True)
    done = platform.run(
        "terminal", "add", terminal_id, "--scenarios", scenarios, "--region", "440100",
        "--key-out", str(folder / "sync.key"), "--url", platform.url,
    )  # fmt: skip
    key_id = re.search(r'key_id = "([^"]+)"', done.stdout)
    assert key_id, done.stdout
    setup = TerminalSetup(folder, terminal_id, key_id.group(1), platform.url)
    setup.write_settings()
    return setup


def fill_journal(path: Path, count: int, terminal_id: str) -> None:
    """Append ``count`` rows through :meth:`Journal.append`, quickly: the fill runs with
    ``synchronous = OFF`` on the store's own connection (durability of the fill is not what
    these tests are about; every later write is ``FULL`` again).

    :param path: the store file
    :param count: rows to append
    :param terminal_id: the terminal id of the rows
    """
    entry = JournalEntry("transit", "0301", TOKEN, "accept", "ok", 200, terminal_id=terminal_id)
    with Store.open(path) as store:
        store._db.conn.execute("PRAGMA synchronous = OFF")
        for _ in range(count):
            store.journal.append(entry)
        store._db.conn.execute("PRAGMA synchronous = FULL")
        store._db.checkpoint()


def copy_store(source: Path, target: Path) -> None:
    """Copy a closed store file (and its WAL, if any) to a new place.

    :param source: the store file
    :param target: the new file
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        found = Path(f"{source}{suffix}")
        if found.exists():
            shutil.copyfile(found, f"{target}{suffix}")
    os.chmod(target, 0o600)


def daemon_terminal(
    platform: PlatformProcess,
    folder: Path,
    terminal_id: str,
    scenarios: str = "transit,gate",
    *,
    daemon: str = "",
    extra: str = "",
) -> TerminalFolder:
    """A terminal registered on the platform and provisioned with one ``sync --once``, set up
    for ``sscard run``: soft SAM, console indicator, a sync every 0.5 s.

    :param platform: the serving platform
    :param folder: the terminal's folder (created)
    :param terminal_id: its id
    :param scenarios: its scenarios on the platform
    :param daemon: more ``[daemon]`` lines (``scenario = …``)
    :param extra: more tables after ``[daemon]``
    """
    platform.run("catalogue", "load", str(CATALOGUE))
    setup = register(platform, folder, terminal_id, scenarios)
    done = setup.sync_once()
    assert done.returncode == 0, done.stdout + done.stderr
    private_copy(TEST_ROOTS, folder / "roots.toml")
    world = TerminalFolder(folder, setup.config_file, free_port())
    with setup.config_file.open("a", encoding="utf-8") as settings:
        settings.write(
            '[security]\nsoft_sam_keys = "roots.toml"\n'
            "[indicators]\nconsole = true\nvoice = false\n"
            f'[daemon]\n{daemon}readers = ["{READER0}"]\nsync_interval_s = 0.5\n'
            f"metrics_port = {world.metrics_port}\n" + extra
        )
    return world
