"""The daemon: ``sscard run``, the program that stays up on a validator, gate, desk or kiosk.

Threads (each supervised by the :class:`~terminal.daemon.supervisor.Watchdog`, which the main
thread runs)::

    reader:<name> ─┐  (one per card reader: waiting_card → processing → waiting_removal)
    scanner:<spec> ┼─► worker (one: the pipeline; journal with fsync, then the indicators)
                   │
    sync ──────────┴── (a cycle every [daemon] sync_interval_s; Syncer.sync_now on demand)
    host-api            ([host] enabled: the HTTP API over the desk, terminal/daemon/host.py)

The main thread starts everything, tells systemd it is ready (``READY=1``), then every
:data:`TICK_S` restarts dead threads, pings systemd's watchdog while the worker lives, and acts
on the signals: SIGTERM and SIGINT stop (the decision in flight is finished and journaled, the
devices and the store closed, exit status 0); SIGHUP reloads the settings and the profile, and
a file that does not load is refused with its reason logged while the old settings stay. The
signal handlers only set flags: all the work happens in the main loop.

The daemon owns the store. What the admin socket (``terminal/daemon/admin.py``) and other
in-process users need is here: :attr:`Daemon.store`, :attr:`Daemon.store_lock` (held for each
decision, each status read and each operator command), :meth:`Daemon.status` and
:meth:`Daemon.sync_now`.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from apdu.errors import ReaderUnavailable, SscardError
from config.errors import ConfigError
from config.settings import Settings, load_settings
from offline_store import Store
from offline_store.freshness import list_ages
from terminal.compose import Terminal, open_terminal, profile_dir_of, warn_operator
from terminal.daemon.admin import AdminServer
from terminal.daemon.inputs import ReaderLoop, ScannerLoop
from terminal.daemon.metrics import DaemonMetrics
from terminal.daemon.notify import Notifier
from terminal.daemon.supervisor import Health, Watchdog
from terminal.daemon.sync_thread import Syncer
from terminal.daemon.worker import DecisionWorker
from terminal.host.desk import Desk
from terminal.operator import sync_answer
from terminal.profiles import load_profile

if TYPE_CHECKING:  # the host API (FastAPI, uvicorn) is imported only when [host] is enabled
    from terminal.daemon.host import HostEndpoint

log = logging.getLogger(__name__)

TICK_S = 0.1  # the main loop's period: signals, watchdog, systemd pings
STOP_JOIN_S = 15.0  # inputs finish their decision in flight, the worker its queue
#: settings a reload cannot change in a running daemon (they name what it has opened)
RESTART_ONLY = ("database", "pepper_file", "journal_key_file", "daemon_readers",
                "daemon_sam_reader", "daemon_scanners", "metrics_port", "hsm_url",
                "soft_sam_keys", "host_enabled")  # fmt: skip


class Daemon:
    """``sscard run``: every reader and scanner, one decision worker, sync, watchdog.

    :param config: the settings file (``None``: ``$SSCARD_CONFIG``, then the default path)
    :param notifier: systemd's notification socket (default: from ``$NOTIFY_SOCKET``)
    :param alarms: where the operator's alarm lines go (default: stderr)
    """

    def __init__(
        self,
        config: str | None = None,
        *,
        notifier: Notifier | None = None,
        alarms: TextIO | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.stopping = threading.Event()
        self.store_lock = threading.Lock()
        self.started = time.monotonic()
        self.metrics = DaemonMetrics()
        self.health = Health(self._device_changed, alarms)
        self.watchdog = Watchdog(self.stopping, self._restarted)
        self.worker = DecisionWorker(self)
        self.syncer = Syncer(self)
        self.readers: list[ReaderLoop] = []
        self.scanners: list[ScannerLoop] = []
        self._terminal: Terminal | None = None
        self.admin: AdminServer | None = None
        self.desk: Desk | None = None  # with [host] enabled: what the host API sees of the taps
        self.host: HostEndpoint | None = None
        self._stop_signal: int | None = None
        self._reload_requested = False

    # -- what the admin socket and other in-process users take ------------------------------

    @property
    def terminal(self) -> Terminal:
        """The terminal the daemon decides with (replaced, in part, by a reload).

        :raises SscardError: before :meth:`start`
        """
        if self._terminal is None:
            raise SscardError("the daemon has not started")
        return self._terminal

    @property
    def store(self) -> Store:
        """The offline store the daemon owns; hold :attr:`store_lock` while using it."""
        return self.terminal.store

    def status(self) -> dict[str, Any]:
        """What ``sscard status`` shows: readers and their states, devices, backlog, list ages,
        decisions, watchdog restarts, uptime, the last sync.

        :raises StoreError: the store cannot be read
        """
        terminal = self.terminal
        now = dt.datetime.now(dt.UTC)
        with self.store_lock:
            backlog = terminal.store.journal.backlog().pending
            ages = list_ages(terminal.store)
        return {
            "terminal_id": terminal.settings.terminal_id,
            "scenario": terminal.profile.name,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "readers": {loop.wanted: loop.state for loop in self.readers},
            "scanners": [loop.spec for loop in self.scanners],
            "devices": dict(self.health.devices),
            "alarms": dict(self.health.reasons),
            "backlog_rows": backlog,
            "list_ages_s": {str(name): age.age_s(now) for name, age in ages.items()},
            "decisions": self.worker.decided,
            "decision_errors": self.worker.failed,
            "watchdog_restarts": self.watchdog.restarts,
            "threads": {name: entry.alive() for name, entry in self.watchdog.threads.items()},
            "last_sync": self.syncer.last,
        }

    def sync_now(self) -> dict[str, Any]:
        """Run one sync cycle now and return its report (``exit_status`` and ``steps``).

        :raises: nothing: every failure is in the report
        """
        return self.syncer.sync_now()

    def sync_answer(self) -> dict[str, Any]:
        """One sync cycle now, answered as ``sscard sync --once`` prints its own (the admin
        socket's ``sync-once``: the operator sees the same lines whoever ran the sync).

        :raises: nothing: every failure is in the answer
        """
        return sync_answer(self.syncer.cycle()).to_json()

    # -- start, serve, stop ----------------------------------------------------------------

    def start(self) -> None:
        """Open the terminal and start every thread; then tell systemd the daemon is ready.

        :raises SscardError: settings, profile, store, keys, module or metrics port that
            cannot be used (nothing is left running)
        """
        settings = load_settings(self.config)
        profile = load_profile(settings.daemon_scenario)
        terminal = open_terminal(
            settings, profile, profile_dir=profile_dir_of(settings.daemon_scenario)
        )
        self._terminal = terminal
        try:
            self._start_parts(terminal)
        except BaseException:
            self.stopping.set()
            terminal.close()
            raise
        self.notifier.send("READY=1", f"STATUS=deciding for {profile.name}")
        readers = ",".join(r.wanted for r in self.readers)
        log.info("event=daemon_ready scenario=%s readers=%r scanners=%r",
                 profile.name, readers, ",".join(terminal.scanners))  # fmt: skip

    def _start_parts(self, terminal: Terminal) -> None:
        settings = terminal.settings
        warn_operator(terminal.pipeline)
        self.metrics.metrics_file = settings.metrics_file
        if settings.metrics_port:
            try:
                self.metrics.serve(settings.metrics_port)
            except OSError as exc:
                raise SscardError(
                    f"[daemon] metrics_port {settings.metrics_port}: {exc.strerror}"
                ) from exc
        if terminal.scanners:
            self.worker.verifier()  # [ecard] settings that cannot be used fail now, not at a scan
        if settings.host_enabled:
            from terminal.daemon.host import HostEndpoint  # noqa: PLC0415 - FastAPI, uvicorn

            self.desk = Desk()
            self.host = HostEndpoint(
                self, self.desk, settings
            )  # binds now: a port in use fails the start
        names = list(terminal.reader_names) or self._discover_readers(terminal)
        if not names and not terminal.scanners:
            raise SscardError("no card reader found and no scanner configured ([daemon] readers)")
        self.watchdog.add("worker", self.worker.run)
        for name in names:
            loop = ReaderLoop(
                name,
                terminal.excluded_readers,
                self.worker.submit,
                health=self.health,
                stop=self.stopping,
                on_state=self._state_setter(name),
                desk=self.desk,
            )
            self.readers.append(loop)
            self.watchdog.add(f"reader:{name}", loop.run)
        for spec in terminal.scanners:
            scanner = ScannerLoop(spec, self.worker.submit, self.health, self.stopping)
            self.scanners.append(scanner)
            self.watchdog.add(f"scanner:{spec}", scanner.run, final_return=True)
        self.watchdog.add("sync", self.syncer.run)
        # the operator commands reach the store the daemon owns through its admin socket
        self.admin = AdminServer(
            settings=settings,
            store=self.store,
            store_lock=self.store_lock,
            status=self.status,
            sync_now=self.sync_answer,
        )
        self.admin.start()
        self._check_journal(terminal.store)
        if self.host is not None:
            self.host.start()
        self.after_sync()

    def _check_journal(self, store: Store) -> None:
        """Check the store file and the journal chain once, at start (``Journal.check_sound``).

        A damaged file or a broken chain is the ``journal`` device's alarm for the operator,
        naming the first row the chain cannot vouch for; the rows before it verify. Decisions
        go on, chained after the journal's head, until the operator stops the daemon and runs
        ``sscard journal recover`` (README "Faults": what is recovered and what is not). A
        declared gap a recovery wrote is sound: it is logged, not an alarm.
        """
        report = store.journal.check_sound()
        if report.ok:
            log.info("event=journal_sound rows=%d declared_lost=%d", report.rows, report.lost_rows)
            return
        where = "" if report.first_bad_seq is None else f" at seq {report.first_bad_seq}"
        self.health.down(
            "journal", f"damaged{where}: {report.problem} ({report.rows} rows before it verify)"
        )

    @staticmethod
    def _discover_readers(terminal: Terminal) -> list[str]:
        """Every reader pcscd knows but the PSAM's (``[daemon] readers`` left empty). A
        terminal with scanners starts without readers when pcscd is not there; one without
        has nothing to do and fails.

        :raises ReaderUnavailable: pcscd is not running and no scanner is configured
        """
        try:
            found = terminal.pcsc.list_readers()
        except ReaderUnavailable as exc:
            if not terminal.scanners:
                raise
            log.warning("event=no_readers reason=%r scanners_only=true", str(exc))
            return []
        return [n for n in found if not any(sam in n for sam in terminal.excluded_readers)]

    def serve(self) -> int:
        """The main loop until SIGTERM or SIGINT (or :meth:`request_stop`); then stop.

        :returns: the exit status, 0
        """
        ping_every = self.notifier.ping_interval_s()
        next_ping = 0.0
        try:
            while self._stop_signal is None:
                time.sleep(TICK_S)
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload_safely()
                self.watchdog.check()
                now = time.monotonic()
                if self.notifier.enabled and now >= next_ping and self.healthy():
                    self.notifier.send("WATCHDOG=1")
                    next_ping = now + ping_every
        finally:
            self.shutdown()
        return 0

    def healthy(self) -> bool:
        """True while the decision worker runs (what systemd's watchdog is told)."""
        worker = self.watchdog.threads.get("worker")
        return worker is not None and worker.alive()

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop, SIGHUP reloads (main thread only)."""

        def stop(signum: int, frame: object) -> None:
            self.request_stop(signum)

        def reload(signum: int, frame: object) -> None:
            self._reload_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the main loop to stop (safe from a signal handler: it only sets a flag).

        :param signum: the signal that asked
        """
        self._stop_signal = signum

    def shutdown(self) -> None:
        """Finish the decisions in flight, stop the threads and devices, close the store;
        harmless twice."""
        if self._terminal is None:
            return
        log.info("event=daemon_stopping signal=%s", self._stop_signal)
        self.notifier.send("STOPPING=1")
        self.stopping.set()
        host, self.host = self.host, None
        if host is not None:
            host.stop()  # no new request while the readers stop; those in flight finish
        inputs = [n for n in self.watchdog.threads if n.startswith(("reader:", "scanner:"))]
        stuck = self.watchdog.join(inputs, STOP_JOIN_S)  # each finishes its decision in flight
        self.worker.stop()
        stuck += self.watchdog.join(["worker"], STOP_JOIN_S)
        stuck += self.watchdog.join(["sync"], self.terminal.settings.sync_timeout_s)
        if stuck:
            log.error("event=threads_not_stopped threads=%s", stuck)
        admin, self.admin = self.admin, None
        if admin is not None:
            admin.close()
        self.metrics.flush()
        self.metrics.close()
        terminal, self._terminal = self._terminal, None
        with self.store_lock:
            terminal.close()
        log.info("event=daemon_stopped decisions=%d restarts=%d",
                 self.worker.decided, self.watchdog.restarts)  # fmt: skip

    def _reload_safely(self) -> None:
        try:
            self.reload()
        except Exception:  # a bug in a reload must not take the validator down with it
            log.error("event=reload_failed", exc_info=True)
            self.health.say("sscard: reload failed, the old settings stay (see the log)")

    def reload(self) -> bool:
        """Load the settings and the profile again and decide with them from the next tap.

        A file that does not load, or a pipeline that cannot be built from it, is refused:
        the reason is logged and said to the operator, and the old settings stay.

        :returns: True when the new settings are in use
        """
        try:
            settings = load_settings(self.config)
            profile = load_profile(settings.daemon_scenario)
            if self.host is not None and settings.host_enabled:
                from terminal.daemon.host import host_config  # noqa: PLC0415 - with the API

                host_config(settings)  # a token file that cannot be used refuses the reload
            with self.store_lock:
                old = self.terminal.settings
                self.terminal.replace_pipeline(
                    settings, profile, profile_dir_of(settings.daemon_scenario)
                )
        except (SscardError, ConfigError) as exc:
            reason = " | ".join(str(exc).splitlines())
            log.error("event=reload_refused reason=%r", reason)
            self.health.say(f"sscard: reload refused, the old settings stay: {reason}")
            return False
        self.worker.reset_verifier()
        self._reload_host(settings)
        self.metrics.metrics_file = settings.metrics_file
        kept = [key for key in RESTART_ONLY if getattr(old, key) != getattr(settings, key)]
        if kept:
            log.warning("event=reload_needs_restart settings=%s", ",".join(kept))
        log.info("event=reloaded scenario=%s source=%s", profile.name, settings.source)
        warn_operator(self.terminal.pipeline)
        return True

    def _reload_host(self, settings: Settings) -> None:
        """Serve the host API with the reloaded ``[host]`` (its port taken again if it is the
        same: the requests in flight finish first, an event stream is cut)."""
        if self.host is None or self.desk is None or not settings.host_enabled:
            return
        from terminal.daemon.host import reload_endpoint  # noqa: PLC0415 - with the API

        try:
            self.host = reload_endpoint(self.host, self, self.desk, settings)
        except SscardError as exc:
            log.error("event=host_reload_refused reason=%r", str(exc))
            self.health.say(f"sscard: host API reload refused, the old [host] stays: {exc}")

    # -- bookkeeping ------------------------------------------------------------------------

    def after_decision(self) -> None:
        """Refresh the backlog gauge and write the metrics file (the worker, under the lock)."""
        self.metrics.backlog.set(self.terminal.store.journal.backlog().pending)
        self.metrics.flush()

    def after_sync(self) -> None:
        """Refresh the backlog and list-age gauges and write the metrics file."""
        now = dt.datetime.now(dt.UTC)
        with self.store_lock:
            store = self.terminal.store
            self.metrics.backlog.set(store.journal.backlog().pending)
            for name, age in list_ages(store).items():
                seconds = age.age_s(now)
                self.metrics.list_age.labels(str(name)).set(-1 if seconds is None else seconds)
        self.metrics.flush()

    def _state_setter(self, reader: str) -> Callable[[str], None]:
        gauge = self.metrics.reader_state.labels(reader)
        return gauge.state

    def _device_changed(self, device: str, up: bool) -> None:
        self.metrics.device_up.labels(device).set(1 if up else 0)
        if self.desk is not None:  # the host API's event stream tells the desk software too
            self.desk.events.publish("device.up" if up else "device.down", device=device)

    def _restarted(self, name: str) -> None:
        self.metrics.restarts.labels(name).inc()
