"""The ``sscard`` command line. Each handler parses, calls one library function, formats.

One module per command group registers its commands (``add_parser``) and holds their handlers:
:mod:`~terminal.cli.read`, :mod:`~terminal.cli.pin`, :mod:`~terminal.cli.virtual`
(``hsm-service``, ``virtual-card``, ``demo``), :mod:`~terminal.cli.tap`,
:mod:`~terminal.cli.deny`, :mod:`~terminal.cli.store` (``catalogue``, ``journal``),
:mod:`~terminal.cli.qr` (``qr``, ``scan``), :mod:`~terminal.cli.sync`,
:mod:`~terminal.cli.run` (the daemon), :mod:`~terminal.cli.init`,
:mod:`~terminal.cli.doctor`, :mod:`~terminal.cli.status`, and the reference platform's own
:mod:`platform_server.cli` (``platform``). No command module imports another: what they
share is in :mod:`terminal.compose` (the parts of a terminal), :mod:`terminal.cli.decision`,
:mod:`terminal.cli.options` and :mod:`terminal.cli.daemon_link`
(operator commands through the daemon's admin socket when it owns the store).

Exit status: 0 success, 2 failure (the national code and a one-line reason go to stderr),
130 interrupted. What a handler does not answer itself is answered in one place,
:func:`terminal.cli.edge.run_command`, called by :func:`main`: no command ends in a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence

from apdu.errors import SscardError
from drivers.virtual import TEST_KEYS
from platform_server import cli as platform
from terminal.cli import (
    deny,
    doctor,
    host,
    init,
    pin,
    qr,
    read,
    run,
    status,
    store,
    sync,
    tap,
    virtual,
)
from terminal.cli.edge import hide_developer_records, run_command

log = logging.getLogger("sscard")

LOG_FILE_ENV = "SSCARD_LOG_FILE"
LOG_LEVEL_ENV = "SSCARD_LOG_LEVEL"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sscard`` (every command and option has help text)."""
    parser = argparse.ArgumentParser(
        prog="sscard",
        description="Terminal software for the social security card (社会保障卡).",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init.add_parser(sub)
    doctor.add_parser(sub)
    status.add_parser(sub)
    read.add_parser(sub)
    pin.add_parser(sub)
    virtual.add_parser(sub)
    tap.add_parser(sub)
    run.add_parser(sub)
    deny.add_parser(sub)
    store.add_parser(sub)
    qr.add_parser(sub)
    sync.add_parser(sub)
    host.add_parser(sub)
    platform.add_parser(sub, test_keys=TEST_KEYS)
    return parser


def configure_logging(verbose: int) -> None:
    """Log to stderr at the ``-v`` level; ``$SSCARD_LOG_FILE`` adds a file that gets
    ``$SSCARD_LOG_LEVEL`` (default: the same level). Personal data is masked before any log line.

    :param verbose: the count of ``-v`` options
    :raises SscardError: the log file cannot be opened
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    root = logging.getLogger()
    console = not root.handlers  # else someone (a test) has set up logging already
    logging.basicConfig(level=level, format=fmt)
    if console and verbose < 2:
        for stream in root.handlers:
            stream.addFilter(hide_developer_records)
    path = os.environ.get(LOG_FILE_ENV)
    if path:
        file_level = logging.getLevelName(os.environ.get(LOG_LEVEL_ENV, "").upper() or level)
        if not isinstance(file_level, int):
            file_level = level
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise SscardError(
                f"cannot open the log file ${LOG_FILE_ENV}={path}: {exc.strerror}"
            ) from exc
        handler.setLevel(file_level)
        handler.setFormatter(logging.Formatter(f"%(process)d {fmt}"))
        root.addHandler(handler)
        root.setLevel(min(level, file_level))
        for stream in root.handlers[:-1]:
            stream.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sscard`` with ``argv`` and return the exit status.

    Every failure a handler does not answer itself becomes one line on stderr here
    (:func:`terminal.cli.edge.run_command`): exit status 2, or 130 after Ctrl-C.

    :param argv: the arguments, without the program name (default: ``sys.argv[1:]``)
    :raises SystemExit: for ``--help`` and for options that do not parse (status 2)
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler

    def command() -> int:
        configure_logging(args.verbose)  # inside: a log file that cannot be opened is answered
        return handler(args)

    return run_command(command, log_file=os.environ.get(LOG_FILE_ENV) or None)
