"""``sscard platform …``: the operator's commands of the reference platform.

The terminal's command line registers them (:func:`add_parser`) and hands over where the
public TEST KEYS of ``platform init --test-keys`` are (the platform does not know the terminal's
drivers); the platform's web stack is imported only when one of its commands runs.

Each handler (``cmd_*``) takes the parsed options (:class:`argparse.Namespace`), makes one
:class:`platform_server.Platform` call, formats the answer and returns the exit status. ``--db``
takes a database URL or an SQLite file path (default: ``$SSCARD_PLATFORM_DB``, else
``platform.db`` in the current folder); ``--keys`` the keys folder (default:
``$SSCARD_PLATFORM_KEYS``). Card numbers are never printed in full.

Exit status: 0 done, 2 failure (one line on stderr; an error that escapes a handler is answered
by ``sscard``'s ``main``); ``tx verify`` exits 2 when a chain has a gap, a break, a bad hash or
a miscount.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from apdu.errors import SscardError
from apdu.identity import mask_card_number
from offline_store.denyfile import DenyReason
from offline_store.identity import canonical_card_id, canonical_ecard_id
from platform_server.cli_clearing import add_clearing_parser
from platform_server.cli_support import (
    ALGS,
    DAY_S,
    DEFAULT_PORT,
    DEFAULT_URL,
    EXIT_OK,
    KEY_FILE_MODE,
    card_options,
    command,
    command_group,
    config_error,
    database_errors,
    db_option,
    db_url,
    fail,
    keys_folder,
    open_platform,
    platform_package,
)
from sync.wire import ISO_DATE

if TYPE_CHECKING:
    from platform_server.chains import ChainSummary, TxRow
    from platform_server.deferred import DeferredCode
    from platform_server.terminals import TerminalInfo

T = TypeVar("T")


def cmd_init(args: argparse.Namespace) -> int:
    """``platform init``: a keys folder with fresh (or test) keys, and the database."""
    try:
        test_keys = args.test_keys_folder if args.test_keys else None
        with (
            database_errors(db_url(args)),
            platform_package().Platform.init(
                db_url(args), keys_folder(args), test_keys=test_keys
            ) as platform,
        ):
            trust = platform.trust_list()
            deny = platform.deny_status()
    except OSError as exc:
        return fail(exc)
    if args.test_keys:
        print("warning: the trust root and QR keys are the public TEST KEYS", file=sys.stderr)
    print(f"keys folder {keys_folder(args)} created (private files 0600)")
    print(f"database {db_url(args)}: trust list version {trust.version} ({len(trust.kids)} keys),")
    print(f"deny list version {deny.version} (empty)")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """``platform serve``: the HTTP API with uvicorn until SIGTERM or SIGINT."""
    if (
        not platform_package().server.is_loopback(args.host)
        and not args.tls_cert
        and not args.allow_plain_http
    ):
        return fail(
            f"{args.host} is not a loopback address: serve HTTPS (--tls-cert, --tls-key) or "
            "pass --allow-plain-http"
        )
    try:
        with database_errors(db_url(args)):
            keys = platform_package().PlatformKeys.load(keys_folder(args))
            if args.production and keys.payments is not None:
                keys.payments.refuse_in_production()
            app = platform_package().create_app(db_url(args), keys)
        server = platform_package().PlatformServer(
            app, args.host, args.port, tls_cert=args.tls_cert, tls_key=args.tls_key
        )
    except OSError as exc:
        return fail(exc)
    print(server.url, flush=True)
    print(f"reference platform on {server.url}; Ctrl-C to stop", file=sys.stderr, flush=True)
    server.run()
    return EXIT_OK


def cmd_terminal_add(args: argparse.Namespace) -> int:
    """``platform terminal add ID``: register a terminal, write its key, print its settings."""
    key_out = Path(args.key_out)
    try:
        fd = os.open(key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except OSError as exc:
        return fail(f"cannot create the key file {key_out}: {exc.strerror}")
    try:
        with open_platform(args) as platform:
            credentials = platform.add_terminal(args.id, args.scenarios.split(","), args.region)
    except SscardError as exc:
        os.close(fd)
        key_out.unlink(missing_ok=True)
        return fail(exc)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(credentials.key.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        key_out.unlink(missing_ok=True)
        return fail(
            f"terminal {args.id} is registered but its key could not be written to {key_out} "
            f"({exc.strerror}): register it again under another id"
        )
    os.chmod(key_out, KEY_FILE_MODE)
    print(f"# terminal {args.id}: its key is in {key_out} (mode 0600); keep it secret")
    print("[terminal]")
    print(f"id = {_toml(credentials.terminal_id)}")
    print()
    print("[sync]")
    print(f"url = {_toml(args.url)}")
    print(f"key_id = {_toml(credentials.key_id)}")
    print(f"key_file = {_toml(str(key_out.resolve()))}")
    return EXIT_OK


def _toml(text: str) -> str:
    # a JSON string is a TOML basic string (the same escapes)
    return json.dumps(text, ensure_ascii=False)


def cmd_terminal_list(args: argparse.Namespace) -> int:
    """``platform terminal list``: terminals, last heartbeats, journal cursors."""
    with open_platform(args) as platform:
        found = platform.list_terminals()
    return _print_listing(found, _terminal_line, "no terminals registered")


def _terminal_line(info: TerminalInfo) -> str:
    seen = "never"
    if info.last_heartbeat_at is not None:
        seen = _utc(info.last_heartbeat_at)
    beat = info.heartbeat or {}
    return (
        f"{info.terminal_id}  region {info.region}  scenarios {','.join(info.scenarios)}  "
        f"rows {info.rows}  ack {info.ack_seq}  heartbeat {seen}  "
        f"offset {_offset(info.clock_offset_s)}  backlog {beat.get('backlog', '-')}  "
        f"deny v{beat.get('deny_version', '-')}  trust v{beat.get('trust_version', '-')}"
    )


def _offset(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}s"


def _card(args: argparse.Namespace) -> tuple[str, str]:
    """The canonical identifier and what may be shown of it."""
    if args.ecard_token:
        if args.card:
            raise config_error("give REGION:CARDNUMBER or --ecard-token, not both")
        return canonical_ecard_id(args.ecard_token), f"e-card token {args.ecard_token[:8]}…"
    if not args.card:
        raise config_error("give the card as REGION:CARDNUMBER (or --ecard-token TOKEN)")
    region, sep, number = args.card.partition(":")
    if not sep:
        raise config_error("give the card as REGION:CARDNUMBER (six digits, a colon, 卡号)")
    canonical = canonical_card_id(region, number)
    return canonical, f"card {region}:{mask_card_number(number.upper())}"


def cmd_deny_add(args: argparse.Namespace) -> int:
    """``platform deny add``: list a card (挂失 …) in a new list version."""
    try:
        canonical, shown = _card(args)
        effective = None
        if args.effective is not None:
            if not ISO_DATE.fullmatch(args.effective):
                raise ValueError(args.effective)
            effective = dt.date.fromisoformat(args.effective)
        with open_platform(args, keys=True) as platform:
            result = platform.deny(canonical, DenyReason(args.reason), effective)
    except ValueError:
        return fail("--effective must be a date YYYY-MM-DD")
    if not result.changed:
        print(f"{shown} is already listed so: deny list stays at version {result.version}")
    else:
        print(
            f"{shown} listed ({args.reason}): deny list version {result.version}, "
            f"{result.listed} entries"
        )
    return EXIT_OK


def cmd_deny_remove(args: argparse.Namespace) -> int:
    """``platform deny remove``: unlist a card (解挂) in a new list version."""
    canonical, shown = _card(args)
    with open_platform(args, keys=True) as platform:
        result = platform.undeny(canonical)
    print(f"{shown} unlisted: deny list version {result.version}, {result.listed} entries")
    return EXIT_OK


def cmd_deny_status(args: argparse.Namespace) -> int:
    """``platform deny status``: the current version and its size."""
    with open_platform(args) as platform:
        found = platform.deny_status()
    print(f"deny list version {found.version}: {found.listed} entries, created {found.created}")
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """``platform keys rotate``: new QR signing keys; the old ones leave after the grace."""
    with open_platform(args, keys=True) as platform:
        from ecard.keys import Alg

        algs = [Alg(name) for name in ALGS[args.alg]]
        done = [platform.rotate_keys(alg, args.grace_days * DAY_S) for alg in algs]
    for rotation in done:
        leaving = ", ".join(rotation.retiring) or "none"
        until = _utc(rotation.retire_at)
        print(
            f"{rotation.alg}: new key {rotation.kid}; old keys {leaving} leave the trust list "
            f"at {until}; trust list version {rotation.trust_version}"
        )
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    """``platform keys list``: the QR signing keys and when they retire."""
    with open_platform(args) as platform:
        found = platform.qr_keys()
    for key in found:
        retire = "current"
        if key.retire_at is not None:
            retire = "retires " + _utc(key.retire_at)
        print(f"{key.alg:<5} {key.kid}  {retire}")
    return EXIT_OK


def cmd_ecard_issue(args: argparse.Namespace) -> int:
    """``platform ecard issue --persona FILE``: an opaque national code for the decode table."""
    try:
        persona = tomllib.loads(Path(args.persona).read_text(encoding="utf-8"))
        with open_platform(args, keys=True) as platform:
            issued = platform.issue_ecard(persona, args.valid_hours * 3600)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return fail(f"cannot read the persona {args.persona}: {exc}")
    until = _utc(issued.expires_at)
    print(issued.code)
    print(f"code valid until {until}; card token {issued.token}", file=sys.stderr)
    return EXIT_OK


def cmd_ecard_deferred(args: argparse.Namespace) -> int:
    """``platform ecard deferred``: the national codes terminals let through offline, and what
    became of each once the terminal synced (docs/sync.md §12)."""
    with open_platform(args) as platform:
        codes = platform.deferred_codes(args.terminal, args.limit)
    return _print_listing(codes, _deferred_line, "no deferred e-card codes")


def _deferred_line(code: DeferredCode) -> str:
    status = f"{code.status}:{code.reason}" if code.reason else code.status
    follow = f"seq {code.follow_up_seq}" if code.follow_up_seq is not None else "-"
    return _row_line(code, f"{status:<28} {follow:<12}")


def cmd_catalogue_load(args: argparse.Namespace) -> int:
    """``platform catalogue load FILE``: replace the catalogue."""
    with open_platform(args) as platform:
        count = platform.load_catalogue(args.file)
    print(f"catalogue loaded: {count} items")
    return EXIT_OK


def cmd_tx_list(args: argparse.Namespace) -> int:
    """``platform tx list``: the newest journal rows (no personal data)."""
    with open_platform(args) as platform:
        rows = platform.transactions(args.terminal, args.limit)
    return _print_listing(rows, _tx_line, "no journal rows")


def _tx_line(row: TxRow) -> str:
    flags = ",".join(f for f, on in (("chain_break", row.chain_break), ("gap", row.gap)) if on)
    return _row_line(row, f"{row.outcome:<8} {row.reason_code:<24}") + f"  {flags}"


def _row_line(row: TxRow | DeferredCode, middle: str) -> str:
    """A journal row's line in ``tx list`` and ``ecard deferred``: terminal, seq, time (UTC)
    and scenario, then what the command shows of it, then the amount in yuan."""
    when = _utc(row.wall_time_us / 1e6)
    head = f"{row.terminal_id}  {row.seq:>8}  {when}  {row.scenario:<9}"
    return f"{head} {middle} {_yuan(row.amount):>8}"


def cmd_tx_verify(args: argparse.Namespace) -> int:
    """``platform tx verify``: per terminal, walk the stored chain again."""
    with open_platform(args) as platform:
        summaries = platform.verify_chains(args.terminal)
    for summary in summaries:
        print(_summary_line(summary))
    bad = [s.terminal_id for s in summaries if not s.ok]
    if bad:
        return fail(f"chain problems for {len(bad)} terminal(s): {', '.join(bad)}")
    return EXIT_OK


def _summary_line(summary: ChainSummary) -> str:
    span = f"seq {summary.min_seq}-{summary.max_seq}" if summary.rows else "no rows"
    head = (
        f"{summary.terminal_id}: {summary.rows} rows (counted {summary.counted}), {span}, "
        f"ack {summary.ack_seq}"
    )
    if summary.lost:  # declared gaps (docs/sync.md §5.9): accepted, and always said
        head += f", {summary.lost} declared lost ({_ranges(summary.lost_ranges)})"
    if summary.ok:
        return f"{head}: ok"
    return (
        f"{head}: {summary.missing} missing ({_ranges(summary.missing_ranges) or '-'}), "
        f"{summary.chain_breaks} chain breaks ({_seqs(summary.first_breaks)}), "
        f"{summary.bad_hashes} bad hashes ({_seqs(summary.first_bad_hashes)})"
    )


def _print_listing(items: Sequence[T], line: Callable[[T], str], empty: str) -> int:
    """Print one line per item, or ``empty`` when there is none; the exit status (0).

    :param items: what a listing command found
    :param line: an item's line
    :param empty: what is printed when nothing was found
    """
    for item in items:
        print(line(item))
    if not items:
        print(empty)
    return EXIT_OK


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return " ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in ranges)


def _utc(seconds: float) -> str:
    """A time of the platform's tables (seconds since the epoch) in ISO 8601, UTC."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


def _yuan(fen: int | None) -> str:
    """An amount in fen as yuan with two decimals; ``-`` for none."""
    return "-" if fen is None else f"{fen / 100:.2f}"


def _newest_options(parser: Any, what: str) -> None:
    """The options of a listing of the newest ``what``: ``--terminal``, ``--limit``, the database.

    :param parser: the command's parser
    :param what: what it lists (``rows``, ``codes``), for the help
    """
    parser.add_argument("--terminal", metavar="ID", help="one terminal (default: all)")
    parser.add_argument("--limit", type=int, default=50, help=f"how many {what} (default: 50)")
    db_option(parser)


def _seqs(seqs: Sequence[int]) -> str:
    return " ".join(str(s) for s in seqs) or "-"


def add_parser(sub: Any, *, test_keys: Path) -> None:
    """Register ``sscard platform`` and its commands.

    :param sub: the CLI's subparsers
    :param test_keys: the folder of the public TEST KEYS ``platform init --test-keys`` copies
    :raises: nothing
    """
    platform = sub.add_parser("platform", help="the reference platform: serve it, operate it")
    actions = platform.add_subparsers(
        dest="platform_command", required=True, metavar="ACTION", help="what to do"
    )

    init = actions.add_parser("init", help="create a keys folder and the database")
    db_option(init, keys=True)
    init.add_argument(
        "--test-keys",
        action="store_true",
        help="copy the repository's public TEST KEYS (development and tests only)",
    )
    init.set_defaults(handler=cmd_init, test_keys_folder=test_keys)

    serve = actions.add_parser("serve", help="serve the HTTP API until SIGTERM or Ctrl-C")
    db_option(serve, keys=True)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any (default {DEFAULT_PORT})"
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    serve.add_argument(
        "--allow-plain-http",
        action="store_true",
        help="allow plain HTTP on a non-loopback address",
    )
    serve.add_argument(
        "--production", action="store_true", help="refuse TEST KEY payment roots (the TAC check)"
    )
    serve.set_defaults(handler=cmd_serve)

    _terminal_parsers(actions)
    _deny_parsers(actions)

    _keys_parsers(actions)
    _ecard_parsers(actions)
    add_clearing_parser(actions)
    _catalogue_parsers(actions)
    _tx_parsers(actions)


def _keys_parsers(actions: Any) -> None:
    keys_actions = command_group(actions, "keys", "the platform's QR signing keys")
    rotate = keys_actions.add_parser("rotate", help="new QR signing keys; old ones retire later")
    rotate.add_argument("--alg", choices=tuple(ALGS), default="all", help="which (default: all)")
    rotate.add_argument(
        "--grace-days",
        type=float,
        default=14.0,
        help="days the old keys stay on the trust list (default: 14)",
    )
    db_option(rotate, keys=True)
    rotate.set_defaults(handler=cmd_keys_rotate)
    command(keys_actions, "list", "the QR signing keys and their retirement", cmd_keys_list)


def _ecard_parsers(actions: Any) -> None:
    ecard_actions = command_group(actions, "ecard", "opaque national e-card codes")
    issue = ecard_actions.add_parser("issue", help="store a code for a persona and print it")
    issue.add_argument("--persona", required=True, help="persona TOML file")
    issue.add_argument(
        "--valid-hours", type=float, default=24.0, help="how long it decodes (default: 24)"
    )
    db_option(issue, keys=True)
    issue.set_defaults(handler=cmd_ecard_issue)
    deferred = ecard_actions.add_parser(
        "deferred", help="codes let through offline and their confirmation by the platform"
    )
    _newest_options(deferred, "codes")
    deferred.set_defaults(handler=cmd_ecard_deferred)


def _catalogue_parsers(actions: Any) -> None:
    catalogue_actions = command_group(actions, "catalogue", "the application catalogue (应用目录)")
    load = command(
        catalogue_actions, "load", "replace it with a .toml or .json file", cmd_catalogue_load
    )
    load.add_argument("file", help="an sscard-catalogue/1 file")


def _tx_parsers(actions: Any) -> None:
    tx_actions = command_group(actions, "tx", "the uploaded journal rows")
    tx_list = tx_actions.add_parser("list", help="the newest rows")
    _newest_options(tx_list, "rows")
    tx_list.set_defaults(handler=cmd_tx_list)
    verify = tx_actions.add_parser("verify", help="check every chain: breaks, gaps, counts")
    verify.add_argument("--terminal", metavar="ID", help="one terminal (default: all)")
    db_option(verify)
    verify.set_defaults(handler=cmd_tx_verify)


def _terminal_parsers(actions: Any) -> None:
    terminal_actions = command_group(actions, "terminal", "register and list terminals")
    add = terminal_actions.add_parser("add", help="register a terminal and write its key")
    add.add_argument("id", metavar="ID", help="terminal id: 1-32 letters, digits, '-', '_'")
    add.add_argument(
        "--scenarios", default="gate", help="scenarios it serves, comma-separated (default: gate)"
    )
    add.add_argument("--region", default="440100", help="six-digit region (default: 440100)")
    add.add_argument(
        "--key-out", required=True, metavar="FILE", help="where to write its key (created 0600)"
    )
    add.add_argument(
        "--url", default=DEFAULT_URL, help=f"the platform URL it uses (default: {DEFAULT_URL})"
    )
    db_option(add)
    add.set_defaults(handler=cmd_terminal_add)
    command(terminal_actions, "list", "terminals and their last heartbeat", cmd_terminal_list)


def _deny_parsers(actions: Any) -> None:
    deny_actions = command_group(actions, "deny", "list and unlist cards (挂失/解挂)")
    add = deny_actions.add_parser("add", help="list a card: a new list version")
    card_options(add)
    add.add_argument(
        "--reason", required=True, choices=[str(r) for r in DenyReason], help="why it is listed"
    )
    add.add_argument("--effective", metavar="YYYY-MM-DD", help="first day it applies (today)")
    add.set_defaults(handler=cmd_deny_add)
    remove = deny_actions.add_parser("remove", help="unlist a card (解挂): a new list version")
    card_options(remove)
    remove.set_defaults(handler=cmd_deny_remove)
    command(deny_actions, "status", "the current list version", cmd_deny_status)
