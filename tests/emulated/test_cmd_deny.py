"""``sscard deny import|check|status|rollback`` on real files: exit statuses, one-line errors,
the signature rule, masked card numbers, help text, and the progress bar on a terminal.

``terminal/cli/__init__.py`` wires :func:`terminal.cli.deny.add_parser` in; these tests build
the same sub-command parser around it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import golden
import pytest
from store_support import Platform, entry, header, public_pem, write_list

from offline_store import canonical_card_id, keyed_card_hash
from terminal.cli.deny import add_parser
from terminal.cli.edge import run_command

pytestmark = pytest.mark.emulated

ROOT = Path(__file__).resolve().parents[2]
PEPPER = bytes(range(16))  # the pepper of docs/offline-store.md §2.4
CARD = "440100:D2143569X"
CARD_HASH = keyed_card_hash(PEPPER, canonical_card_id("440100", "D2143569X"))


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sscard")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def run(*argv: str) -> int:
    """Run a command as ``sscard``'s ``main`` does: its failures answered at the CLI's edge."""

    def command() -> int:
        args = build().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return run_command(lambda: handler(args), log_file=None)

    return golden.in_process(argv, command)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    # 100 h before now: stale where a list ages out at 72 h or less, fresh at 168 h, whatever
    # the day the suite runs (a fixed date aged past 168 h a week after it was written)
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=100)).isoformat(timespec="seconds")
    platform = Platform.generate()
    pem = tmp_path / "platform.pem"
    pem.write_bytes(public_pem(platform.key))
    pepper = tmp_path / "pepper"
    pepper.write_text(PEPPER.hex() + "\n")
    os.chmod(pepper, 0o600)
    first = write_list(
        tmp_path / "deny-7.jsonl",
        header("snapshot", 7, 2, created=created),
        [
            {"hash": CARD_HASH, "reason": "lost", "effective": "2026-11-20"},
            entry(2),
        ],
        platform.key,
    )
    second = write_list(
        tmp_path / "deny-8.jsonl",
        header("delta", 8, 1, base=7, created=created),
        [{"op": "remove", "hash": CARD_HASH}],
        platform.key,
    )
    (tmp_path / "forged").mkdir()
    forged = Platform.generate().snapshot(tmp_path / "forged", 9, [3])
    return {
        "db": str(tmp_path / "store.db"),
        "pem": str(pem),
        "pepper": str(pepper),
        "first": str(first),
        "second": str(second),
        "forged": str(forged),
        "created": created,
    }


def test_import_check_status_rollback(files, capsys) -> None:
    db, pem, pepper = files["db"], files["pem"], files["pepper"]
    assert run("deny", "import", files["first"], "--db", db, "--public-key", pem) == 0
    assert capsys.readouterr().out == (
        "deny list version 7 (snapshot) imported: 2 entries in the file, 2 cards listed\n"
    )
    assert run("deny", "import", files["first"], "--db", db, "--public-key", pem) == 0
    assert "already imported: nothing changed" in capsys.readouterr().out

    assert run("deny", "check", CARD.lower(), "--db", db, "--pepper-file", pepper) == 0
    out = capsys.readouterr().out
    assert out == "440100:D******9X: listed, lost since 2026-11-20 (list version 7)\n"
    assert "D2143569X" not in out

    assert run("deny", "import", files["second"], "--db", db, "--public-key", pem) == 0
    assert "version 8 (delta on version 7) imported" in capsys.readouterr().out
    assert run("deny", "check", CARD, "--db", db, "--pepper-file", pepper) == 0
    assert capsys.readouterr().out == "440100:D******9X: not listed (list version 8)\n"

    assert run("deny", "status", "--db", db) == 0
    status = capsys.readouterr().out
    assert "version:     8\nprevious:    7\nentries:     1\n" in status
    assert f"created:     {files['created']}\n" in status

    assert run("deny", "rollback", "--db", db) == 0
    assert capsys.readouterr().out == "deny list rolled back to version 7\n"
    assert run("deny", "rollback", "--db", db) == 2
    captured = capsys.readouterr()
    assert captured.err == "sscard: there is no previous deny-list version to roll back to\n"


def test_an_unsigned_import_is_refused_without_the_development_flag(files, capsys) -> None:
    db = files["db"]
    assert run("deny", "import", files["first"], "--db", db) == 2
    err = capsys.readouterr().err
    assert err.startswith("sscard: refusing an unsigned import")
    assert err.count("\n") == 1
    assert run("deny", "status", "--db", db) == 0
    assert capsys.readouterr().out.startswith("no deny list imported\n")
    assert run("deny", "import", files["first"], "--db", db, "--unsigned-ok") == 0
    assert "warning: importing without checking a signature" in capsys.readouterr().err


def test_a_list_signed_by_another_key_is_refused(files, capsys) -> None:
    db = files["db"]
    assert run("deny", "import", files["forged"], "--db", db, "--public-key", files["pem"]) == 2
    err = capsys.readouterr().err
    assert "signature does not verify" in err
    assert err.count("\n") == 1
    run("deny", "status", "--db", db)
    assert capsys.readouterr().out.startswith("no deny list imported\n")


def test_the_public_key_and_the_development_flag_exclude_each_other(files, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("deny", "import", files["first"], "--public-key", files["pem"], "--unsigned-ok")
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (("deny", "check", "440100D2143569X"), "give the card as REGION:CARDNUMBER"),
        (("deny", "check", "4401:D2143569X"), "region code must be 6 ASCII digits"),
        (("deny", "check", "440100:D2143569"), "card number must be 9 characters"),
        (("deny", "check", CARD, "--pepper-file", "/nonexistent/pepper"), "cannot read pepper"),
        (("deny", "check", CARD, "--pepper-file", "{pepper}"), "no deny list has been imported"),
        (("deny", "check", CARD), "needs --pepper-file"),
        (("deny", "import", "/nonexistent.jsonl", "--unsigned-ok"), "cannot read deny list"),
        (
            ("deny", "import", "{first}", "--public-key", "/nonexistent.pem"),
            "cannot read the public",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(files, capsys, argv, problem) -> None:
    argv = tuple(a.format(**files) for a in argv)
    assert run(*argv, "--db", files["db"]) == 2
    captured = capsys.readouterr()
    assert problem in captured.err
    assert captured.err.startswith("sscard: ")
    assert captured.err.count("\n") == 1
    assert "D2143569" not in captured.err


def test_every_deny_command_and_option_has_help() -> None:
    parser = build()
    deny = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ).choices["deny"]
    commands = next(
        action for action in deny._actions if isinstance(action, argparse._SubParsersAction)
    )
    assert commands.help
    assert set(commands.choices) == {"import", "check", "status", "rollback"}
    for choice in commands._choices_actions:
        assert choice.help, f"deny {choice.dest} has no help"
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"sscard deny {name} {action.option_strings} has no help"


def test_the_import_shows_a_progress_bar_on_a_terminal(tmp_path) -> None:
    path = Platform.generate().snapshot(tmp_path, 1, range(30_000), signed=False)
    runner = (
        "import argparse, sys\n"
        "from terminal.cli.deny import add_parser\n"
        "parser = argparse.ArgumentParser(prog='sscard')\n"
        "add_parser(parser.add_subparsers(dest='command'))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.handler(args))\n"
    )
    controller, terminal = pty.openpty()
    # a fresh pty is 0 columns wide, and tqdm would draw its bar in none of them
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                runner,
                "deny",
                "import",
                str(path),
                "--unsigned-ok",
                "--db",
                str(tmp_path / "store.db"),
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child's side is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    # the bar on the terminal depends on timing: only stdout is a golden output
    golden.observed(child.args, child.returncode, child.stdout.decode())  # type: ignore[arg-type]
    assert child.returncode == 0, shown.decode(errors="replace")
    assert b"30000 cards listed" in child.stdout
    assert b"entries" in shown  # tqdm's unit
    assert b"30000/30000" in shown


def test_status_shows_the_age_and_the_scenarios_whose_decisions_are_degraded(
    tmp_path: Path, capsys
) -> None:
    platform = Platform.generate()
    pem = tmp_path / "platform.pem"
    pem.write_bytes(public_pem(platform.key))
    db = str(tmp_path / "store.db")
    assert run("deny", "status", "--db", db, "--scenario", "transit") == 0
    assert capsys.readouterr().out == (
        "no deny list imported\n"
        "age:         - (never provisioned)\n"
        "  transit:    DEGRADED (missing, limit 72 h): accept\n"
    )
    made = dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)
    path = write_list(
        tmp_path / "deny-1.jsonl",
        header("snapshot", 1, 0, created=made.isoformat()),
        [],
        platform.key,
    )
    assert run("deny", "import", str(path), "--db", db, "--public-key", str(pem)) == 0
    capsys.readouterr()
    assert run("deny", "status", "--db", db) == 0
    out = capsys.readouterr().out
    assert "age:         30.0 h (current as of " in out
    assert "  gate:       fresh (limit 168 h)\n" in out
    assert "  transit:    fresh (limit 72 h)\n" in out
    assert "  hotel:      DEGRADED (stale, limit 24 h): online, else accept\n" in out
    assert "  hospital:   DEGRADED (stale, limit 24 h): online, else accept\n" in out
    assert run("deny", "status", "--db", db, "--scenario", "spa") == 2
    assert "no scenario profile 'spa'" in capsys.readouterr().err


def test_a_production_terminal_refuses_the_development_flag(files, tmp_path, capsys) -> None:
    settings = tmp_path / "production.toml"
    settings.write_text("production = true\n", encoding="utf-8")
    db = files["db"]
    status = run(
        "deny", "import", files["first"], "--db", db, "--unsigned-ok", "--config", str(settings)
    )
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("sscard: a production terminal refuses an unsigned deny list")
    assert err.count("\n") == 1
    assert run("deny", "status", "--db", db, "--config", str(settings)) == 0
    assert capsys.readouterr().out.startswith("no deny list imported\n")
