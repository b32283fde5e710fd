"""``sscard init [--scenario NAME] [--production] [DIR]``: write a terminal configuration.

Development (the default) writes a terminal that works at once against the reference platform
on loopback, with the public TEST KEYS; ``--production`` writes a template that refuses to
start until the real platform's keys are in place (:mod:`terminal.configuration`). Every file
is 0600, every folder 0700; a folder that holds a configuration already is refused (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_DIR = "sscard-terminal"


def add_parser(sub: Any) -> None:
    """Register ``sscard init``.

    :param sub: the CLI's subparsers
    """
    from platform_server.cli import DEFAULT_URL
    from terminal.configuration import DEFAULT_SCENARIO, DEFAULT_TERMINAL_ID
    from terminal.profiles import PROFILE_DIR

    built_in = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    parser = sub.add_parser(
        "init", help="write a terminal configuration (settings, store, keys), 0600"
    )
    parser.add_argument(
        "dir",
        nargs="?",
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"the configuration folder, created 0700 (default: ./{DEFAULT_DIR})",
    )
    parser.add_argument(
        "--scenario",
        choices=built_in,
        default=DEFAULT_SCENARIO,
        metavar="NAME",
        help=f"the scenario it serves: {', '.join(built_in)} (default: {DEFAULT_SCENARIO})",
    )
    parser.add_argument(
        "--terminal-id",
        default=DEFAULT_TERMINAL_ID,
        metavar="ID",
        help=f"development: the terminal's id at the platform (default: {DEFAULT_TERMINAL_ID})",
    )
    parser.add_argument(
        "--platform-url",
        default=DEFAULT_URL,
        metavar="URL",
        help=f"development: where the reference platform will be served (default: {DEFAULT_URL})",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="a production template: refuses to start until the platform's keys are in place",
    )
    parser.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    """``sscard init``: write the configuration and say what to run next."""
    from terminal.configuration import init_development, init_production, next_steps

    if args.production:
        result = init_production(args.dir, scenario=args.scenario)
    else:
        result = init_development(
            args.dir,
            scenario=args.scenario,
            terminal_id=args.terminal_id,
            platform_url=args.platform_url,
        )
    print("\n".join(next_steps(result)))
    return 0
