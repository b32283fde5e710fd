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
from terminal.cli.decision import EXIT_ACCEPTED, EXIT_NO_DECISION, EXIT_REFUSED, print_decision
from terminal.cli.options import module_options

if TYPE_CHECKING:
    from terminal.profiles import Profile


def cmd_tap(args: argparse.Namespace) -> int:
    """Handle ``sscard tap``; a failure before the decision is answered by ``sscard``'s
    ``main`` (exit status 2, :data:`EXIT_NO_DECISION`)."""
    from apdu.atr import Atr
    from apdu.transport import t0_chain
    from config.settings import load_settings
    from drivers.pcsc import PcscReader
    from terminal.card_read import ScenarioRead
    from terminal.compose import (
        build_indicators,
        closing_indicator,
        open_online,
        open_store,
        profile_dir_of,
        warn_operator,
    )
    from terminal.configuration import check_ready
    from terminal.modules import open_module
    from terminal.pipeline import Pipeline
    from terminal.profiles import Scenario, load_profile
    from terminal.reasons import hotlines_from

    settings = load_settings(args.config)
    check_ready(settings)  # a production terminal without the platform's keys refuses to start
    profile = load_profile(args.scenario)
    if profile.scenario == Scenario.HOTEL and not args.room:
        print("sscard: a hotel registration needs --room", file=sys.stderr)
        return EXIT_NO_DECISION
    problem = service_problem(profile, args.service)
    if problem:
        print(f"sscard: {problem}", file=sys.stderr)
        return EXIT_NO_DECISION
    with ExitStack() as stack:
        store = stack.enter_context(open_store(settings))
        profile_dir = profile_dir_of(args.scenario)
        indicators = build_indicators(settings, profile, profile_dir)
        indicator = stack.enter_context(closing_indicator(indicators))
        readers = stack.enter_context(PcscReader())
        _, module = open_module(args, readers, settings)
        if module is not None:
            stack.enter_context(module)
        online = open_online(settings, store, profile)
        if online is not None:
            stack.enter_context(online)
        pipeline = Pipeline(
            profile,
            store,
            terminal_id=settings.terminal_id,
            indicator=indicator,
            profile_dir=profile_dir,
            region=settings.sync_region,
            online=online,
            hotlines=hotlines_from(settings.hotlines),
        )
        warn_operator(pipeline)
        sam = args.sam_reader
        exclude = [r for r in readers.list_readers() if sam and sam in r]
        connection = stack.enter_context(
            readers.wait_for_card(args.timeout, reader=args.reader, exclude=exclude)
        )
        pin = _pin(args) if pipeline.rules.needs_pin(args.service) else None
        read = ScenarioRead(
            t0_chain(connection), Atr.parse(connection.atr).historical, profile, module
        )
        decision = pipeline.process(read, pin=pin, room=args.room, service=args.service)
        alarm = store.journal.alarm()
    if alarm:
        print(f"sscard: warning: {alarm}", file=sys.stderr)
    print_decision(decision, args.format)
    return EXIT_ACCEPTED if decision.accepted else EXIT_REFUSED


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
