"""``sscard qr issue|trust-list|trust-import|verify`` and ``sscard scan``: electronic-card codes.

``qr issue`` and ``qr trust-list`` are the development platform: they sign with the TEST KEYS
of ``drivers/virtual/test_keys/`` (a real platform keeps its keys in an HSM). ``qr trust-import``,
``qr verify`` and ``scan`` are the terminal side: the trust list is verified against the
pinned root of ``[ecard] trust_root_key`` and every decision goes through the pipeline and the
journal, exactly like ``sscard tap``; with ``production = true`` a TEST KEY as the root, on the
list or as an audience key is refused. Exit status: 0 accepted, 1 refused, 2 no decision (an
error that escapes a handler is answered by ``sscard``'s ``main``: one line, exit status 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
import time
import tomllib
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError
from drivers.virtual import TEST_KEYS
from terminal.cli.decision import decision_status, print_decision

if TYPE_CHECKING:
    from drivers.scanners import Scanner
    from ecard import PrivateKey

PLATFORM_KEYS = {"es256": "qr-platform-es256-test.pem", "sm2": "qr-platform-sm2-test.pem"}
ROOT_KEY = "qr-root-test.pem"
AUDIENCE_KEY = "qr-audience-hotel-test.key"
AUDIENCE_KID = "hotel-test"
IDENTITY_FIELDS = ("name", "ssn", "sex", "birth_date", "ethnicity")


def dev_token(region: str, card_number: str) -> str:
    """The development platform's card token: a hash of the canonical card identifier.

    A real platform issues tokens of its own; what matters is that the token is stable per
    card and reveals nothing (never the SSN).

    :param region: 发卡地区
    :param card_number: 卡号
    """
    from offline_store import canonical_card_id

    canonical = canonical_card_id(region, card_number)
    return hashlib.sha256(f"sscard-dev-token|{canonical}".encode()).hexdigest()


def _fail(message: object) -> int:
    from terminal.outcomes import EXIT_FAILURE

    print(f"sscard: {message}", file=sys.stderr)
    return EXIT_FAILURE


def _key(name: str) -> PrivateKey:
    from ecard.keys import load_private_key

    return load_private_key((TEST_KEYS / name).read_bytes())


def cmd_qr_issue(args: argparse.Namespace) -> int:
    """``sscard qr issue --persona FILE``: a development credential and a fresh dynamic code."""
    from ecard import PrivateKey, issue_credential, make_code

    try:
        data = tomllib.loads(Path(args.persona).read_text(encoding="utf-8"))
        card, holder = data["card"], data.get("holder", {})
        region, number = str(card["city_code"]), str(card["card_number"])
        now = int(time.time())
        platform = _key(PLATFORM_KEYS[args.alg])
        device = PrivateKey.generate(platform.alg)
        identity = None
        audience = None
        if args.identity:
            identity = {k: str(holder[k]) for k in IDENTITY_FIELDS if k in holder}
            audience = (AUDIENCE_KID, bytes.fromhex((TEST_KEYS / AUDIENCE_KEY).read_text().strip()))
        expiry = card.get("expiry_date")
        limit = now + int(args.valid_hours * 3600)
        if isinstance(expiry, dt.date):
            limit = min(limit, int(dt.datetime.combine(expiry, dt.time(23, 59, 59)).timestamp()))
        credential = issue_credential(
            platform,
            token=dev_token(region, number),
            region=region,
            category=str(card.get("category", "3")),
            not_before=now - 60,
            not_after=limit,
            device_public_key=device.public_key,
            identity=identity,
            audience=audience,
        )
        counter = args.counter if args.counter is not None else time.time_ns() // 1_000_000
        code = make_code(credential, device, timestamp=now, counter=counter & 0xFFFFFFFF)
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError, SscardError) as exc:
        return _fail(f"cannot issue a code for {args.persona}: {exc}")
    return _output(code, args)


def _output(code: str, args: argparse.Namespace) -> int:
    import segno

    qr = segno.make(code, error="q", mode="alphanumeric" if _alphanumeric(code) else None)
    if args.png:
        qr.save(args.png, scale=4, border=4)
    if args.svg:
        qr.save(args.svg, scale=4, border=4)
    if args.terminal:
        qr.terminal(compact=True)
    print(code)
    return 0


def _alphanumeric(text: str) -> bool:
    alphabet = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    return set(text) <= alphabet


def cmd_qr_trust_list(args: argparse.Namespace) -> int:
    """``sscard qr trust-list --out FILE``: the development platform's signed trust list."""
    from ecard import make_trust_list

    try:
        keys = [_key(PLATFORM_KEYS[name]).public_key for name in args.keys.split(",")]
        now = int(time.time())
        data = make_trust_list(
            keys, _key(ROOT_KEY), args.version, now - 60, now + int(args.valid_days * 86_400)
        )
        Path(args.out).write_bytes(data)
    except (OSError, KeyError, SscardError) as exc:
        return _fail(f"cannot make the trust list: {exc}")
    print(f"trust list version {args.version} with {len(keys)} keys written to {args.out}")
    return 0


def cmd_qr_trust_import(args: argparse.Namespace) -> int:
    """``sscard qr trust-import FILE``: verify against the pinned root, keep in the store."""
    from config.settings import load_settings
    from ecard.trust import save_trust_list
    from terminal.compose import open_store

    try:
        settings = load_settings(args.config)
        if settings.ecard.trust_root_key is None:
            return _fail(f"{settings.source}: [ecard] trust_root_key is not set")
        root = Path(settings.ecard.trust_root_key).read_bytes()
        data = Path(args.file).read_bytes()
        with open_store(settings) as store:
            trust = save_trust_list(store, data, root, time.time(), production=settings.production)
    except OSError as exc:
        return _fail(exc)
    print(
        f"trust list version {trust.version} imported: {len(trust.keys)} keys, "
        f"valid until {trust.not_after.isoformat()}"
    )
    return 0


def _run(args: argparse.Namespace, texts: Any) -> int:
    """Decide each scanned text through the pipeline; the exit status of the last decision."""
    from config.settings import load_settings
    from terminal.compose import open_pipeline, open_store, profile_dir_of, warn_operator
    from terminal.ecard_flow import process_code, verifier_from_settings
    from terminal.outcomes import EXIT_FAILURE
    from terminal.profiles import Scenario, load_profile

    settings = load_settings(args.config)
    profile = load_profile(args.scenario)
    verifier = verifier_from_settings(settings)
    if profile.scenario == Scenario.HOTEL and not args.room:
        return _fail("a hotel registration needs --room")
    status = EXIT_FAILURE
    with ExitStack() as stack:
        try:
            store = stack.enter_context(open_store(settings))
            profile_dir = profile_dir_of(args.scenario)
            pipeline = open_pipeline(settings, profile, store, stack, profile_dir=profile_dir)
            warn_operator(pipeline)
            for text in texts(stack):
                decision = process_code(pipeline, verifier, text, room=args.room)
                print_decision(decision, args.format)
                sys.stdout.flush()
                status = decision_status(decision)
        except KeyboardInterrupt:
            pass
    return status


def cmd_qr_verify(args: argparse.Namespace) -> int:
    """``sscard qr verify TEXT | --image FILE``: one code through the pipeline."""
    from drivers.scanners import ImageScanner

    if bool(args.text) == bool(args.image):
        return _fail("give the code TEXT or --image FILE (one of them)")

    def texts(stack: ExitStack) -> list[str]:
        if args.text:
            return [args.text]
        scanner = stack.enter_context(ImageScanner(args.image, decoder=args.decoder))
        scan = scanner.read(timeout_s=0)
        if scan is None:
            raise SscardError(f"no QR code found in {args.image}")
        return [scan.text]

    return _run(args, texts)


def cmd_scan(args: argparse.Namespace) -> int:
    """``sscard scan --serial PORT | --camera N | --image FILE…``: decide every code scanned."""
    from drivers.scanners import CameraScanner, ImageScanner, SerialScanner

    def texts(stack: ExitStack) -> Any:
        scanner: Scanner
        if args.serial:
            scanner = SerialScanner(args.serial, args.baud)
        elif args.camera is not None:
            scanner = CameraScanner(args.camera, decoder=args.decoder)
        else:
            scanner = ImageScanner(args.image, decoder=args.decoder)
        stack.enter_context(scanner)
        while not scanner.exhausted:
            scan = scanner.read(timeout_s=1.0)
            if scan is None:
                continue
            yield scan.text
            if args.once:
                return

    return _run(args, texts)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="gate", help="profile name or file (default: gate)")
    parser.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    parser.add_argument("--room", help="room number (hotel registration)")
    parser.add_argument("--format", choices=("json", "table"), default="table", help="output")
    parser.add_argument(
        "--decoder", choices=("zxing", "zbar"), default="zxing", help="QR decoder for images"
    )


def add_parser(sub: Any) -> None:
    """Register ``sscard qr`` and ``sscard scan``.

    :param sub: the CLI's subparsers
    """
    qr = sub.add_parser("qr", help="electronic-card codes: issue (development), trust, verify")
    actions = qr.add_subparsers(dest="qr_command", required=True, metavar="ACTION", help="what")

    issue = actions.add_parser("issue", help="a development credential and a fresh code")
    issue.add_argument("--persona", required=True, help="persona TOML file")
    issue.add_argument("--alg", choices=tuple(PLATFORM_KEYS), default="es256", help="algorithm")
    issue.add_argument("--valid-hours", type=float, default=24.0, help="credential validity")
    issue.add_argument(
        "--no-identity",
        dest="identity",
        action="store_false",
        help="leave out the identity blob (sealed to the hotel test audience key)",
    )
    issue.add_argument(
        "--counter", type=int, help="the device's code counter (default: milliseconds now)"
    )
    issue.add_argument("--png", help="also write the QR code as a PNG file")
    issue.add_argument("--svg", help="also write the QR code as an SVG file")
    issue.add_argument("--terminal", action="store_true", help="also draw it in the terminal")
    issue.set_defaults(handler=cmd_qr_issue)

    trust = actions.add_parser("trust-list", help="the development platform's signed trust list")
    trust.add_argument("--out", required=True, help="where to write it")
    trust.add_argument("--version", type=int, default=1, help="list version (default: 1)")
    trust.add_argument("--valid-days", type=float, default=7.0, help="validity in days")
    trust.add_argument(
        "--keys", default="es256,sm2", help="platform keys to list (default: es256,sm2)"
    )
    trust.set_defaults(handler=cmd_qr_trust_list)

    imp = actions.add_parser("trust-import", help="verify a trust list and keep it in the store")
    imp.add_argument("file", help="the signed trust list")
    imp.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    imp.set_defaults(handler=cmd_qr_trust_import)

    verify = actions.add_parser("verify", help="decide one code like sscard tap")
    verify.add_argument("text", nargs="?", help="the code's text")
    verify.add_argument("--image", help="an image holding the code")
    _common(verify)
    verify.set_defaults(handler=cmd_qr_verify)

    scan = sub.add_parser("scan", help="decide every code a scanner reads")
    source = scan.add_mutually_exclusive_group(required=True)
    source.add_argument("--serial", metavar="PORT", help="a serial QR scanner")
    source.add_argument("--camera", metavar="N", help="a camera index or a video file")
    source.add_argument("--image", metavar="FILE", nargs="+", help="image files")
    scan.add_argument("--baud", type=int, default=9600, help="serial speed (default: 9600)")
    scan.add_argument("--once", action="store_true", help="stop after the first decision")
    _common(scan)
    scan.set_defaults(handler=cmd_scan)
