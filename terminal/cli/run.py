"""``sscard run [--config FILE]``: the terminal daemon (:mod:`terminal.daemon`).

It watches every reader of ``[daemon] readers`` (every reader but the PSAM's when none is
named) and every scanner of ``[daemon] scanners``, decides for ``[daemon] scenario``, syncs
every ``[daemon] sync_interval_s`` and runs until SIGTERM or SIGINT (exit status 0, after the
decision in flight is journaled). SIGHUP reloads the settings and the profile. Logs are JSON
lines (``--log-format text`` for the usual lines); the operator's alarms and, with
``[indicators] console``, each decision are printed on stderr. Settings, keys, a store or a
metrics port that cannot be used end it at start: one line, exit status 2.
"""

from __future__ import annotations

import argparse
from typing import Any


def cmd_run(args: argparse.Namespace) -> int:
    """Handle ``sscard run``."""
    from terminal.daemon.core import Daemon
    from terminal.daemon.logs import use_json_logs

    if args.log_format == "json":
        use_json_logs()
    daemon = Daemon(args.config)
    daemon.install_signals()  # a signal during the start is acted on as soon as it is over
    daemon.start()
    return daemon.serve()


def add_parser(sub: Any) -> None:
    """Register ``sscard run``.

    :param sub: the CLI's subparsers
    """
    parser = sub.add_parser(
        "run", help="the terminal daemon: every reader and scanner, decisions, sync, metrics"
    )
    parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="log lines (default: json)"
    )
    parser.set_defaults(handler=cmd_run)
