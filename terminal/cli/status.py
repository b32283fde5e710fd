"""``sscard status [--json]``: how the terminal stands.

With the daemon running (it owns the store), its own status through the admin socket: readers
and devices, decisions, backlog, list ages, watchdog restarts. Without it, the store's view:
the upload backlog, the age of each list, the last sync and the clock offset it measured.
Both are printed as ``key: value`` lines (nested keys dotted) or one JSON document
(:func:`terminal.operator.status_answer`). Exit status 0, or 2 with a one-line reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING, Any

from terminal.cli.daemon_link import wait_option

if TYPE_CHECKING:
    from terminal.operator import Answer


def add_parser(sub: Any) -> None:
    """Register ``sscard status``.

    :param sub: the CLI's subparsers
    """
    parser = sub.add_parser(
        "status", help="the daemon's status, else the store's: backlog, list ages, last sync"
    )
    parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    wait_option(parser)
    parser.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    """``sscard status``: the daemon's status, else the store's view."""
    from config.settings import load_settings
    from offline_store import Store, StoreError
    from terminal import operator
    from terminal.cli.daemon_link import on_store

    settings = load_settings(args.config)
    path = settings.database
    if not path.exists():
        raise StoreError(f"cannot open {path}: there is no offline store there (sscard init)")

    def direct() -> Answer:
        with Store.open(path) as store:
            status = operator.store_status(store, dt.datetime.now().astimezone())
        return operator.status_answer(status, as_json=args.json)

    return on_store(
        direct,
        socket_path=settings.admin_socket_path,
        request="status",
        params={"json": bool(args.json)},
        wait_s=args.wait,
    )
