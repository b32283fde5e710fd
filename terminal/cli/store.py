"""``sscard catalogue …`` and ``sscard journal …``: the operator's view of the offline store.

``journal recover`` rebuilds a damaged store from what it can read and what the platform
re-sends (:mod:`terminal.recovery`); it refuses while the daemon holds the store.

The store is the one ``[store] database`` of the settings (``--config``); ``journal verify``
and ``journal tail`` also take ``--db PATH``, as ``sscard deny`` does. Each handler opens it,
calls one library method and prints; exit status 0, or 2 with a one-line reason (an error that
escapes a handler is answered by ``sscard``'s ``main``).
``catalogue list`` ends with the catalogue's age and, per scenario, whether decisions are
degraded, as ``#`` comment lines. While the daemon owns the store, each command asks it through
its admin socket and prints the same (:mod:`terminal.cli.daemon_link`, :mod:`terminal.operator`).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.cli.daemon_link import wait_option
from terminal.cli.options import db_option, scenario_option

if TYPE_CHECKING:
    from config.settings import Settings
    from offline_store import Store
    from terminal.operator import Answer


def _open(args: argparse.Namespace) -> Store:
    from offline_store import Store

    return Store.open(_settings(args).database)


def _settings(args: argparse.Namespace) -> Settings:
    from config.settings import load_settings

    return load_settings(args.config)


def _open_journal(args: argparse.Namespace) -> Store:
    """The existing store of ``--db``, else of the settings' ``[store] database``: a command
    that only reads the journal never creates an empty store where a path was mistyped."""
    from offline_store import Store, StoreError

    path = Path(args.db) if args.db is not None else _settings(args).database
    if not path.exists():
        raise StoreError(f"cannot open {path}: there is no offline store there")
    return Store.open(path)


def _on_store(
    args: argparse.Namespace,
    direct: Callable[[], Answer],
    request: str,
    params: dict[str, Any] | None = None,
) -> int:
    """Run the command on the store, or through the daemon that owns it."""
    from terminal.cli.daemon_link import admin_socket_for, on_store

    socket_path = admin_socket_for(_settings(args), getattr(args, "db", None))
    return on_store(
        direct, socket_path=socket_path, request=request, params=params or {}, wait_s=args.wait
    )


def cmd_catalogue_load(args: argparse.Namespace) -> int:
    """``sscard catalogue load FILE``: replace the application catalogue (应用目录)."""
    from terminal import operator
    from terminal.cli.daemon_link import absolute

    def direct() -> Answer:
        with _open(args) as store:
            return operator.catalogue_load(store, args.file)

    return _on_store(args, direct, "catalogue-load", {"file": absolute(args.file)})


def cmd_catalogue_list(args: argparse.Namespace) -> int:
    """``sscard catalogue list``: the items, one per line, then the age (``#`` lines)."""
    from terminal import operator
    from terminal.cli.daemon_link import scenario_params
    from terminal.compose import scenario_profiles

    profiles = scenario_profiles(args.scenario)

    def direct() -> Answer:
        with _open(args) as store:
            return operator.catalogue_list(store, profiles, dt.datetime.now().astimezone())

    params = {"scenarios": scenario_params(args.scenario)}
    return _on_store(args, direct, "catalogue-list", params)


def cmd_journal_verify(args: argparse.Namespace) -> int:
    """``sscard journal verify``: check the hash chain; exit 2 on a break."""
    from terminal import operator

    def direct() -> Answer:
        with _open_journal(args) as store:
            return operator.journal_verify(store)

    return _on_store(args, direct, "journal-verify")


def cmd_journal_tail(args: argparse.Namespace) -> int:
    """``sscard journal tail [-n N]``: the last rows as JSON lines, personal fields by name."""
    from terminal import operator

    def direct() -> Answer:
        with _open_journal(args) as store:
            return operator.journal_tail(store, args.n)

    return _on_store(args, direct, "journal-tail", {"n": args.n})


def cmd_journal_recover(args: argparse.Namespace) -> int:
    """``sscard journal recover [--yes] [--json]``: plan the recovery of a damaged journal
    from the platform, and with ``--yes`` write it into a new store file.

    Never through the daemon: the file is replaced, so the daemon must be stopped first.
    """
    from apdu.errors import SscardError
    from offline_store import Store, StoreError, StoreLocked, load_key_file
    from terminal.recovery import recover_journal

    settings = _settings(args)
    path = settings.database
    if not path.exists():
        raise StoreError(f"cannot open {path}: there is no offline store there")
    key_file = settings.journal_key_file
    key = load_key_file(key_file) if key_file else None

    def fetch(after_seq: int, up_to_seq: int) -> list[dict[str, Any]]:
        from sync.config import SyncConfig
        from sync.recovery import fetch_own_rows

        transport = SyncConfig.from_settings(settings).transport()
        try:
            return fetch_own_rows(transport, after_seq, up_to_seq)
        finally:
            transport.close()

    try:
        store = Store.open(path, journal_key=key, journal_cap_rows=settings.journal_cap_rows)
    except StoreLocked as locked:
        raise SscardError(f"{locked}: stop the daemon first (recovery replaces the file)") from None
    with store:
        answer = recover_journal(
            store,
            fetch=fetch,
            terminal_id=settings.terminal_id,
            journal_key=key,
            apply=args.yes,
            as_json=args.json,
        )
    return answer.emit()


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
    recover = jactions.add_parser(
        "recover",
        help="recover a damaged journal: keep the sound rows, re-fetch the rest from the "
        "platform, declare the lost seqs (the daemon must be stopped)",
    )
    recover.add_argument(
        "--yes", action="store_true", help="write the plan into a new store file (else: print it)"
    )
    recover.add_argument("--json", action="store_true", help="print one JSON document")
    recover.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    recover.set_defaults(handler=cmd_journal_recover)

    for parser in (load, listing):
        parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    for parser in (load, listing, verify, tail):
        wait_option(parser)
