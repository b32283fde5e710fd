"""``sscard deny import|check|status|rollback``: the deny list (黑名单) of the offline store.

Each handler parses its options, calls one :mod:`offline_store` method and formats the answer.
An import needs the platform's Ed25519 public key (``--public-key``), which must verify the
detached signature ``FILE.sig``; without a key it is refused unless ``--unsigned-ok`` is given
(development only, with a warning). ``deny check`` never prints the full card number.

``deny status`` also shows how old the list is and, per scenario, whether decisions are degraded
(stale or missing list: the profile's degraded policy applies, docs/policy.md). While the daemon
owns the store, ``import`` and ``status`` ask it through its admin socket and print the same
(:mod:`terminal.cli.daemon_link`, :mod:`terminal.operator`).

Exit status: 0 done (``check``: listed or not listed), 2 failure (one line on stderr; an
error that escapes a handler is answered by ``sscard``'s ``main``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.cli.daemon_link import wait_option
from terminal.cli.options import db_option, scenario_option

if TYPE_CHECKING:
    from tqdm import tqdm

    from config.settings import Settings
    from terminal.operator import Answer


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``deny`` and its commands on the ``sscard`` sub-command parsers.

    :param subparsers: what ``ArgumentParser.add_subparsers()`` returned
    :raises: nothing
    """
    deny = subparsers.add_parser("deny", help="import, check, show or roll back the deny list")
    commands = deny.add_subparsers(
        dest="deny_command", required=True, metavar="ACTION", help="what to do with the list"
    )

    imp = commands.add_parser("import", help="import a signed snapshot or delta file")
    imp.add_argument("file", metavar="FILE", help="the sscard-deny/1 file; FILE.sig next to it")
    db_option(imp)
    imp.add_argument(
        "--pepper-file",
        metavar="F",
        help="the deny-list pepper (mode 0600); when given, the list's pepper check must match",
    )
    key = imp.add_mutually_exclusive_group()
    key.add_argument("--public-key", metavar="PEM", help="the platform's Ed25519 public key (PEM)")
    key.add_argument(
        "--unsigned-ok",
        action="store_true",
        help="import without checking a signature (development only)",
    )
    wait_option(imp)
    imp.set_defaults(handler=cmd_deny_import)

    check = commands.add_parser("check", help="tell whether a card is on the active list")
    check.add_argument(
        "card", metavar="REGION:CARDNUMBER", help="six-digit region code and card number (卡号)"
    )
    db_option(check)
    check.add_argument("--pepper-file", metavar="F", help="the deny-list pepper (mode 0600)")
    check.set_defaults(handler=cmd_deny_check)

    status = commands.add_parser(
        "status", help="show the list versions, its age and where decisions are degraded"
    )
    db_option(status)
    scenario_option(status)
    wait_option(status)
    status.set_defaults(handler=cmd_deny_status)

    rollback = commands.add_parser("rollback", help="return to the previous list version")
    db_option(rollback)
    rollback.set_defaults(handler=cmd_deny_rollback)


def _defaults(args: argparse.Namespace) -> Settings:
    """Fill the store, pepper and key options the command line left out from the settings;
    return the settings.

    :param args: the parsed options (changed in place)
    :raises SettingsError: a settings file that cannot be read
    """
    from config.settings import load_settings

    settings = load_settings(args.config)
    if args.db is None:
        args.db = settings.database
    if getattr(args, "pepper_file", "absent") is None and settings.pepper_file is not None:
        args.pepper_file = str(settings.pepper_file)
    public_key = getattr(args, "public_key", "absent")
    if public_key is None and not args.unsigned_ok and settings.deny_public_key is not None:
        args.public_key = str(settings.deny_public_key)
    return settings


def _fail(message: object) -> int:
    from terminal.outcomes import EXIT_FAILURE

    print(f"sscard: {message}", file=sys.stderr)
    return EXIT_FAILURE


def _socket(args: argparse.Namespace) -> Path:
    from config.settings import load_settings
    from terminal.cli.daemon_link import admin_socket_for

    return admin_socket_for(load_settings(args.config), args.db)


def cmd_deny_import(args: argparse.Namespace) -> int:
    """``sscard deny import FILE``: verify, apply in one transaction, switch versions (through
    the daemon when it owns the store)."""
    from offline_store import load_pepper_file, load_verifier
    from terminal.cli.daemon_link import absolute, on_store

    production = _defaults(args).production
    if not args.public_key and not args.unsigned_ok:
        return _fail(
            "refusing an unsigned import: give --public-key PEM (or --unsigned-ok for development)"
        )
    if args.public_key:
        load_verifier(args.public_key)  # a bad key is said before any store is opened
    pepper = load_pepper_file(args.pepper_file) if args.pepper_file else None

    def direct() -> Answer:
        from tqdm import tqdm

        from offline_store import Store
        from terminal import operator

        with (
            Store.open(args.db, pepper=pepper) as store,
            tqdm(unit=" entries", file=sys.stderr, disable=None, leave=False) as bar,
        ):
            return operator.deny_import(
                store,
                args.file,
                public_key=args.public_key,
                unsigned_ok=args.unsigned_ok,
                progress=_progress(bar),
                production=production,
            )

    params = {
        "file": absolute(args.file),
        "public_key": absolute(args.public_key),
        "unsigned_ok": bool(args.unsigned_ok),
    }
    return on_store(
        direct, socket_path=_socket(args), request="deny-import", params=params, wait_s=args.wait
    )


def _progress(bar: tqdm[Any]) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.refresh()  # tqdm skips draws within mininterval: the finished count is always shown

    return update


def cmd_deny_check(args: argparse.Namespace) -> int:
    """``sscard deny check REGION:CARDNUMBER``: the reason and date, or "not listed"."""
    from apdu.identity import mask_card_number
    from offline_store import Store, canonical_card_id, load_pepper_file
    from terminal.outcomes import EXIT_OK

    region, sep, number = args.card.partition(":")
    if not sep:
        return _fail("give the card as REGION:CARDNUMBER (six digits, a colon, the card number)")
    _defaults(args)
    canonical = canonical_card_id(region, number)
    if not args.pepper_file:
        return _fail("deny check needs --pepper-file (the deny-list pepper, mode 0600)")
    pepper = load_pepper_file(args.pepper_file)
    with Store.open(args.db, pepper=pepper) as store:
        status = store.deny.status()
        if status.version is None:
            return _fail(f"no deny list has been imported into {args.db}")
        entry = store.deny.lookup(store.card_hash(canonical))
    shown = f"{region}:{mask_card_number(number.upper())}"
    if entry is None:
        print(f"{shown}: not listed (list version {status.version})")
    else:
        print(
            f"{shown}: listed, {entry.reason} since {entry.effective.isoformat()} "
            f"(list version {entry.version})"
        )
    return EXIT_OK


def cmd_deny_status(args: argparse.Namespace) -> int:
    """``sscard deny status``: the active and previous versions, entries, dates, age, and the
    scenarios whose decisions are degraded (through the daemon when it owns the store)."""
    from terminal.cli.daemon_link import on_store, scenario_params
    from terminal.compose import scenario_profiles

    _defaults(args)
    profiles = scenario_profiles(args.scenario)

    def direct() -> Answer:
        from offline_store import Store
        from terminal import operator

        with Store.open(args.db) as store:
            return operator.deny_status(store, profiles, dt.datetime.now().astimezone())

    return on_store(
        direct,
        socket_path=_socket(args),
        request="deny-status",
        params={"scenarios": scenario_params(args.scenario)},
        wait_s=args.wait,
    )


def cmd_deny_rollback(args: argparse.Namespace) -> int:
    """``sscard deny rollback``: switch back to the previous version."""
    from offline_store import Store
    from terminal.outcomes import EXIT_OK

    _defaults(args)
    with Store.open(args.db) as store:
        version = store.deny.rollback()
    print(f"deny list rolled back to version {version}")
    return EXIT_OK
