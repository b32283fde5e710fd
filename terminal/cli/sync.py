"""``sscard sync [--once] [--interval S]``: sync the terminal with the one-card platform.

Each sync reads the platform's clock, fetches the terminal's secrets, brings the deny list,
the e-card trust list and the catalogue up to date and uploads the journal (with a progress
bar on a terminal), has the platform confirm the national e-card codes deferred offline
(journaling and uploading each verdict: :class:`terminal.ecard_confirm.FollowUps`), then
sends a heartbeat (:meth:`sync.client.SyncClient.sync_once`). One
line per step goes to stdout.

The store is opened for each sync and closed in between, so ``sscard tap`` can use it while
the loop waits. SIGTERM or SIGINT stop the loop; during an upload they stop it after the batch
in flight (everything acknowledged so far is kept).

While the daemon owns the store, ``--once`` asks it to run the sync (its admin socket,
:mod:`terminal.cli.daemon_link`) and prints the same lines; with no daemon answering it waits
for the store up to ``--wait S``.

Exit status of ``--once``: 0 every step went well, 1 something was refused (rejected journal
rows, a list that fails its signature) or raised an alarm (the local clock is off), 2 the
platform could not be reached or the terminal is misconfigured (settings, keys or a store that
cannot be opened end the loop at start too). The loop exits 0 when stopped.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError
from terminal.cli.daemon_link import wait_option

if TYPE_CHECKING:
    from config.settings import Settings
    from offline_store import Store
    from sync.client import TrustSaver
    from sync.config import SyncConfig
    from sync.reports import SyncReport
    from terminal.operator import Answer

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 300.0


def add_parser(sub: Any) -> None:
    """Register ``sscard sync``.

    :param sub: the CLI's subparsers
    """
    parser = sub.add_parser(
        "sync", help="sync with the platform: lists, secrets, clock, journal upload"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run one sync and exit (status 0 ok, 1 refused, 2 failed)",
    )
    parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help=f"seconds between syncs without --once (default: {DEFAULT_INTERVAL_S:.0f})",
    )
    wait_option(parser)
    parser.add_argument(
        "--no-prune",
        action="store_true",
        help="keep the acknowledged journal rows after the upload (default: prune them)",
    )
    parser.set_defaults(handler=cmd_sync)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("the interval must be above 0 seconds")
    return value


def cmd_sync(args: argparse.Namespace) -> int:
    """``sscard sync``: one sync (``--once``) or one every ``--interval`` seconds.

    Settings, sync keys and a store that cannot be used end the command at once (``sscard``'s
    ``main`` answers them: one line, exit status 2); a store another command holds for now
    does not: each sync opens it again.
    """
    from config.settings import load_settings
    from sync.config import SyncConfig
    from sync.reports import EXIT_OK

    settings = load_settings(args.config)
    config = SyncConfig.from_settings(settings, prune=not args.no_prune)
    _check_store(settings)
    stop = _stop_on_signals()
    if args.once:
        return _sync_once(settings, config, stop, args.wait)
    while not stop.is_set():
        _sync(settings, config, stop)
        if stop.wait(args.interval):
            break
    return EXIT_OK


def _sync_once(settings: Settings, config: SyncConfig, stop: threading.Event, wait_s: float) -> int:
    """``--once``: one sync on the store, or by the daemon when it owns the store."""
    from offline_store import StoreLocked
    from terminal.cli.daemon_link import SYNC_TIMEOUT_FACTOR, on_store
    from terminal.operator import sync_answer

    def direct() -> Answer:
        try:
            store = _open_store(settings)
        except StoreLocked:
            raise
        except SscardError as exc:
            return sync_answer(_store_failed(exc))
        return sync_answer(_sync_on(settings, config, stop, store))

    return on_store(
        direct,
        socket_path=settings.admin_socket_path,
        request="sync-once",
        params={},
        wait_s=wait_s,
        timeout_s=settings.sync_timeout_s * SYNC_TIMEOUT_FACTOR,
    )


def _sync(settings: Settings, config: SyncConfig, stop: threading.Event) -> SyncReport:
    """One sync with the store opened for it; failures end up in the report."""
    try:
        store = _open_store(settings)
    except SscardError as exc:
        report = _store_failed(exc)
    else:
        report = _sync_on(settings, config, stop, store)
    _print(report)
    return report


def _store_failed(exc: SscardError) -> SyncReport:
    from sync.reports import StepStatus, SyncReport

    report = SyncReport()
    report.add("store", StepStatus.FAILED, str(exc))
    return report


def _sync_on(
    settings: Settings, config: SyncConfig, stop: threading.Event, store: Store
) -> SyncReport:
    """One sync on an open store (closed after it)."""
    from sync.client import SyncClient
    from terminal.ecard_confirm import FollowUps

    with (
        store,
        SyncClient(
            config, store, trust_saver=_trust_saver(settings), stop=stop, follow_up=FollowUps()
        ) as client,
        _upload_bar() as progress,
    ):
        return client.sync_once(progress)


def _check_store(settings: Settings) -> None:
    """Fail at start on a store that cannot be opened, rather than once per sync forever.

    :param settings: the terminal settings
    :raises SscardError: the store (or its pepper file) cannot be used
    """
    from offline_store import StoreLocked

    try:
        _open_store(settings).close()
    except StoreLocked:
        log.info("event=sync_store_busy_at_start")  # `sscard tap` holds it: each sync retries


def _trust_saver(settings: Settings) -> TrustSaver:
    """Verify and keep a trust list; a production terminal refuses TEST KEYS in it."""
    from ecard.trust import save_trust_list

    return functools.partial(save_trust_list, production=settings.production)


def _open_store(settings: Settings) -> Store:
    """The store, with the pepper when the secrets have delivered one already, and the journal
    key (the codes of deferred e-card rows are read back to be confirmed)."""
    from offline_store import Store, load_key_file, load_pepper_file

    pepper_file = settings.pepper_file
    pepper = load_pepper_file(pepper_file) if pepper_file and pepper_file.exists() else None
    key_file = settings.journal_key_file
    key = load_key_file(key_file) if key_file else None
    return Store.open(
        settings.database,
        journal_key=key,
        pepper=pepper,
        journal_cap_rows=settings.journal_cap_rows,
    )


@contextmanager
def _upload_bar() -> Iterator[Callable[[int, int], None]]:
    from tqdm import tqdm

    with tqdm(unit=" rows", desc="upload", file=sys.stderr, disable=None, leave=False) as bar:

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update


def _print(report: SyncReport) -> None:
    from terminal.operator import sync_answer

    for line in sync_answer(report).out:
        print(line, flush=True)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        log.info("event=sync_stop_requested signal=%d", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
