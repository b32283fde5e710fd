"""``sscard catalogue …`` and ``sscard journal …``: the operator's view of the offline store.

The store is the one ``[store] database`` of the settings (``--config``); ``journal verify``
and ``journal tail`` also take ``--db PATH``, as ``sscard deny`` does. Each handler opens it,
calls one library method and prints; exit status 0, or 2 with a one-line reason (an error that
escapes a handler is answered by ``sscard``'s ``main``).
``catalogue list`` ends with the catalogue's age and, per scenario, whether decisions are
degraded, as ``#`` comment lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.cli.options import db_option, scenario_option

if TYPE_CHECKING:
    from offline_store import Store


def _open(args: argparse.Namespace) -> Store:
    from config.settings import load_settings
    from offline_store import Store

    return Store.open(load_settings(args.config).database)


def _open_journal(args: argparse.Namespace) -> Store:
    """The existing store of ``--db``, else of the settings' ``[store] database``: a command
    that only reads the journal never creates an empty store where a path was mistyped."""
    from config.settings import load_settings
    from offline_store import Store, StoreError

    path = Path(args.db) if args.db is not None else load_settings(args.config).database
    if not path.exists():
        raise StoreError(f"cannot open {path}: there is no offline store there")
    return Store.open(path)


def cmd_catalogue_load(args: argparse.Namespace) -> int:
    """``sscard catalogue load FILE``: replace the application catalogue (应用目录)."""
    from terminal.outcomes import EXIT_OK

    with _open(args) as store:
        count = store.catalogue.load_file(args.file)
    print(f"catalogue loaded: {count} items")
    return EXIT_OK


def cmd_catalogue_list(args: argparse.Namespace) -> int:
    """``sscard catalogue list``: the items, one per line, then the age (``#`` lines)."""
    from offline_store import ListName
    from terminal.compose import scenario_profiles
    from terminal.list_policy import status_lines
    from terminal.outcomes import EXIT_OK

    profiles = scenario_profiles(args.scenario)
    with _open(args) as store:
        items = store.catalogue.items()
        ages = status_lines(store, ListName.CATALOGUE, profiles, dt.datetime.now().astimezone())
    for item in items:
        valid = f"{item.valid_from or '…'} – {item.valid_to or '…'}"
        print(f"{item.code}\t{item.scenario}\t{','.join(item.regions)}\t{valid}\t{item.name}")
    print("\n".join(f"# {line}" for line in ages))
    return EXIT_OK


def cmd_journal_verify(args: argparse.Namespace) -> int:
    """``sscard journal verify``: check the hash chain; exit 2 on a break."""
    from terminal.outcomes import EXIT_FAILURE, EXIT_OK

    with _open_journal(args) as store:
        report = store.journal.verify_chain()
        alarm = store.journal.alarm()
    if alarm:
        print(f"sscard: warning: {alarm}", file=sys.stderr)
    if not report.ok:
        print(f"sscard: journal chain broken at seq {report.first_bad_seq}: {report.problem}")
        return EXIT_FAILURE
    print(f"journal chain verified: {report.rows} rows")
    return EXIT_OK


def cmd_journal_tail(args: argparse.Namespace) -> int:
    """``sscard journal tail [-n N]``: the last rows as JSON lines, personal fields by name."""
    from terminal.outcomes import EXIT_OK

    with _open_journal(args) as store:
        last = store.journal.last()
        after = max(0, (last.seq if last else 0) - args.n)
        rows = list(store.journal.rows(after_seq=after))
    for row in rows:
        out: dict[str, Any] = {
            "seq": row.seq,
            "uuid": row.uuid,
            "wall_time": row.wall_time,
            "scenario": row.scenario,
            "outcome": row.outcome,
            "reason": row.reason_code,
            "amount": row.amount,
            "personal_fields": list(row.personal_fields),
            "flags": list(row.flags),
            "uploaded": row.uploaded,
        }
        print(json.dumps(out, ensure_ascii=False))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``sscard catalogue`` and ``sscard journal``.

    :param sub: the CLI's subparsers
    """
    catalogue = sub.add_parser(
        "catalogue", help="load or list the application catalogue (应用目录)"
    )
    actions = catalogue.add_subparsers(
        dest="catalogue_command", required=True, metavar="ACTION", help="what to do"
    )
    load = actions.add_parser("load", help="replace the catalogue from a TOML or JSON file")
    load.add_argument("file", help="an sscard-catalogue/1 file")
    load.set_defaults(handler=cmd_catalogue_load)
    listing = actions.add_parser(
        "list", help="print the catalogue's items, its age and where decisions are degraded"
    )
    scenario_option(listing)
    listing.set_defaults(handler=cmd_catalogue_list)

    journal = sub.add_parser("journal", help="verify or show the transaction journal")
    jactions = journal.add_subparsers(
        dest="journal_command", required=True, metavar="ACTION", help="what to do"
    )
    verify = jactions.add_parser("verify", help="check the journal's hash chain")
    db_option(verify)
    verify.set_defaults(handler=cmd_journal_verify)
    tail = jactions.add_parser("tail", help="print the last rows (no personal values)")
    tail.add_argument("-n", type=int, default=10, help="how many rows (default: 10)")
    db_option(tail)
    tail.set_defaults(handler=cmd_journal_tail)

    for parser in (load, listing):
        parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
