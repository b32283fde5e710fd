"""The emulators on the command line: ``sscard hsm-service`` (the reference HSM service),
``sscard virtual-card`` (an emulated card or PSAM in a vpcd slot) and ``sscard demo`` (every
persona read through a real pcscd). Each runs until it is done or interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from drivers.virtual import PERSONAS


def cmd_hsm_service(args: argparse.Namespace) -> int:
    """``sscard hsm-service``: run the reference HSM service (software keys) until interrupted."""
    from drivers.keyfile import load_root_keys, read_secret
    from drivers.virtual.hsm_service import HsmService
    from terminal.outcomes import EXIT_FAILURE, EXIT_OK

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
    from drivers.virtual.card import Behaviour, VirtualCard
    from drivers.virtual.persona import PersonaError, load_persona
    from drivers.virtual.psam import VirtualPsam, load_psam
    from drivers.virtual.ssc_card import VirtualSscCard
    from drivers.virtual.vpcd import VpcdBridge
    from terminal.outcomes import EXIT_FAILURE, EXIT_OK

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
    """``sscard demo``: emulated cards behind a real pcscd, each read with ``sscard read``;
    with ``--daemon``, the terminal daemon at a bus validator (``make demo``)."""
    if args.daemon:
        from terminal.demo_daemon import run_daemon_demo

        return run_daemon_demo(sys.stdout)
    from terminal.demo import run_demo

    return run_demo(Path(args.personas), sys.stdout)


def add_parser(sub: Any) -> None:
    """Register ``sscard hsm-service``, ``sscard virtual-card`` and ``sscard demo``.

    :param sub: the CLI's subparsers
    """
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
    demo.add_argument(
        "--daemon",
        action="store_true",
        help="run `sscard run` at a bus validator with the reference platform instead",
    )
    demo.set_defaults(handler=cmd_demo)
