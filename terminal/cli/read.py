"""``sscard read``: wait for a card, read it (with a security module if given), print it.

Its failures keep its own format: the national string, the JSON or the table carries the
national code, and stderr its one line (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError
from config.errors import ConfigError
from terminal.cli.options import module_options

if TYPE_CHECKING:
    from terminal.reading import ReadResult

FORMATS = ("ireadcardbas", "json", "table")


def _print_result(result: ReadResult, fmt: str, device_number: str = "") -> int:
    from terminal.reading import national_string, result_json, result_table

    if fmt == "json":
        print(json.dumps(result_json(result), ensure_ascii=False, indent=2))
    elif fmt == "table":
        print(result_table(result))
    elif result.ok:
        print(national_string(result, device_number))
    if result.failure is not None:
        print(f"sscard: {result.failure.code}: {result.failure.reason}", file=sys.stderr)
    return result.exit_status


def _fail(exc: SscardError | ConfigError, fmt: str) -> int:
    from terminal.outcomes import classify
    from terminal.reading import ReadResult

    return _print_result(ReadResult(None, classify(exc)), fmt)


def cmd_read(args: argparse.Namespace) -> int:
    """``sscard read``: wait for a card, read it (with a security module if given), print it."""
    from config.settings import load_settings
    from terminal.compose import open_reader
    from terminal.modules import open_module
    from terminal.reading import read_card

    try:
        settings = load_settings(args.config)
        exclude = [args.sam_reader] if args.sam_reader else []  # the PSAM's slot is no card's
        reader = open_reader(settings, name=args.reader, exclude=exclude)
    except (SscardError, ConfigError) as exc:
        return _fail(exc, args.format)
    with reader:
        try:
            authenticate, module = open_module(args, reader, settings)
        except SscardError as exc:
            return _fail(exc, args.format)
        try:
            try:
                connection = reader.wait_for_card(args.timeout)
            except SscardError as exc:
                return _fail(exc, args.format)
            result = read_card(connection, authenticate=authenticate, module=module)
        finally:
            if module is not None:
                module.close()
    return _print_result(result, args.format, settings.device_number)


def add_parser(sub: Any) -> None:
    """Register ``sscard read``.

    :param sub: the CLI's subparsers
    """
    read = sub.add_parser("read", help="wait for a card, read it and print the result")
    read.add_argument("--reader", help="reader name or a unique part of it (default: any)")
    read.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    read.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for a card (default: 20)"
    )
    read.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    module_options(read)
    read.set_defaults(handler=cmd_read)
