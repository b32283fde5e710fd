"""The ``sscard`` command line. Each handler parses, calls one library function, formats.

Exit status: 0 success, 2 failure (the national code and a one-line reason go to stderr),
130 interrupted. What a handler does not answer itself is answered in one place,
:func:`terminal.cli_errors.run_command`, called by :func:`main`: no command ends in a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from apdu import national
from apdu.errors import SscardError, WrongPin
from apdu.national import NationalCode
from apdu.transport import t0_chain
from config.errors import ConfigError
from config.settings import load_settings
from drivers.keyfile import read_secret
from drivers.pcsc import PcscReader
from drivers.psam import PcscPsamModule
from drivers.virtual import PERSONAS
from drivers.virtual.card import Behaviour
from drivers.virtual.persona import PersonaError, load_persona
from terminal import cmd_deny, cmd_platform, cmd_qr, cmd_store, cmd_sync, cmd_tap
from terminal.cli_errors import hide_developer_records, run_command
from terminal.modules import open_module
from terminal.outcomes import EXIT_FAILURE, EXIT_OK, classify
from terminal.pin import pin_operation
from terminal.reading import (
    ReadResult,
    national_string,
    read_and_classify,
    result_json,
    result_table,
)

log = logging.getLogger("sscard")

FORMATS = ("ireadcardbas", "json", "table")
LOG_FILE_ENV = "SSCARD_LOG_FILE"
LOG_LEVEL_ENV = "SSCARD_LOG_LEVEL"


def _print_result(result: ReadResult, fmt: str, device_number: str = "") -> int:
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
    return _print_result(ReadResult(None, classify(exc)), fmt)


def cmd_read(args: argparse.Namespace) -> int:
    """``sscard read``: wait for a card, read it (with a security module if given), print it."""
    try:
        settings = load_settings(args.config)
    except (SscardError, ConfigError) as exc:
        return _fail(exc, args.format)
    with PcscReader() as readers:
        try:
            authenticate, module = open_module(args, readers, settings)
        except SscardError as exc:
            return _fail(exc, args.format)
        try:
            exclude = [module.reader] if isinstance(module, PcscPsamModule) else []
            try:
                if args.sam_reader and module is None:
                    exclude = [r for r in readers.list_readers() if args.sam_reader in r]
                connection = readers.wait_for_card(
                    args.timeout, reader=args.reader, exclude=exclude
                )
            except SscardError as exc:
                return _fail(exc, args.format)
            with connection:
                result = read_and_classify(
                    connection,
                    connection.atr,
                    connection.reader,
                    connection.protocol_name,
                    authenticate=authenticate,
                    module=module,
                )
        finally:
            if module is not None:
                module.close()
    return _print_result(result, args.format, settings.device_number)


def _read_pin(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def cmd_pin(args: argparse.Namespace) -> int:
    """``sscard pin verify|change``: the PIN is prompted without echo (or read from stdin)."""
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
    with PcscReader() as readers:
        try:
            connection = readers.wait_for_card(args.timeout, reader=args.reader)
        except SscardError as exc:
            failure = classify(exc)
            return _pin_report(args.format, failure.code, failure.reason, None)
        with connection:
            try:
                pin_operation(t0_chain(connection), args.action, pins)
            except WrongPin as exc:
                failure = classify(exc)
                return _pin_report(args.format, failure.code, failure.reason, exc.tries_left)
            except SscardError as exc:
                failure = classify(exc)
                return _pin_report(args.format, failure.code, failure.reason, None)
    done = "PIN verified" if args.action == "verify" else "PIN changed"
    return _pin_report(args.format, 0, done, None)


def _pin_report(fmt: str, code: int, reason: str, tries_left: int | None) -> int:
    if fmt == "json":
        out = {"ok": code == 0, "code": code, "reason": reason, "tries_left": tries_left}
        print(json.dumps(out, ensure_ascii=False))
    elif code == 0:
        print(reason)
    if code != 0:
        print(f"sscard: {code}: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_hsm_service(args: argparse.Namespace) -> int:
    """``sscard hsm-service``: run the reference HSM service (software keys) until interrupted."""
    from drivers.keyfile import load_root_keys
    from drivers.virtual.hsm_service import HsmService

    try:
        keys = load_root_keys(args.keys)
        token = read_secret(args.token_file, "HSM token") if args.token_file else None
    except OSError as exc:
        print(f"sscard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    service = HsmService(
        keys, host=args.host, port=args.port, token=token, allow_remote=args.allow_remote
    )
    stop = _stop_on_signals()  # before the address is shown: a SIGTERM right after it stops us
    print(
        f"reference HSM service on {service.start()}; Ctrl-C to stop", file=sys.stderr, flush=True
    )
    stop.wait()
    service.stop()
    return EXIT_OK


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def cmd_virtual_card(args: argparse.Namespace) -> int:
    """``sscard virtual-card``: attach an emulated card or PSAM to a vpcd slot until interrupted."""
    from drivers.keyfile import load_root_keys
    from drivers.virtual.card import VirtualCard
    from drivers.virtual.psam import VirtualPsam, load_psam
    from drivers.virtual.ssc_card import VirtualSscCard
    from drivers.virtual.vpcd import VpcdBridge

    behaviour = Behaviour(
        t0=args.t0 or bool(args.psam),
        latency_ms=args.latency_ms,
        tear_after=args.tear_after,
        app_locked=args.app_locked,
        card_blocked=args.card_blocked,
    )
    card: VirtualCard
    try:
        if args.psam:
            card = VirtualPsam(load_psam(args.psam), behaviour)
            label = f"PSAM {Path(args.psam).stem!r}"
        else:
            persona = load_persona(args.persona)
            roots = load_root_keys(args.roots, require_private=False) if args.roots else None
            card = VirtualSscCard(persona, behaviour, roots)
            label = f"card {persona.name!r}"
    except (PersonaError, OSError, ValueError) as exc:
        print(f"sscard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    bridge = VpcdBridge(card, slot=args.slot, host=args.host)
    stop = _stop_on_signals()
    print(
        f"virtual {label} ({'T=0' if behaviour.t0 else 'T=1'}) on vpcd slot {args.slot}"
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
    read.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    module = read.add_mutually_exclusive_group()
    module.add_argument("--sam-reader", metavar="NAME", help="reader holding the PSAM")
    module.add_argument("--hsm", metavar="URL", help="HSM service for the two-step mode")
    module.add_argument(
        "--soft-sam", metavar="KEYFILE", help="software SAM root keys (development only)"
    )
    read.set_defaults(handler=cmd_read)

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
    pin.set_defaults(handler=cmd_pin)

    hsm = sub.add_parser("hsm-service", help="run the reference HSM service (software keys)")
    hsm.add_argument("--keys", required=True, help="root-key file (mode 0600)")
    hsm.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    hsm.add_argument("--port", type=int, default=8470, help="port (default: 8470)")
    hsm.add_argument("--token-file", help="file holding the bearer token clients must send")
    hsm.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    hsm.set_defaults(handler=cmd_hsm_service)

    virtual = sub.add_parser(
        "virtual-card", help="attach an emulated card to pcscd's vpcd reader until interrupted"
    )
    what = virtual.add_mutually_exclusive_group(required=True)
    what.add_argument("--persona", help="persona TOML file (a social security card)")
    what.add_argument("--psam", help="PSAM TOML file (a security module card)")
    virtual.add_argument("--roots", help="root-key file the card derives its keys from")
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
        default=str(PERSONAS),
        help="folder of persona TOML files",
    )
    demo.set_defaults(handler=cmd_demo)

    cmd_tap.add_parser(sub)
    cmd_deny.add_parser(sub)
    cmd_store.add_parser(sub)
    cmd_qr.add_parser(sub)
    cmd_sync.add_parser(sub)
    cmd_platform.add_parser(sub)
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
    (:func:`terminal.cli_errors.run_command`): exit status 2, or 130 after Ctrl-C.

    :param argv: the arguments, without the program name (default: ``sys.argv[1:]``)
    :raises SystemExit: for ``--help`` and for options that do not parse (status 2)
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler

    def command() -> int:
        configure_logging(args.verbose)  # inside: a log file that cannot be opened is answered
        return handler(args)

    return run_command(command, log_file=os.environ.get(LOG_FILE_ENV) or None)


if __name__ == "__main__":
    sys.exit(main())
