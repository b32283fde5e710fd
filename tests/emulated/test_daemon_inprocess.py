"""The daemon in the test process: a serial code scanner (an emulated scanner on a socat pty
pair) feeding the decision worker, the status and sync calls the admin socket uses, the metrics
file, and a reload that is refused. No pcscd is needed: the configured reader is missing, which
is what the status must say."""

from __future__ import annotations

import io
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from pty_pair import SocatPair

from drivers.virtual.qr_scanner import VirtualQrScanner
from terminal.daemon.admin import ask
from terminal.daemon.core import Daemon
from terminal.daemon.notify import Notifier

pytestmark = pytest.mark.emulated

MISSING_READER = "No Such Reader 9"


def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_scanner_feeds_the_worker_and_status_and_sync_now_report(
    tmp_path: Path, pty_pair: SocatPair, device: VirtualQrScanner
) -> None:
    pepper = tmp_path / "pepper"
    pepper.write_bytes(b"TEST PEPPER: in-process daemon test")
    pepper.chmod(0o600)
    config = tmp_path / "terminal.toml"
    config.write_text(
        '[terminal]\nid = "INPROC-1"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        "[indicators]\nconsole = false\nvoice = false\n"
        f'[daemon]\nscenario = "gate"\nreaders = ["{MISSING_READER}"]\n'
        f'scanners = ["serial:{pty_pair.terminal}"]\nsync_interval_s = 0\n'
        'metrics_file = "metrics.prom"\n'
    )
    alarms = io.StringIO()
    daemon = Daemon(str(config), notifier=Notifier(""), alarms=alarms)
    daemon.start()
    main = threading.Thread(target=daemon.serve, name="test-main")
    main.start()
    try:
        device.scan("not a code of any format")
        _until(lambda: daemon.worker.decided == 1)
        _until(lambda: daemon.status()["readers"][MISSING_READER] == "down")
        status = daemon.status()
        assert status["terminal_id"] == "INPROC-1" and status["scenario"] == "gate"
        assert status["devices"][f"scanner:serial:{pty_pair.terminal}"] is True
        assert status["devices"][f"reader:{MISSING_READER}"] is False
        assert status["backlog_rows"] == 1 and status["decisions"] == 1
        assert status["list_ages_s"]["deny_list"] is None  # never provisioned
        assert status["watchdog_restarts"] == 0 and all(status["threads"].values())
        # the health record changes before the alarm line is written: wait for the line
        _until(lambda: f"sscard: ALARM: reader:{MISSING_READER} is down" in alarms.getvalue())

        socket_path = tmp_path / "admin.sock"  # [daemon] admin_socket: next to the store
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
        answer = ask(socket_path, "status", {}, timeout_s=10)
        assert answer.exit_status == 0 and any("INPROC-1" in line for line in answer.out)

        report = daemon.sync_now()  # no [sync] configured: a failed report, not an exception
        assert report["exit_status"] == 2 and report["steps"][0]["name"] == "config"

        metrics = (tmp_path / "metrics.prom").read_text()
        assert 'sscard_decisions_total{outcome="attention",reason="qr_bad_encoding"} 1.0' in metrics
        assert "sscard_backlog_rows 1.0" in metrics

        config.write_text("[daemon]\nscanners = 7\n")
        assert daemon.reload() is False
        assert "reload refused, the old settings stay: " in alarms.getvalue()
        assert "daemon.scanners" in alarms.getvalue()  # the reason names the key
        assert daemon.terminal.settings.terminal_id == "INPROC-1"
    finally:
        daemon.request_stop()
        main.join(20)
    assert not main.is_alive()
    assert os.stat(tmp_path / "store.db.lock")  # the store was closed, its lock file stays
    assert not (tmp_path / "admin.sock").exists()  # the admin socket went with the daemon


def test_a_serial_scanner_that_goes_away_is_taken_back_when_it_returns(
    tmp_path: Path, pty_pair: SocatPair
) -> None:
    pepper = tmp_path / "pepper"
    pepper.write_bytes(b"TEST PEPPER: in-process daemon test")
    pepper.chmod(0o600)
    config = tmp_path / "terminal.toml"
    config.write_text(
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        "[indicators]\nconsole = false\nvoice = false\n"
        f'[daemon]\nscenario = "gate"\nscanners = ["serial:{pty_pair.terminal}"]\n'
        "sync_interval_s = 0\n"
    )
    alarms = io.StringIO()
    daemon = Daemon(str(config), notifier=Notifier(""), alarms=alarms)
    daemon.start()
    main = threading.Thread(target=daemon.serve, name="test-main")
    main.start()
    device = f"scanner:serial:{pty_pair.terminal}"
    try:
        with VirtualQrScanner(pty_pair.device) as emulated:
            assert emulated.wait_until(lambda s: s.connections >= 1, 5)
            emulated.scan("first code")
            _until(lambda: daemon.worker.decided == 1)
        pty_pair.stop()  # the scanner's cable pulled
        _until(lambda: daemon.health.devices.get(device) is False)
        _until(lambda: f"sscard: ALARM: {device} is down" in alarms.getvalue())
        pty_pair.start()  # plugged in again, under the same name
        back = time.monotonic()
        with VirtualQrScanner(pty_pair.device) as emulated:
            assert emulated.wait_until(lambda s: s.connections >= 1, 5)
            _until(lambda: daemon.health.devices.get(device) is True)
            assert time.monotonic() - back <= 2.0
            emulated.scan("second code")
            _until(lambda: daemon.worker.decided == 2)
        _until(lambda: f"sscard: device back: {device}" in alarms.getvalue())
        assert daemon.status()["threads"][f"scanner:serial:{pty_pair.terminal}"]
    finally:
        daemon.request_stop()
        main.join(20)
    assert not main.is_alive()
