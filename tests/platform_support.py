"""Helpers for the platform tests: a reference platform on loopback — in a thread of the test
process, or as a ``sscard platform serve`` child that can be killed — a signed HTTP client,
and chained journal rows.

Everything listens on 127.0.0.1 only and every server is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import golden
import requests

from drivers.virtual import PERSONAS, TEST_KEYS  # noqa: F401 - the platform tests take them here
from offline_store.chain import GENESIS_HASH, canonical_bytes, chain_hash
from platform_server import Platform, PlatformServer, create_app
from platform_server.terminals import Credentials

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_795_953_600.0  # 2026-11-29T08:00:00Z
START_TIMEOUT_S = 30.0


class Clock:
    """A wall clock the test moves by hand (``clock.now += 60``)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SignedClient:
    """A terminal talking to the platform: every request signed with its key.

    :param url: the platform's base URL
    :param credentials: the terminal's credentials
    :param clock: the clock the timestamps come from (default: the real one)
    """

    def __init__(self, url: str, credentials: Credentials, clock: Any = None) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.clock = clock or time.time
        self.session = requests.Session()

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        sign: bool = True,
        now: float | None = None,
        nonce: str | None = None,
        secret: bytes | None = None,
        timeout: float = 30.0,
    ) -> requests.Response:
        """Send a request, signed unless ``sign`` is false.

        :param method: GET or POST
        :param path: path and query, exactly as sent
        :param body: the body bytes
        :param headers: more headers (override the signature's)
        :param sign: sign the request
        :param now: the timestamp to sign with (default: the client's clock)
        :param nonce: a nonce to reuse (default: a fresh one)
        :param secret: another key to sign with (a wrong one)
        :param timeout: seconds
        """
        sent: dict[str, str] = {}
        if body:
            sent["Content-Type"] = "application/json"
        if sign:
            signer = replace(self.credentials, key=secret) if secret else self.credentials
            when = self.clock() if now is None else now
            sent.update(signer.sign(method, path, body, now=when, nonce=nonce))
        sent.update(headers or {})
        return self.session.request(
            method, self.url + path, data=body, headers=sent, timeout=timeout
        )

    def get(self, path: str, **options: Any) -> requests.Response:
        """A signed GET.

        :param path: path and query
        :param options: see :meth:`request`
        """
        return self.request("GET", path, **options)

    def post(self, path: str, document: Any, **options: Any) -> requests.Response:
        """A signed POST of a JSON document.

        :param path: the path
        :param document: the JSON document
        :param options: see :meth:`request`
        """
        return self.request("POST", path, json.dumps(document).encode("utf-8"), **options)

    def upload(self, rows: list[dict[str, Any]], **options: Any) -> requests.Response:
        """POST a journal batch.

        :param rows: the rows
        :param options: see :meth:`request`
        """
        return self.post("/v1/journal/batch", {"rows": rows}, **options)

    def close(self) -> None:
        """Close the session."""
        self.session.close()


def record(terminal_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A journal record (``JournalRow.record()``) with plausible values.

    :param terminal_id: the terminal
    :param seq: the seq
    :param fields: values to override
    """
    base: dict[str, Any] = {
        "v": "sscard-journal/1",
        "seq": str(seq),
        "uuid": str(uuid.UUID(int=seq + zlib.crc32(terminal_id.encode()) * 2**64, version=4)),
        "wall_time_us": str(int(NOW * 1_000_000) + seq * 1000),
        "monotonic_ns": str(123_000_000_000 + seq),
        "scenario": "gate",
        "catalogue_item": None,
        "credential_token": "",
        "outcome": "accept",
        "reason_code": "ok",
        "amount": None,
        "terminal_id": terminal_id,
        "personal_fields": [],
        "personal_ct": None,
    }
    base.update(fields)
    return base


def seal(rec: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """A row: the record with its ``prev_hash`` and ``hash``.

    :param rec: the record
    :param prev_hash: the hash it chains to
    """
    return {**rec, "prev_hash": prev_hash, "hash": chain_hash(prev_hash, canonical_bytes(rec))}


def chain_rows(
    terminal_id: str, count: int, *, start: int = 1, prev_hash: str = GENESIS_HASH
) -> list[dict[str, Any]]:
    """``count`` chained rows from seq ``start``.

    :param terminal_id: the terminal
    :param count: how many
    :param start: the first seq
    :param prev_hash: what the first row chains to
    """
    rows = []
    for seq in range(start, start + count):
        row = seal(record(terminal_id, seq), prev_hash)
        rows.append(row)
        prev_hash = row["hash"]
    return rows


@dataclass
class LivePlatform:
    """A platform served from a thread of the test process, with its library object for
    direct checks.

    :param folder: where its database and keys live
    :param clock: its clock
    """

    folder: Path
    clock: Clock
    db_url: str | None = None
    platform: Platform = field(init=False)
    server: PlatformServer = field(init=False)
    url: str = field(init=False)
    terminals: dict[str, Credentials] = field(default_factory=dict)
    clients: list[SignedClient] = field(default_factory=list)

    @property
    def db(self) -> str:
        """The database URL (default: an SQLite file in the folder)."""
        return self.db_url or f"sqlite:///{self.folder / 'platform.db'}"

    @property
    def keys_dir(self) -> Path:
        """The keys folder."""
        return self.folder / "keys"

    def start(self, terminals: dict[str, tuple[str, ...]]) -> None:
        """Create keys and database, register terminals, serve.

        :param terminals: terminal id → scenarios
        """
        setup = Platform.init(self.db, self.keys_dir, test_keys=TEST_KEYS, clock=self.clock)
        for terminal_id, scenarios in terminals.items():
            self.terminals[terminal_id] = setup.add_terminal(terminal_id, scenarios, "440100")
        setup.close()
        self.platform = Platform.open(self.db, self.keys_dir, clock=self.clock)
        app = create_app(self.db, self.keys_dir, clock=self.clock)
        self.server = PlatformServer(app, "127.0.0.1", 0)
        self.url = self.server.start()

    def restart(self) -> str:
        """Stop serving and serve the same database and keys again from a new application,
        as a restarted process would (nothing kept in memory); the new URL.
        """
        self.server.stop()
        app = create_app(self.db, self.keys_dir, clock=self.clock)
        self.server = PlatformServer(app, "127.0.0.1", 0)
        self.url = self.server.start()
        for client in self.clients:
            client.url = self.url.rstrip("/")
        return self.url

    def client(self, terminal_id: str = "T1") -> SignedClient:
        """A signed client for a registered terminal.

        :param terminal_id: the terminal
        """
        client = SignedClient(self.url, self.terminals[terminal_id], self.clock)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        """Stop the server and close everything."""
        for client in self.clients:
            client.close()
        self.server.stop()
        self.platform.close()


@contextmanager
def live_platform(
    folder: Path,
    terminals: dict[str, tuple[str, ...]],
    clock: Clock | None = None,
    db_url: str | None = None,
) -> Iterator[LivePlatform]:
    """A :class:`LivePlatform`, stopped on exit.

    :param folder: an empty folder
    :param terminals: terminal id → scenarios
    :param clock: its clock (default: a hand clock at :data:`NOW`)
    :param db_url: its database (default: an SQLite file in the folder)
    """
    live = LivePlatform(folder, clock or Clock(), db_url)
    live.start(terminals)
    try:
        yield live
    finally:
        live.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``sscard platform ARGS`` in a child process (``python -m terminal.cli platform``).

    :param args: the arguments after ``platform``
    :param cwd: its working folder
    :param timeout: seconds
    """
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "platform", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    return golden.completed(done)


class PlatformProcess:
    """``sscard platform serve`` in a child process, started, killed and restarted by tests.

    :param db: the database URL
    :param keys: the keys folder
    :param port: a fixed port, so a restart keeps the URL
    """

    def __init__(self, db: str, keys: Path, port: int) -> None:
        self.db = db
        self.keys = keys
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self.url = f"http://127.0.0.1:{port}/"
        self.printed = ""

    def start(self) -> str:
        """Start the child and wait until it answers ``/v1/health``.

        :returns: the URL it printed
        """
        command = [
            sys.executable,
            "-m",
            "terminal.cli",
            "platform",
            "serve",
            "--db",
            self.db,
            "--keys",
            str(self.keys),
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        printed = self.printed = self._first_line()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "v1/health", timeout=2).status_code == 200:
                    return printed
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"the platform did not answer on {self.url}")

    def _first_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT_S):
                raise AssertionError("sscard platform serve printed no URL")
        return self.process.stdout.readline().strip()

    def signal(self, signum: int) -> int:
        """Send a signal and wait for the child to end.

        :param signum: e.g. ``signal.SIGKILL``
        :returns: its exit status
        """
        assert self.process is not None
        self.process.send_signal(signum)
        status = self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        golden.observed(self.process.args, status, self.printed + "\n")  # type: ignore[arg-type]
        self.process = None
        return status

    def stop(self) -> None:
        """SIGTERM (idempotent)."""
        if self.process is not None:
            self.signal(signal.SIGTERM)
