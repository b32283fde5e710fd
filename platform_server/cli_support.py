"""What every ``sscard platform`` command shares: where the database and the keys are, opening
the platform with errors that name them, the failure line, and the common options.

The platform package (FastAPI, SQLAlchemy) is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError

if TYPE_CHECKING:
    from platform_server import Platform

__all__ = [
    "card_options",
    "command",
    "command_group",
    "config_error",
    "db_option",
    "db_url",
    "fail",
    "keys_folder",
    "open_platform",
    "platform_package",
]


def platform_package() -> Any:
    """The reference platform package, imported on first use: its web stack (FastAPI,
    SQLAlchemy) would otherwise cost every ``sscard`` command half a second of start-up."""
    import platform_server
    import platform_server.server

    return platform_server


def config_error(message: str) -> SscardError:
    """The platform's configuration error (its class is imported with the platform)."""
    error: SscardError = platform_package().PlatformConfigError(message)
    return error


EXIT_OK = 0
EXIT_FAILURE = 2  # as every sscard command (terminal.outcomes)
DB_ENV = "SSCARD_PLATFORM_DB"
KEYS_ENV = "SSCARD_PLATFORM_KEYS"
DEFAULT_DB_FILE = "platform.db"
DEFAULT_PORT = 8480
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}/"
KEY_FILE_MODE = 0o600
DAY_S = 86_400
ALGS = {"es256": ("ES256",), "sm2": ("SM2",), "all": ("ES256", "SM2")}  # ecard.keys.Alg values


def fail(message: object) -> int:
    """Print the one failure line; the failure exit status.

    :param message: what went wrong
    :raises: nothing
    """
    print(f"sscard: {message}", file=sys.stderr)
    return EXIT_FAILURE


def db_url(args: argparse.Namespace) -> str:
    """The database: ``--db``, else ``$SSCARD_PLATFORM_DB``, else ``./platform.db``.

    :param args: the parsed options
    :raises: nothing
    """
    url: str = args.db or os.environ.get(DB_ENV) or str(Path.cwd() / DEFAULT_DB_FILE)
    return url


def keys_folder(args: argparse.Namespace) -> str:
    """The keys folder: ``--keys``, else ``$SSCARD_PLATFORM_KEYS``.

    :param args: the parsed options
    :raises PlatformConfigError: neither is given
    """
    keys: str | None = args.keys or os.environ.get(KEYS_ENV)
    if not keys:
        raise config_error(f"give the keys folder: --keys DIR (or ${KEYS_ENV})")
    return keys


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Answer a database file the platform cannot use with an error that names it.

    ``open_engine`` names a database it cannot reach; a file that is not a database at all
    (SQLite's "file is not a database") still comes out as SQLAlchemy's ``DatabaseError``.

    :param url: the database URL or file, as given
    :raises PlatformConfigError: for SQLAlchemy's ``DatabaseError``
    """
    from sqlalchemy.exc import DatabaseError

    try:
        yield
    except DatabaseError as exc:
        raise config_error(f"cannot use the database {url}: {exc.orig}") from exc


@contextlib.contextmanager
def open_platform(args: argparse.Namespace, *, keys: bool = False) -> Iterator[Platform]:
    """The platform the options name, closed after use.

    :param args: the parsed options (``--db``, ``--keys``)
    :param keys: whether the command needs the keys folder
    :raises PlatformConfigError: the database or the keys cannot be used
    """
    url = db_url(args)
    with (
        database_errors(url),
        platform_package().Platform.open(url, keys_folder(args) if keys else None) as found,
    ):
        yield found


def db_option(parser: argparse.ArgumentParser, *, keys: bool = False) -> None:
    """Add ``--db`` (and ``--keys``).

    :param parser: a command's parser
    :param keys: whether the command needs the keys folder
    :raises: nothing
    """
    parser.add_argument(
        "--db",
        metavar="URL",
        help=f"database URL or SQLite file (default: ${DB_ENV}, else ./{DEFAULT_DB_FILE})",
    )
    if keys:
        parser.add_argument("--keys", metavar="DIR", help=f"keys folder (default: ${KEYS_ENV})")


def card_options(parser: argparse.ArgumentParser) -> None:
    """Add the card (``REGION:CARDNUMBER`` or ``--ecard-token``), ``--db`` and ``--keys``.

    :param parser: a command's parser
    :raises: nothing
    """
    parser.add_argument(
        "card", nargs="?", metavar="REGION:CARDNUMBER", help="six-digit region code and 卡号"
    )
    parser.add_argument("--ecard-token", metavar="TOKEN", help="an e-card token instead of a card")
    db_option(parser, keys=True)


def command(actions: Any, name: str, help_text: str, handler: Callable[..., int]) -> Any:
    """Add an ACTION whose only option is ``--db``, run by ``handler``; return its parser.

    :param actions: a command group's subparsers (:func:`command_group`)
    :param name: the action's name (``list``, ``status`` …)
    :param help_text: its one-line help
    :param handler: the ``cmd_*`` function that runs it
    :raises: nothing
    """
    parser = actions.add_parser(name, help=help_text)
    db_option(parser)
    parser.set_defaults(handler=handler)
    return parser


def command_group(actions: Any, name: str, help_text: str) -> Any:
    """Add ``sscard platform NAME`` and return its subparsers, one per ACTION.

    :param actions: the subparsers of ``sscard platform``
    :param name: the group's name (``deny``, ``keys`` …)
    :param help_text: its one-line help
    :raises: nothing
    """
    group = actions.add_parser(name, help=help_text)
    return group.add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION", help="what to do"
    )
