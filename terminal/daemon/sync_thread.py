"""The daemon's sync: one cycle on demand (:meth:`Syncer.sync_now`, also the admin socket's),
and a thread that runs one every ``[daemon] sync_interval_s``.

A cycle is :meth:`sync.client.SyncClient.sync_once` (clock, secrets, deny list, trust list,
catalogue, journal upload, deferred e-card codes, heartbeat) on the daemon's own store. The
store serialises each of its operations and each import is one transaction, so the sync does not
hold the daemon's ``store_lock`` across its network calls: a platform that does not answer
never holds a tap up. Cycles never overlap (the thread's and an operator's).
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from apdu.errors import SscardError
from ecard.trust import save_trust_list
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.reports import StepStatus, SyncReport, TimeReport
from terminal.daemon.parts import DaemonParts
from terminal.ecard_confirm import FollowUps

log = logging.getLogger(__name__)

IDLE_CHECK_S = 1.0  # without a platform configured, the settings are looked at again this often


def report_dict(report: SyncReport) -> dict[str, Any]:
    """A sync report as a JSON-ready dict (no personal data, no key).

    :param report: the report
    """
    return {
        "exit_status": report.exit_status,
        "steps": [
            {"name": step.name, "status": str(step.status), "detail": step.detail}
            for step in report.steps
        ],
    }


class Syncer:
    """Sync cycles of one daemon.

    :param daemon: the daemon's parts it uses (its terminal, metrics, stop flag)
    """

    def __init__(self, daemon: DaemonParts) -> None:
        self.daemon = daemon
        self._cycle = threading.Lock()
        self.last: dict[str, Any] | None = None
        self.cycles = 0

    def sync_now(self) -> dict[str, Any]:
        """Run one sync cycle now (after the one in progress, if any).

        :returns: its report (:func:`report_dict`)
        :raises: nothing: every failure is in the report
        """
        return report_dict(self.cycle())

    def cycle(self) -> SyncReport:
        """Run one sync cycle now (after the one in progress, if any).

        :returns: its report, as ``sscard sync --once`` prints it (:mod:`terminal.operator`)
        :raises: nothing: every failure is in the report
        """
        daemon = self.daemon
        with self._cycle:
            settings = daemon.terminal.settings
            try:
                config = SyncConfig.from_settings(settings)
            except SscardError as exc:
                report = SyncReport()
                report.add("config", StepStatus.FAILED, str(exc))
                return self._done(report)
            saver = functools.partial(save_trust_list, production=settings.production)
            with SyncClient(
                config,
                daemon.terminal.store,
                trust_saver=saver,
                stop=daemon.stopping,
                follow_up=FollowUps(),
            ) as client:
                report = client.sync_once()
            return self._done(report)

    def _done(self, report: SyncReport) -> SyncReport:
        self.cycles += 1
        self.last = report_dict(report)
        metrics = self.daemon.metrics
        metrics.syncs.labels({0: "ok", 1: "refused", 2: "failed"}[report.exit_status]).inc()
        step = report.step("time")
        if step is not None and isinstance(step.value, TimeReport):
            metrics.clock_offset.set(step.value.offset_s)
        log.info("event=sync_done exit_status=%d steps=%s", report.exit_status,
                 ",".join(f"{s.name}:{s.status}" for s in report.steps))  # fmt: skip
        self.daemon.after_sync()
        return report

    def run(self) -> None:
        """The sync thread: a cycle every ``[daemon] sync_interval_s`` (read at each cycle, so
        a reload changes it) while a platform is configured."""
        stop = self.daemon.stopping
        while not stop.is_set():
            settings = self.daemon.terminal.settings
            interval = settings.sync_interval_s
            if interval <= 0 or not settings.sync_url:
                stop.wait(IDLE_CHECK_S)
                continue
            self.sync_now()
            stop.wait(interval)
