"""``sscard pin verify|change``: the holder's PIN, prompted without echo (or read from stdin)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from apdu.errors import SscardError, WrongPin


def _read_pin(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def cmd_pin(args: argparse.Namespace) -> int:
    """``sscard pin verify|change``: the PIN is prompted without echo (or read from stdin)."""
    from apdu import national
    from apdu.national import NationalCode
    from apdu.transport import t0_chain
    from config.settings import load_settings
    from terminal.compose import open_reader
    from terminal.outcomes import classify
    from terminal.pin import pin_operation

    if args.action == "verify":
        pins = [_read_pin("PIN: ", args.pin_stdin)]
    else:
        pins = [
            _read_pin("current PIN: ", args.pin_stdin),
            _read_pin("new PIN: ", args.pin_stdin),
            _read_pin("new PIN again: ", args.pin_stdin),
        ]
        if pins[1] != pins[2]:
            code = NationalCode.PIN_CONFIRM_MISMATCH
            return _pin_report(args.format, code, national.message(code), None)
    settings = load_settings(args.config)  # its reader back-end and reader; defaults: PC/SC, any
    with open_reader(settings, name=args.reader) as reader:
        try:
            connection = reader.wait_for_card(args.timeout)
        except SscardError as exc:
            failure = classify(exc)
            return _pin_report(args.format, failure.code, failure.reason, None)
        with connection:
            try:
                pin_operation(t0_chain(connection), args.action, pins)
            except SscardError as exc:
                failure = classify(exc)
                tries_left = exc.tries_left if isinstance(exc, WrongPin) else None
                return _pin_report(args.format, failure.code, failure.reason, tries_left)
    done = "PIN verified" if args.action == "verify" else "PIN changed"
    return _pin_report(args.format, 0, done, None)


def _pin_report(fmt: str, code: int, reason: str, tries_left: int | None) -> int:
    from terminal.outcomes import EXIT_FAILURE, EXIT_OK

    if fmt == "json":
        out = {"ok": code == 0, "code": code, "reason": reason, "tries_left": tries_left}
        print(json.dumps(out, ensure_ascii=False))
    elif code == 0:
        print(reason)
    if code != 0:
        print(f"sscard: {code}: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``sscard pin``.

    :param sub: the CLI's subparsers
    """
    pin = sub.add_parser("pin", help="verify or change the holder's PIN")
    pin.add_argument("action", choices=("verify", "change"), help="what to do with the PIN")
    pin.add_argument("--reader", help="reader name or a unique part of it (default: any)")
    pin.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for a card (default: 20)"
    )
    pin.add_argument(
        "--pin-stdin",
        action="store_true",
        help="read the PIN(s) from standard input, one per line, instead of prompting",
    )
    pin.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    pin.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    pin.set_defaults(handler=cmd_pin)
