"""``sscard host serve``: run the local HTTP + WebSocket API standalone, on a desk PC without the
daemon (``sscard run`` serves the same API from its own taps with ``[host] enabled``).

Options come from the command line; ``--token-file`` names a 0600 file holding the bearer token,
which a non-loopback bind requires.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from apdu.errors import SscardError
from config.errors import ConfigError
from terminal.cli.options import module_options


def cmd_host_serve(args: argparse.Namespace) -> int:
    """``sscard host serve``: serve the API on the given address until interrupted."""
    from config.settings import load_settings
    from drivers.pcsc import PcscReader
    from platform_server.errors import PlatformConfigError
    from platform_server.server import PlatformServer
    from terminal.compose import open_store
    from terminal.host.api import HostConfig, create_app
    from terminal.host.service import PcscHostService
    from terminal.modules import ModuleChoice, open_chosen

    try:
        token = Path(args.token_file).read_text(encoding="utf-8").strip() if args.token_file else ""
        config = HostConfig(
            args.host, args.port, list(args.origin or []), token, tls=bool(args.tls_cert)
        )
        config.check()  # the options first: a wrong command line fails the same everywhere
        settings = load_settings(args.config)
    except (SscardError, ConfigError, OSError, ValueError) as exc:
        print(f"sscard: {exc}", file=sys.stderr)
        return 2
    try:
        store = open_store(settings)
    except SscardError as exc:
        print(f"sscard: {exc}", file=sys.stderr)
        return 2
    pcsc = PcscReader()
    try:
        authenticate, module = open_chosen(ModuleChoice.from_args(args, settings), pcsc, settings)
    except SscardError as exc:
        pcsc.close()
        store.close()
        print(f"sscard: {exc}", file=sys.stderr)
        return 2
    service = PcscHostService(
        store,
        settings.terminal_id,
        settings.device_number,
        settings.sync_region,
        pcsc=pcsc,
        module=module,
        authenticate=authenticate,
        tear_window_s=settings.tear_window_s,
    )
    try:
        app = create_app(service, config)
        try:
            server = PlatformServer(
                app, config.host, config.port, tls_cert=args.tls_cert, tls_key=args.tls_key
            )
        except PlatformConfigError as exc:
            print(f"sscard: {exc}", file=sys.stderr)
            return 2
        print(f"sscard host API on {server.url}; Ctrl-C to stop", file=sys.stderr, flush=True)
        server.run()
    finally:
        service.close()
        store.close()
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sscard host serve``.

    :param sub: the CLI's subparsers
    """
    host = sub.add_parser("host", help="the local HTTP + WebSocket API for front-desk software")
    host_sub = host.add_subparsers(dest="host_command", required=True, help="what to do")
    serve = host_sub.add_parser("serve", help="serve the API until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8321, help="port to bind (default 8321)")
    serve.add_argument(
        "--origin", action="append", help="a browser origin allowed to call the API (repeatable)"
    )
    serve.add_argument("--token-file", help="file holding the bearer token (required off loopback)")
    serve.add_argument("--tls-cert", help="TLS certificate (PEM) for remote use")
    serve.add_argument("--tls-key", help="TLS private key (PEM)")
    serve.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    module_options(serve)
    serve.set_defaults(handler=cmd_host_serve)
