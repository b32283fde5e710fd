"""``sscard platform clearing --day YYYY-MM-DD [--format json]``: a day's clearing (清分) per
terminal and per card issuer (docs/clearing.md). Text by default, sums in yuan; ``--format
json`` prints what ``GET /v1/clearing`` answers, sums in fen. The handler takes the parsed
options and returns the exit status: 0 (also for a day without purchases), 2 on a failure (one
line on stderr).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from apdu.errors import SscardError
from platform_server.cli_support import EXIT_OK, db_option, fail, open_platform

__all__ = ["add_clearing_parser", "cmd_clearing"]


def cmd_clearing(args: argparse.Namespace) -> int:
    """``platform clearing``: the day's clearing."""
    try:
        with open_platform(args) as platform:
            report = platform.clearing(args.day)
    except SscardError as exc:
        return fail(exc)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        for line in report.lines():
            print(line)
    return EXIT_OK


def add_clearing_parser(actions: Any) -> None:
    """Register ``sscard platform clearing``.

    :param actions: the subparsers of ``sscard platform``
    :raises: nothing
    """
    parser = actions.add_parser(
        "clearing", help="a day's purchases per terminal and per card issuer (清分)"
    )
    parser.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="the clearing day")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default: text)"
    )
    db_option(parser)
    parser.set_defaults(handler=cmd_clearing)
