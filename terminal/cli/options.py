"""Options that several ``sscard`` commands share: the offline store and the profiles of
``sscard deny …``, ``sscard journal …`` and ``sscard catalogue list``; the security module of
``sscard read`` and ``sscard tap``."""

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


def module_options(parser: argparse.ArgumentParser) -> None:
    """Add the security module, one of ``--sam-reader``, ``--hsm`` and ``--soft-sam``
    (:func:`terminal.modules.open_module` opens it).

    :param parser: the command's parser
    :raises: nothing
    """
    module = parser.add_mutually_exclusive_group()
    module.add_argument("--sam-reader", metavar="NAME", help="reader holding the PSAM")
    module.add_argument("--hsm", metavar="URL", help="HSM service for the two-step mode")
    module.add_argument(
        "--soft-sam", metavar="KEYFILE", help="software SAM root keys (development only)"
    )
