"""``sscard journal verify|tail`` on real store files: ``--db`` as ``sscard deny`` takes it, the
settings' ``[store] database`` by default, and no empty store made where a path was mistyped.

``terminal/cli/__init__.py`` wires :func:`terminal.cli.store.add_parser` in; these tests build
the same sub-command parser around it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import golden
import pytest
from store_support import TOKEN

from offline_store import JournalEntry, Store
from terminal.cli import main
from terminal.cli.store import add_parser

pytestmark = pytest.mark.emulated


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sscard")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))

    def command() -> int:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)

    return golden.in_process(argv, command)


def journal_at(path: Path, rows: int) -> None:
    with Store.open(path) as store:
        for n in range(rows):
            store.journal.append(JournalEntry("gate", "0501", TOKEN, "accept", f"ok{n}", None))


def test_verify_and_tail_take_db_like_deny(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("SSCARD_CONFIG", raising=False)
    path = tmp_path / "elsewhere" / "store.db"
    journal_at(path, 3)
    assert run("journal", "verify", "--db", str(path)) == 0
    assert capsys.readouterr().out == "journal chain verified: 3 rows\n"
    assert run("journal", "tail", "-n", "2", "--db", str(path)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["seq"], r["reason"]) for r in rows] == [(2, "ok1"), (3, "ok2")]


def test_db_defaults_to_the_settings_store_and_wins_over_it(tmp_path: Path, capsys) -> None:
    journal_at(tmp_path / "configured.db", 1)
    journal_at(tmp_path / "other.db", 2)
    config = tmp_path / "terminal.toml"
    config.write_text('[store]\ndatabase = "configured.db"\n')
    assert run("journal", "verify", "--config", str(config)) == 0
    assert "1 rows" in capsys.readouterr().out
    other = str(tmp_path / "other.db")
    assert run("journal", "verify", "--config", str(config), "--db", other) == 0
    assert "2 rows" in capsys.readouterr().out


def test_a_mistyped_store_path_is_an_error_and_no_store_is_made(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "typo" / "stroe.db"
    for command in ("verify", "tail"):
        argv = ["journal", command, "--db", str(missing)]
        assert golden.in_process(argv, lambda argv=argv: main(argv)) == 2
        said = capsys.readouterr().err
        assert said == f"sscard: cannot open {missing}: there is no offline store there\n"
    assert not missing.parent.exists()
