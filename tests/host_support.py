"""Running ``sscard host serve`` for the host API tests: a child process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from daemon_support import DaemonProcess, TerminalFolder
from support import CATALOGUE, TEST_ROOTS

from config.settings import load_settings
from drivers.keyfile import private_copy
from terminal.compose import open_store

ALLOWED = "http://his.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_host(tmp_path: Path, *extra: str) -> Iterator[str]:
    """Serve the API with a store in ``tmp_path``; yields its base URL, stops it after."""
    pepper = tmp_path / "pepper"
    pepper.write_bytes(os.urandom(32))
    pepper.chmod(0o600)
    journal_key = tmp_path / "journal.key"
    journal_key.write_text(os.urandom(32).hex())
    journal_key.chmod(0o600)
    config = tmp_path / "terminal.toml"
    config.write_text(
        '[terminal]\nid = "HOST-01"\n[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        'journal_key_file = "journal.key"\n'
    )
    with open_store(load_settings(config)) as store:
        store.catalogue.load_file(CATALOGUE)
    port = free_port()
    cmd = [sys.executable, "-m", "terminal.cli", "host", "serve", "--port", str(port)]
    keys = private_copy(TEST_ROOTS, tmp_path / "roots.toml")
    cmd += ["--config", str(config), "--soft-sam", str(keys)]
    proc = subprocess.Popen(
        [*cmd, "--origin", ALLOWED, *extra],
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stderr=(tmp_path / "serve.err").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(base + "/openapi.json", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "serve.err").read_text()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_daemon_host(
    terminal: TerminalFolder,
    scenario: str,
    extra: str = "",
    origins: tuple[str, ...] = (ALLOWED,),
    *,
    sam_reader: str | None = None,
    tables: str = "",
) -> tuple[DaemonProcess, str]:
    """``sscard run`` for ``scenario`` with ``[host]`` enabled on a free port (``extra``: more
    ``[host]`` keys; ``tables``: more tables after it, ``[payments]`` …; ``sam_reader``: the
    PSAM's reader); returns the daemon, ready for cards, and the API's base URL."""
    port = free_port()
    listed = ", ".join(f'"{origin}"' for origin in origins)
    host = f"[host]\nenabled = true\nport = {port}\norigins = [{listed}]\n{extra}{tables}"
    terminal.write(scenario=scenario, extra=host, sam_reader=sam_reader)
    daemon = DaemonProcess(terminal)
    try:
        daemon.wait_notification("READY=1")
        daemon.wait_state("waiting_card")
    except BaseException:
        daemon.close()
        raise
    return daemon, f"http://127.0.0.1:{port}"
