"""``sscard tap --scenario NAME``: wait for one card, run the whole pipeline, print the decision.

``NAME`` is a built-in profile (``transit``, ``coach``, ``ferry``, ``gate``, ``hotel``,
``hospital``, ``service-hall``, ``meal-point``) or a profile file. A hotel needs ``--room``; a
service hall serves the holder for ``--service CODE`` (its first service by default) and asks
the PIN where that service needs it.

The decision is journaled in the offline store (``[store]`` in the settings) before it is
printed or signalled. Exit status: 0 accepted, 1 refused or "try again", 2 no decision could be
made (settings, profile, store, reader).

The terminal's region is ``[sync] region``; with ``[sync]`` configured, the platform is asked
during the tap where the profile's degraded policy says ``online``. What an operator must hear
— lists never provisioned, an ``online`` policy with no platform — is printed on stderr before
the card is awaited (docs/policy.md).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from config import PROFILE_DIR
from terminal.cli.decision import decision_status, print_decision
from terminal.cli.options import module_options

if TYPE_CHECKING:
    from terminal.profiles import Profile


def cmd_tap(args: argparse.Namespace) -> int:
    """Handle ``sscard tap``; a failure before the decision is answered by ``sscard``'s
    ``main`` (exit status 2, ``EXIT_FAILURE``)."""
    from apdu.atr import Atr
    from apdu.transport import t0_chain
    from config.settings import load_settings
    from terminal.card_read import ScenarioRead
    from terminal.compose import open_terminal, profile_dir_of, warn_operator
    from terminal.configuration import check_ready
    from terminal.modules import ModuleChoice
    from terminal.outcomes import EXIT_FAILURE
    from terminal.profiles import Scenario, load_profile

    settings = load_settings(args.config)
    check_ready(settings)  # a production terminal without the platform's keys refuses to start
    profile = load_profile(args.scenario)
    if profile.scenario == Scenario.HOTEL and not args.room:
        print("sscard: a hotel registration needs --room", file=sys.stderr)
        return EXIT_FAILURE
    problem = service_problem(profile, args.service)
    if problem:
        print(f"sscard: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    with ExitStack() as stack:
        terminal = stack.enter_context(
            open_terminal(
                settings,
                profile,
                profile_dir=profile_dir_of(args.scenario),
                module=ModuleChoice.from_args(args, settings),
            )
        )
        pipeline = terminal.pipeline
        warn_operator(pipeline)
        readers = terminal.pcsc
        sam = args.sam_reader
        exclude = [r for r in readers.list_readers() if sam and sam in r]
        connection = stack.enter_context(
            readers.wait_for_card(args.timeout, reader=args.reader, exclude=exclude)
        )
        pin = _pin(args) if pipeline.rules.needs_pin(args.service) else None
        read = ScenarioRead(
            t0_chain(connection), Atr.parse(connection.atr).historical, profile, terminal.module
        )
        decision = pipeline.process(read, pin=pin, room=args.room, service=args.service)
        alarm = terminal.store.journal.alarm()
    if alarm:
        print(f"sscard: warning: {alarm}", file=sys.stderr)
    print_decision(decision, args.format)
    return decision_status(decision)


def service_problem(profile: Profile, service: str | None) -> str | None:
    """What is wrong with ``--service`` for a profile, said before any card is read.

    :param profile: the scenario profile
    :param service: the ``--service`` value, or ``None``
    :raises: nothing
    """
    hall = profile.service_hall
    if hall is None:
        if service is None:
            return None
        return f"--service is for a service hall, not a {profile.scenario} profile"
    if hall.service(service) is None:
        offered = ", ".join(item.code for item in hall.services)
        return f"this service hall offers no service {service!r}; it offers: {offered}"
    return None


def _pin(args: argparse.Namespace) -> str | None:
    if args.pin_stdin:
        line = sys.stdin.readline().rstrip("\n")
        return line or None
    try:
        return getpass.getpass("PIN: ") or None
    except (EOFError, OSError):
        return None


def add_parser(sub: Any) -> None:
    """Register ``sscard tap``.

    :param sub: the CLI's subparsers
    """
    tap = sub.add_parser(
        "tap", help="wait for one card, decide for a scenario, journal and print the decision"
    )
    built_in = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
    tap.add_argument(
        "--scenario", required=True, metavar="NAME", help=f"profile name ({built_in}) or file"
    )
    tap.add_argument("--reader", help="reader name or a unique part of it (default: any)")
    tap.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for a card")
    tap.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    tap.add_argument("--room", help="room number (hotel registration)")
    tap.add_argument(
        "--service",
        metavar="CODE",
        help="the service a service-hall window serves the holder for (default: its first)",
    )
    tap.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    tap.add_argument("--format", choices=("json", "table"), default="table", help="output format")
    module_options(tap)
    tap.set_defaults(handler=cmd_tap)
