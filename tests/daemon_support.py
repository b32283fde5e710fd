"""Helpers for the daemon's end-to-end tests: a terminal folder, and ``sscard run`` as a child
process, watched through its systemd notifications, its metrics port and its store file.

The store is read with a read-only SQLite connection while the daemon owns it (WAL mode lets a
reader in); nothing here writes to it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families
from store_support import header, public_pem, write_list
from support import CATALOGUE, READER0, TEST_ROOTS, run_sscard

from drivers.keyfile import private_copy

PEPPER = b"TEST PEPPER: e2e daemon tests only"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TerminalFolder:
    """A terminal's files: settings, store, pepper, journal key, TEST KEY roots (soft SAM)."""

    folder: Path
    config: Path
    metrics_port: int

    def settings(
        self,
        *,
        scenario: str = "transit",
        extra: str = "",
        sam_reader: str | None = None,
        readers: Sequence[str] = (READER0,),
    ) -> str:
        """The settings file's text (``sam_reader``: the PSAM's reader, ``[daemon] sam_reader``,
        chosen before the software SAM; ``readers``: the card readers, ``[daemon] readers``)."""
        sam = f'sam_reader = "{sam_reader}"\n' if sam_reader else ""
        names = ", ".join(f'"{name}"' for name in readers)
        return (
            '[terminal]\nid = "E2E-RUN"\n'
            '[security]\nsoft_sam_keys = "roots.toml"\n'
            '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
            'journal_key_file = "journal.key"\n'
            "[indicators]\nconsole = true\nvoice = false\n"
            f'[daemon]\nscenario = "{scenario}"\nreaders = [{names}]\n{sam}'
            f"metrics_port = {self.metrics_port}\n" + extra
        )

    def write(self, **kwargs: Any) -> None:
        """Write the settings file (the keywords of :meth:`settings`)."""
        self.config.write_text(self.settings(**kwargs))

    def rows(self, path: Path | None = None) -> list[tuple[int, str, str, str]]:
        """The journal: (seq, scenario, outcome, reason) of every row, read-only.

        :param path: the store file (default: the folder's ``store.db``)
        """
        return [
            (int(seq), str(scenario), str(outcome), str(reason))
            for seq, scenario, outcome, reason in self._select(
                "SELECT seq, scenario, outcome, reason_code FROM journal ORDER BY seq", path
            )
        ]

    def tokens(self) -> list[str]:
        """The credential token (the card's keyed hash) of every journal row, in order."""
        return [str(token) for (token,) in self._select(
            "SELECT credential_token FROM journal ORDER BY seq"
        )]  # fmt: skip

    def _select(self, sql: str, path: Path | None = None) -> list[tuple[Any, ...]]:
        """The rows of a query on the store, read-only; none before the store exists."""
        path = path or self.folder / "store.db"
        if not path.exists():
            return []
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return list(conn.execute(sql))
        finally:
            conn.close()


def take_away(cards) -> None:
    """The rider's card leaves slot 0 (a PSAM in slot 1 stays).

    :param cards: the vpcd slots (the ``cards`` fixture)
    """
    for bridge, reader in list(cards.bridges):
        if reader == READER0:
            bridge.remove()
            assert cards.readers.wait_for_removal(reader, timeout=5)
            cards.bridges.remove((bridge, reader))


def journal_verify(config: Path, prefix: Sequence[str] = ()) -> int:
    """``sscard journal verify`` in a child process, for a journal whose length a test does not
    know in advance (random presentations, kills): not a golden call. The rows verified.

    :param config: the settings file
    :param prefix: a command the child runs under (``nsenter`` into a mount namespace)
    """
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "terminal.cli", "journal", "verify", "--config",
         str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"journal chain verified: (\d+) rows", done.stdout)
    assert found, done.stdout
    return int(found.group(1))


def make_terminal(folder: Path) -> TerminalFolder:
    """Write a working terminal folder: keys (0600), the catalogue and an empty signed deny list
    loaded with the real CLI."""
    pepper = folder / "pepper"
    pepper.write_bytes(PEPPER)
    key = folder / "journal.key"
    key.write_text(os.urandom(32).hex())
    for secret in (pepper, key):
        secret.chmod(0o600)
    private_copy(TEST_ROOTS, folder / "roots.toml")
    world = TerminalFolder(folder, folder / "terminal.toml", free_port())
    world.write()
    done = run_sscard("catalogue", "load", str(CATALOGUE), "--config", str(world.config))
    assert done.returncode == 0, done.stderr
    signer = Ed25519PrivateKey.generate()
    created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    deny = write_list(folder / "deny.jsonl", header("snapshot", 1, 0, created=created.isoformat()),
                      [], signer)  # fmt: skip
    pem = folder / "deny-signing.pem"
    pem.write_bytes(public_pem(signer))
    done = run_sscard("deny", "import", str(deny), "--config", str(world.config),
                      "--public-key", str(pem))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return world


class DaemonProcess:
    """``sscard run`` in a child process, with a notification socket of its own.

    :param terminal: the terminal folder
    :param prefix: a command the daemon runs under (``nsenter`` into a mount namespace)
    """

    def __init__(self, terminal: TerminalFolder, prefix: Sequence[str] = ()) -> None:
        self.terminal = terminal
        self.stderr_path = terminal.folder / f"run-{time.monotonic_ns()}.stderr"
        self._notify_dir = tempfile.mkdtemp(prefix="sscard-notify-")
        self.notify_path = os.path.join(self._notify_dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notifications: list[str] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=self.notify_path,
                   WATCHDOG_USEC="1000000", NO_COLOR="1")  # fmt: skip
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "terminal.cli", "-v", "run", "--config",
                 str(terminal.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
            )  # fmt: skip

    def wait_notification(self, state: str, timeout: float = START_TIMEOUT_S) -> float:
        """Wait for a line such as ``READY=1``; the monotonic time it came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None and state not in self.notifications:
                raise AssertionError(f"sscard run ended ({self.process.returncode}): {self.err()}")
            self.notify.settimeout(max(min(0.2, deadline - time.monotonic()), 0.01))
            try:
                data = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            self.notifications += data.splitlines()
            if state in data.splitlines():
                return time.monotonic()
        raise AssertionError(f"no {state} within {timeout} s: {self.err()}")

    def drain(self) -> list[str]:
        """Every notification received so far (without waiting)."""
        self.notify.setblocking(False)
        try:
            while True:
                self.notifications += self.notify.recv(4096).decode().splitlines()
        except BlockingIOError:
            pass
        finally:
            self.notify.setblocking(True)
        return self.notifications

    def err(self) -> str:
        """What the daemon wrote on stderr so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def shown(self) -> list[str]:
        """The reason codes of the console indicator's lines, in order."""
        signals = ("ACCEPT ", "REFUSE ", "ATTENTION")
        return [
            line.rsplit("(", 1)[1].rstrip(")")
            for line in self.err().splitlines()
            if line.startswith(signals)
        ]

    def metrics(self) -> dict[str, float]:
        """The metrics as ``name{label="v",…}`` → value."""
        url = f"http://127.0.0.1:{self.terminal.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def reader_state(self, reader: str = READER0) -> str | None:
        """The reader's state as the metrics show it."""
        for key, value in self.metrics().items():
            if key.startswith("sscard_reader_state{") and f'reader="{reader}"' in key and value:
                return key.split('sscard_reader_state="')[1].split('"')[0]
        return None

    def wait_rows(self, count: int, timeout: float = 10.0) -> list[tuple[int, str, str, str]]:
        """Wait until the journal holds ``count`` rows; fail if it holds more."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.terminal.rows()
            assert len(rows) <= count, rows
            if len(rows) == count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} rows, not {count}: {self.err()[-2000:]}")
            time.sleep(0.02)

    def wait_shown(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until the console indicator showed ``count`` decisions; fail on more."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.shown()
            assert len(shown) <= count, shown
            if len(shown) == count:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(shown)} decisions shown, not {count}")
            time.sleep(0.02)

    def wait_state(self, state: str, timeout: float = 10.0, reader: str = READER0) -> None:
        """Wait until the reader's state is ``state``."""
        deadline = time.monotonic() + timeout
        while self.reader_state(reader) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"{reader} not {state}: {self.reader_state(reader)}")
            time.sleep(0.02)

    def wait_said(self, text: str, timeout: float = 10.0) -> None:
        """Wait until the daemon's stderr holds ``text`` (an alarm, a log line)."""
        deadline = time.monotonic() + timeout
        while text not in self.err():
            assert time.monotonic() < deadline, self.err()[-2000:]
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        """Send a signal to the daemon."""
        self.process.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        """Kill what is left and remove the socket."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.notify.close()
        Path(self.notify_path).unlink(missing_ok=True)
        os.rmdir(self._notify_dir)
