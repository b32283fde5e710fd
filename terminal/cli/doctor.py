"""``sscard doctor [--config FILE] [--scenario NAME] [--json]``: check the terminal and say what
to do about each problem (:mod:`terminal.doctor`).

One line per check (``ok``, ``warn``, ``fail``), and under each problem what to do; ``--json``
prints one JSON document instead. Exit status 0 all ok, 1 with warnings, 2 with failures
(settings that cannot be read are a failure too).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from terminal.cli.options import scenario_option


def add_parser(sub: Any) -> None:
    """Register ``sscard doctor``.

    :param sub: the CLI's subparsers
    """
    parser = sub.add_parser(
        "doctor",
        help="check pcscd, readers, modules, ports, audio, platform, clock, lists, store, disk",
    )
    parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    scenario_option(parser)
    parser.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``sscard doctor``: run the checks, print them, exit 0/1/2."""
    from config.errors import ConfigError
    from config.settings import load_settings
    from terminal import doctor
    from terminal.compose import scenario_profiles

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        checks = [
            doctor.Check("settings", doctor.Level.FAIL, str(exc), "correct the settings file")
        ]
    else:
        profiles = scenario_profiles(args.scenario) if args.scenario else []
        checks = [
            doctor.Check("settings", doctor.Level.OK, settings.source),
            *doctor.run_checks(settings, profiles),
        ]
    status = doctor.exit_status(checks)
    if args.json:
        document = {"exit_status": status, "checks": [c.to_json() for c in checks]}
        print(json.dumps(document, ensure_ascii=False))
    else:
        print("\n".join(doctor.report_lines(checks)))
    failed = [c.name for c in checks if c.level == doctor.Level.FAIL]
    if failed:  # the one line every failing command ends with
        print(f"sscard: doctor: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
    return status
