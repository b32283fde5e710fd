"""The daemon's metrics in the Prometheus text format (``prometheus-client``).

Each daemon has its own registry (no process-wide default: tests run several). The metrics are
served on ``127.0.0.1:[daemon] metrics_port`` when set, and written to ``[daemon]
metrics_file`` (atomically, by the client library) after each decision and sync. Labels never
hold personal data: outcomes, reason codes, list names, device names.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
    write_to_textfile,
)

log = logging.getLogger(__name__)

#: a tap through pcscd takes 5-50 ms, a PSAM or HSM adds tens; beyond 2 s a gate queue forms
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
APDU_BUCKETS = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64)
READER_STATES = ("waiting_card", "processing", "waiting_removal", "down", "stopped")


class DaemonMetrics:
    """What ``sscard run`` counts and measures.

    :param metrics_file: where :meth:`flush` writes the text format, or ``None``
    """

    def __init__(self, metrics_file: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics_file = metrics_file
        self._server: Any = None
        self._flush_lock = threading.Lock()
        r = self.registry
        self.decisions = Counter(
            "sscard_decisions", "Decisions journaled, by outcome and reason", ["outcome", "reason"],
            registry=r,
        )  # fmt: skip
        self.tap_latency = Histogram(
            "sscard_tap_latency_seconds", "Card or code seen to decision journaled",
            ["source"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.apdus = Histogram(
            "sscard_apdus_per_tap", "APDUs sent to the card in one tap", buckets=APDU_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.backlog = Gauge("sscard_backlog_rows", "Journal rows not yet acknowledged", registry=r)
        self.list_age = Gauge(
            "sscard_list_age_seconds", "Age of each list (-1: never provisioned)", ["list"],
            registry=r,
        )  # fmt: skip
        self.clock_offset = Gauge(
            "sscard_clock_offset_seconds", "Platform clock minus local clock at the last sync",
            registry=r,
        )  # fmt: skip
        self.device_up = Gauge(
            "sscard_device_up", "1 when a device (reader, scanner, pcscd, module) works",
            ["device"], registry=r,
        )  # fmt: skip
        self.reader_state = Enum(
            "sscard_reader_state", "Each card reader's state", ["reader"],
            states=list(READER_STATES), registry=r,
        )  # fmt: skip
        self.restarts = Counter(
            "sscard_watchdog_restarts", "Threads the watchdog restarted", ["thread"], registry=r
        )
        self.syncs = Counter("sscard_syncs", "Sync cycles, by result", ["result"], registry=r)

    def serve(self, port: int) -> None:
        """Serve the metrics on ``127.0.0.1:port`` (loopback only).

        :param port: the TCP port
        :raises OSError: the port cannot be bound
        """
        self._server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        log.info("event=metrics_serving port=%d", port)

    def text(self) -> str:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry).decode("utf-8")

    def flush(self) -> None:
        """Write the metrics file, if one is configured; a failure is logged, never raised."""
        if self.metrics_file is None:
            return
        with self._flush_lock:
            try:
                write_to_textfile(str(self.metrics_file), self.registry)
            except OSError as exc:
                log.warning("event=metrics_file_failed path=%s error=%s", self.metrics_file, exc)

    def close(self) -> None:
        """Stop serving; harmless twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
