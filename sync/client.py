"""The terminal's side of the sync with the one-card platform (docs/sync.md).

::

    with SyncClient(SyncConfig.from_settings(settings), store, trust_saver=save_trust_list) as c:
        report = c.sync_once()

:class:`SyncClient` composes the two halves of the protocol over one signed transport: the
:class:`~sync.uploader.Uploader` (the journal in signed batches, then the confirmation of
deferred e-card codes) and the :class:`~sync.lists.ListUpdater` (deny list, trust list,
catalogue, and the secrets that verify them). It keeps the platform's clock itself: the offset
(server minus local, at the round trip's midpoint) is kept in the store's ``meta`` table
(``sync.*``) and a local clock off by more than ``max_clock_offset_s`` raises an alarm.

The client never logs a key, a pepper or a personal value: rows travel with their personal
fields encrypted (the platform checks their hash chain without opening them).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from apdu.errors import SscardError
from apdu.resources import Closing
from offline_store import Store
from sync.answers import server_time
from sync.config import SyncConfig
from sync.deferred import plain_follow_up
from sync.lists import ListUpdater, TrustSaver
from sync.outcomes import describe, failure
from sync.reports import (
    CatalogueReport,
    DeferredReport,
    DenyReport,
    HeartbeatReport,
    SecretsReport,
    StepStatus,
    SyncReport,
    TimeReport,
    TrustReport,
    UploadReport,
)
from sync.transport import Exchange, RetryPolicy, SignedTransport
from sync.uploader import FollowUp, Progress, Uploader

__all__ = ["FollowUp", "Progress", "SyncClient", "TrustSaver"]

log = logging.getLogger(__name__)

PATH_TIME = "/v1/time"
PATH_HEARTBEAT = "/v1/heartbeat"
META_SERVER_TIME = "sync.server_time"
META_OFFSET = "sync.clock_offset_s"
META_SYNCED_AT = "sync.synced_at"
SOFTWARE = "sscard-terminal"


class SyncClient(Closing):
    """Talks to the platform for one terminal and its offline store.

    :param config: the sync settings (:meth:`SyncConfig.from_settings`)
    :param store: the open offline store
    :param session: a :class:`requests.Session` to use (tests); default: a new one with the
        TLS settings of ``config``
    :param clock: the wall clock (signatures, clock offset)
    :param trust_saver: verifies and keeps a trust list; without one the trust list is not
        updated (the step says so)
    :param stop: set it to make the client give up at the next batch or retry
        (:class:`SyncStopped`); the daemon's shutdown event
    :param policy: the retry policy (tests shorten it)
    :param rng: the random source of the retry jitter (tests seed it)
    :param transport: the terminal's transport to the platform when it has one already
        (shared with e-card decoding); default: :meth:`SyncConfig.transport`
    :param follow_up: the uploader's (:class:`sync.uploader.Uploader`)
    """

    def __init__(
        self,
        config: SyncConfig,
        store: Store,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        *,
        trust_saver: TrustSaver | None = None,
        stop: threading.Event | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        transport: SignedTransport | None = None,
        follow_up: FollowUp = plain_follow_up,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.stop = stop or (transport.stop if transport is not None else threading.Event())
        self._last_offset: float | None = None
        self.transport = transport or config.transport(
            session=session, policy=policy, clock=clock, stop=self.stop, rng=rng
        )
        self.uploader = Uploader(self.transport, store, config, self.stop, follow_up)
        self.lists = ListUpdater(self.transport, store, config, clock, trust_saver)

    # --- the journal (:class:`~sync.uploader.Uploader`) ----------------------------------

    def upload(self, progress: Progress | None = None) -> UploadReport:
        """Send the journal's unacknowledged rows: :meth:`Uploader.upload`."""
        return self.uploader.upload(progress)

    def confirm_deferred(self) -> DeferredReport:
        """Confirm the deferred e-card codes: :meth:`Uploader.confirm_deferred`."""
        return self.uploader.confirm_deferred()

    # --- lists and secrets (:class:`~sync.lists.ListUpdater`) ----------------------------

    def update_deny(self) -> DenyReport:
        """Bring the deny list up to date: :meth:`ListUpdater.update_deny`."""
        return self.lists.update_deny()

    def update_trust(self) -> TrustReport:
        """Bring the trust list up to date: :meth:`ListUpdater.update_trust`."""
        return self.lists.update_trust()

    def update_catalogue(self, region: str | None = None) -> CatalogueReport:
        """Replace the catalogue: :meth:`ListUpdater.update_catalogue`."""
        return self.lists.update_catalogue(region)

    def fetch_secrets(self) -> SecretsReport:
        """Fetch and write the terminal's secrets: :meth:`ListUpdater.fetch_secrets`."""
        return self.lists.fetch_secrets()

    # --- time, heartbeat, the whole sync --------------------------------------------------

    def sync_time(self) -> TimeReport:
        """Read the platform's clock and record the local clock's offset in the store.

        :returns: the server time, the offset and whether it is beyond the limit (an alarm,
            also logged as a warning)
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        exchange, now = self.transport.request("GET", PATH_TIME, check=server_time)
        assert now is not None  # the check always returns one
        report = self._record_time(exchange, now)
        log.info("event=sync_time offset_s=%.3f rtt_s=%.3f", report.offset_s, report.rtt_s)
        return report

    def heartbeat(self) -> HeartbeatReport:
        """Tell the platform the software version, list versions, backlog and clock offset
        (measured first when this client has not read the platform's clock yet).

        :returns: the platform's time and the backlog reported
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        trust = self.store.trust.info()
        offset = self._last_offset
        if offset is None:  # the platform takes a number: measure it when this run has none
            offset = self.sync_time().offset_s
        backlog = self.store.journal.backlog().pending
        body = {
            "software_version": _software_version(),
            "deny_version": self.store.deny.status().version,
            "trust_version": trust.version if trust else None,
            "backlog": backlog,
            "clock_offset_s": round(offset, 3),
        }
        now = self.transport.post_json(
            PATH_HEARTBEAT, json.dumps(body).encode("utf-8"), server_time
        )
        return HeartbeatReport(now, backlog)

    def sync_once(self, progress: Progress | None = None) -> SyncReport:
        """One whole sync: time, secrets, deny list, trust list, catalogue, upload, the
        confirmation of deferred e-card codes, heartbeat.

        A step that is refused does not stop the others (the journal still goes up when a
        list is refused); a platform that cannot be reached, a refused signature, a pinned
        certificate that does not match or a stop request ends the sync there.

        :param progress: passed to :meth:`upload`
        :returns: one result per step; :attr:`SyncReport.exit_status` sums them up
        :raises: nothing but programming errors: every failure is in the report
        """
        report = SyncReport()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("time", self.sync_time),
            ("secrets", self.fetch_secrets),
            ("deny", self.update_deny),
            ("trust", self.update_trust),
            ("catalogue", lambda: self.update_catalogue(self.config.region)),
            ("upload", lambda: self.upload(progress)),
            ("ecard", self.confirm_deferred),
            ("heartbeat", self.heartbeat),
        ]
        for name, step in steps:
            try:
                value = step()
            except (SscardError, OSError) as exc:
                status, detail, final = failure(exc, self.config.max_clock_offset_s)
                report.add(name, status, detail)
                if final:
                    break
            else:
                report.add(name, *describe(name, value))
        alarm = self.store.journal.alarm()
        if alarm:
            report.add("journal", StepStatus.ALARM, alarm)
        for step_result in report.steps:
            level = logging.INFO if step_result.status is StepStatus.OK else logging.WARNING
            log.log(
                level, "event=sync_step name=%s status=%s", step_result.name, step_result.status
            )
        return report

    # --- plumbing -----------------------------------------------------------------------

    def _record_time(self, exchange: Exchange, server_time: float) -> TimeReport:
        offset = server_time - exchange.midpoint
        self._last_offset = offset
        report = TimeReport(server_time, offset, exchange.rtt_s, self.config.max_clock_offset_s)
        self.store.meta.set(
            {
                META_SERVER_TIME: f"{server_time:.3f}",
                META_OFFSET: f"{offset:.3f}",
                META_SYNCED_AT: f"{exchange.midpoint:.3f}",
            }
        )
        if report.alarm:
            log.warning(
                "event=sync_clock_alarm offset_s=%.1f limit_s=%.0f",
                offset,
                self.config.max_clock_offset_s,
            )
        return report

    def close(self) -> None:
        """Close the HTTP session (the store stays open: it is the caller's).

        :raises: nothing
        """
        self.transport.close()


def _software_version() -> str:
    try:
        return importlib.metadata.version(SOFTWARE)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
