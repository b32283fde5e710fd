"""The ``sscard`` command line. Each handler parses, calls one library function, formats.

Exit status: 0 success, 2 failure (the national code and a one-line reason go to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from apdu.errors import SscardError
from drivers.virtual.card import Behaviour
from drivers.virtual.persona import PersonaError, load_persona
from terminal.outcomes import EXIT_FAILURE, EXIT_OK, classify
from terminal.reading import (
    ReadResult,
    national_string,
    read_and_classify,
    result_json,
    result_table,
)

log = logging.getLogger("sscard")

FORMATS = ("ireadcardbas", "json", "table")


def _print_result(result: ReadResult, fmt: str) -> int:
    if fmt == "json":
        print(json.dumps(result_json(result), ensure_ascii=False, indent=2))
    elif fmt == "table":
        print(result_table(result))
    elif result.ok:
        print(national_string(result))
    if result.failure is not None:
        print(f"sscard: {result.failure.code}: {result.failure.reason}", file=sys.stderr)
    return result.exit_status


def cmd_read(args: argparse.Namespace) -> int:
    """``sscard read``: wait for a card, read it, print it."""
    from drivers.pcsc import PcscReader

    with PcscReader() as readers:
        try:
            connection = readers.wait_for_card(args.timeout, reader=args.reader)
        except SscardError as exc:
            failure = classify(exc)
            return _print_result(ReadResult(None, failure), args.format)
        with connection:
            result = read_and_classify(
                connection, connection.atr, connection.reader, connection.protocol_name
            )
    return _print_result(result, args.format)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def cmd_virtual_card(args: argparse.Namespace) -> int:
    """``sscard virtual-card``: attach an emulated card to a vpcd slot until interrupted."""
    from drivers.virtual.ssc_card import VirtualSscCard
    from drivers.virtual.vpcd import VpcdBridge

    try:
        persona = load_persona(args.persona)
    except (PersonaError, OSError) as exc:
        print(f"sscard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    behaviour = Behaviour(
        t0=args.t0,
        latency_ms=args.latency_ms,
        tear_after=args.tear_after,
        app_locked=args.app_locked,
        card_blocked=args.card_blocked,
    )
    card = VirtualSscCard(persona, behaviour)
    bridge = VpcdBridge(card, slot=args.slot, host=args.host)
    stop = _stop_on_signals()
    print(
        f"virtual card {persona.name!r} ({'T=0' if args.t0 else 'T=1'}) on vpcd slot {args.slot}"
        f" — ATR {card.atr.hex().upper()}; Ctrl-C to remove",
        file=sys.stderr,
        flush=True,
    )
    bridge.run_forever(stop)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """``sscard demo``: emulated cards behind a real pcscd, each read with ``sscard read``."""
    from terminal.demo import run_demo

    return run_demo(Path(args.personas), sys.stdout)


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

    read = sub.add_parser("read", help="wait for a card, read it and print the result")
    read.add_argument("--reader", help="reader name or a unique part of it (default: any)")
    read.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    read.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for a card (default: 20)"
    )
    read.set_defaults(handler=cmd_read)

    virtual = sub.add_parser(
        "virtual-card", help="attach an emulated card to pcscd's vpcd reader until interrupted"
    )
    virtual.add_argument("--persona", required=True, help="persona TOML file")
    virtual.add_argument("--slot", type=int, default=0, help="vpcd slot (port 35963 + slot)")
    virtual.add_argument("--host", default="127.0.0.1", help="where vpcd listens")
    virtual.add_argument("--t0", action="store_true", help="behave as a T=0 card (61xx/6Cxx)")
    virtual.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay before each answer, in ms"
    )
    virtual.add_argument(
        "--tear-after",
        type=int,
        metavar="N",
        help="leave the field in the middle of command N+1 (card tearing)",
    )
    virtual.add_argument(
        "--app-locked", action="store_true", help="SELECT of the application answers 9303"
    )
    virtual.add_argument(
        "--card-blocked", action="store_true", help="the card answers 6A81 to everything"
    )
    virtual.set_defaults(handler=cmd_virtual_card)

    demo = sub.add_parser(
        "demo", help="read every emulated persona through a real pcscd and print the results"
    )
    demo.add_argument(
        "--personas",
        default=str(Path(__file__).resolve().parent.parent / "tests" / "personas"),
        help="folder of persona TOML files",
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sscard`` with ``argv`` and return the exit status.

    :param argv: the arguments, without the program name (default: ``sys.argv[1:]``)
    """
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
