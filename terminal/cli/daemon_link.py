"""Operator commands on a store another process owns: ask the daemon, or wait for the store.

``sscard deny import|status``, ``sscard journal tail|verify``, ``sscard catalogue load|list``,
``sscard sync --once`` and ``sscard status`` open the offline store themselves. When it is in
use (the daemon owns it), they send the same request to the daemon's admin socket
(:func:`terminal.daemon.admin.ask`) and print its answer, which is the same text
(:mod:`terminal.operator` formats both). When no daemon answers there (another one-shot command
holds the store for a moment), they try the store again until ``--wait S`` has passed, and then
fail with one line, exit status 2.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError

if TYPE_CHECKING:
    from config.settings import Settings
    from terminal.operator import Answer

DEFAULT_WAIT_S = 5.0
DAEMON_TIMEOUT_S = 30.0  # a deny import of a large list, a journal verify of a full journal
SYNC_TIMEOUT_FACTOR = 8  # sync-once: a handful of requests, each within [sync] timeout_s
RETRY_S = 0.2


def wait_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--wait S`` to a command that uses the offline store.

    :param parser: the command's parser
    :raises: nothing
    """
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_WAIT_S,
        metavar="S",
        help="when another process holds the store and no daemon answers, wait this long for "
        f"it (default: {DEFAULT_WAIT_S:g})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("the wait must be 0 seconds or more")
    return value


def admin_socket_for(settings: Settings, db: Path | None) -> Path:
    """The admin socket of the daemon owning a store: the settings' one for their store, else
    ``admin.sock`` next to the ``--db`` store.

    :param settings: the terminal settings
    :param db: ``--db``, or ``None``
    :raises: nothing
    """
    from config.settings import ADMIN_SOCKET_NAME

    if db is None or _same_file(Path(db), settings.database):
        return settings.admin_socket_path
    return Path(db).parent / ADMIN_SOCKET_NAME


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve()
    except OSError:
        return False


def on_store(
    direct: Callable[[], Answer],
    *,
    socket_path: Path,
    request: str,
    params: Mapping[str, Any],
    wait_s: float,
    timeout_s: float = DAEMON_TIMEOUT_S,
) -> int:
    """Run a command on the store, through the daemon when the daemon holds it; print the
    answer; return its exit status.

    :param direct: the command on a store it opens itself (raises ``StoreLocked`` when in use)
    :param socket_path: the daemon's admin socket
    :param request: the admin request doing the same (:data:`terminal.daemon.admin.REQUESTS`)
    :param params: its parameters, with absolute file paths
    :param wait_s: how long to wait for the store when no daemon answers
    :param timeout_s: how long the daemon may take to answer
    :raises SscardError: the store stayed in use and no daemon answered; the daemon did not
        answer in time
    """
    from offline_store import StoreLocked
    from terminal.daemon.admin import DaemonUnavailable, ask

    deadline = time.monotonic() + wait_s
    while True:
        try:
            answer = direct()
        except StoreLocked as locked:
            try:
                answer = ask(socket_path, request, params, timeout_s=timeout_s)
            except DaemonUnavailable:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SscardError(
                        f"{locked}, and no daemon answers on {socket_path} "
                        f"(waited {wait_s:g} s; --wait S waits longer)"
                    ) from None
                time.sleep(min(RETRY_S, left))
                continue
        return answer.emit()


def absolute(path: str | Path | None) -> str | None:
    """A file path the daemon can open from its own working folder.

    :param path: a path as the operator typed it, or ``None``
    :raises: nothing
    """
    return None if path is None else str(Path(path).absolute())


def scenario_params(names: list[str] | None) -> list[str] | None:
    """``--scenario`` values for the daemon: profile files made absolute, names kept.

    :param names: the values, or ``None``
    :raises: nothing
    """
    if names is None:
        return None
    return [str(Path(n).absolute()) if n.endswith(".toml") else n for n in names]
