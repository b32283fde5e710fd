"""Options that several ``sscard`` commands share (``sscard deny …``, ``sscard journal …``,
``sscard catalogue list``)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DB = Path("/var/lib/sscard/store.db")


def db_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--db PATH`` and ``--config`` to a command working on the offline store (``sscard
    deny …``, ``sscard journal …``).

    :param parser: the command's parser
    :raises: nothing
    """
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=Path,
        help=f"the offline store (default: [store] database of the settings, else {DEFAULT_DB})",
    )
    parser.add_argument(
        "--config", help="terminal settings file for the defaults (default: $SSCARD_CONFIG)"
    )


def scenario_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--scenario`` (repeatable) to a status command.

    :param parser: the command's parser
    :raises: nothing
    """
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="report on this profile (name or file; repeatable; default: every built-in one)",
    )
