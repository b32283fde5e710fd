"""Every ``sscard`` command and option carries help text (the CLI is documentation too)."""

from __future__ import annotations

import argparse

import golden
import pytest

from terminal.cli import build_parser, main


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_option_has_help() -> None:
    parser = build_parser()
    commands = subcommands(parser)
    assert {"read", "virtual-card", "demo"} <= set(commands)
    helps = {a.dest: a.help for a in parser._actions if isinstance(a, argparse._SubParsersAction)}
    assert helps
    for choice in parser._subparsers._group_actions[0]._choices_actions:  # type: ignore[union-attr]
        assert choice.help, f"command {choice.dest} has no help"
    for name, sub in commands.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"sscard {name} {action.option_strings} has no help"


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        golden.in_process(["fly"], lambda: main(["fly"]))
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_virtual_card_with_a_missing_persona_file_is_a_clear_error(capsys, tmp_path) -> None:
    argv = ["virtual-card", "--persona", str(tmp_path / "nobody.toml")]
    status = golden.in_process(argv, lambda: main(argv))
    assert status == 2
    assert "nobody.toml" in capsys.readouterr().err
