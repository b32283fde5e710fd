"""Unit tests of the daemon's parts that need no device: the watchdog, device health, the JSON
log formatter, systemd notifications, reader matching and the metrics' text."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import tempfile
import threading
import time

import pytest

from terminal.daemon.devices import ReaderMissing, match_reader
from terminal.daemon.logs import JsonFormatter
from terminal.daemon.metrics import DaemonMetrics
from terminal.daemon.notify import Notifier
from terminal.daemon.supervisor import FIRST_BACKOFF_S, Health, Watchdog


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_watchdog_restarts_a_thread_that_died_and_counts_it() -> None:
    stop = threading.Event()
    runs: list[int] = []
    restarted: list[str] = []

    def target() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        stop.wait()

    dog = Watchdog(stop, restarted.append)
    dog.add("flaky", target)
    _until(lambda: (dog.check(), len(runs) >= 3)[1])
    assert restarted == ["flaky", "flaky"] and dog.restarts == 2
    assert dog.threads["flaky"].last_error == "RuntimeError: boom"
    assert dog.threads["flaky"].backoff_s == FIRST_BACKOFF_S * 4  # doubled at each restart
    stop.set()
    assert dog.join(["flaky"], 2) == []
    assert dog.check() == []  # nothing is restarted once the daemon stops


def test_a_thread_returning_while_the_daemon_runs_is_dead_unless_its_return_is_final() -> None:
    stop = threading.Event()
    dog = Watchdog(stop)
    dog.add("ended", lambda: None, final_return=True)
    dog.add("returned", lambda: None)
    _until(lambda: not dog.threads["ended"].alive() and not dog.threads["returned"].alive())
    time.sleep(FIRST_BACKOFF_S * 1.5)
    assert dog.check() == ["returned"]
    assert dog.threads["ended"].finished and dog.threads["ended"].restarts == 0
    stop.set()


def test_health_raises_one_alarm_per_change() -> None:
    changes: list[tuple[str, bool]] = []
    out = io.StringIO()
    health = Health(lambda device, up: changes.append((device, up)), out)
    health.up("pcscd")
    health.down("pcscd", "Service not available")
    health.down("pcscd", "Service not available")
    health.up("pcscd")
    assert changes == [("pcscd", True), ("pcscd", False), ("pcscd", True)]
    assert out.getvalue().splitlines() == [
        "sscard: ALARM: pcscd is down: Service not available",
        "sscard: device back: pcscd",
    ]


def test_json_log_lines_carry_the_event_fields() -> None:
    record = logging.LogRecord(
        "terminal.pipeline", logging.INFO, __file__, 1,
        "event=tap scenario=%s reason=%s card=%s detail=%r", ("transit", "ok", "A******50",
        "two words"), None,
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "tap" and line["scenario"] == "transit"
    assert line["card"] == "A******50" and line["detail"] == "two words"
    assert line["level"] == "info" and line["logger"] == "terminal.pipeline"
    assert "\n" not in JsonFormatter().format(record)


def test_sd_notify_reaches_the_socket_and_never_blocks() -> None:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        notifier = Notifier(path)
        assert notifier.send("READY=1", "STATUS=ok")
        assert listener.recv(100) == b"READY=1\nSTATUS=ok"
        started = time.monotonic()
        sent = [notifier.send("WATCHDOG=1") for _ in range(2000)]  # nobody reads: the queue fills
        assert not all(sent) and time.monotonic() - started < 5
    os.unlink(path)
    os.rmdir(folder)
    assert not Notifier("").send("READY=1")


def test_the_watchdog_ping_interval_is_half_of_systemds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    assert Notifier("x").ping_interval_s() == 10.0
    monkeypatch.setenv("WATCHDOG_USEC", "junk")
    assert Notifier("x").ping_interval_s() == 10.0


def test_a_reader_is_matched_by_a_unique_part_of_its_name_never_the_psams() -> None:
    names = ["Virtual PCD 00 00", "Virtual PCD 00 01"]
    assert match_reader(names, "00 00", ()) == "Virtual PCD 00 00"
    assert match_reader(names, "Virtual", ("00 01",)) == "Virtual PCD 00 00"
    with pytest.raises(ReaderMissing, match="ambiguous"):
        match_reader(names, "Virtual", ())
    with pytest.raises(ReaderMissing, match="not connected"):
        match_reader(names, "ACS ACR122U", ())


def test_the_metrics_text_names_outcomes_and_devices_never_people() -> None:
    metrics = DaemonMetrics()
    metrics.decisions.labels("accept", "ok").inc()
    metrics.device_up.labels("reader:Virtual PCD 00 00").set(1)
    metrics.reader_state.labels("Virtual PCD 00 00").state("processing")
    text = metrics.text()
    assert 'sscard_decisions_total{outcome="accept",reason="ok"} 1.0' in text
    assert 'sscard_device_up{device="reader:Virtual PCD 00 00"} 1.0' in text
    assert 'sscard_reader_state="processing"} 1.0' in text
