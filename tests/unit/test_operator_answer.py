"""The answer both ways of running an operator command print (terminal/operator.py): its JSON
form on the admin socket, strict when read back, and the ``sscard status`` lines."""

from __future__ import annotations

import pytest

from apdu.errors import SscardError
from terminal.operator import Answer, status_answer


def test_an_answer_survives_its_json_form() -> None:
    answer = Answer(("line 1", "行 2"), ("sscard: warning: x",), 1)
    assert Answer.from_json(answer.to_json()) == answer


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"out": [], "err": []},
        {"out": "text", "err": [], "exit_status": 0},
        {"out": [1], "err": [], "exit_status": 0},
        {"out": [], "err": [], "exit_status": True},
        {"out": [], "err": [], "exit_status": "0"},
    ],
)
def test_a_malformed_answer_is_refused(document: object) -> None:
    with pytest.raises(SscardError, match="daemon's answer"):
        Answer.from_json(document)


def test_status_is_printed_as_dotted_lines_or_json() -> None:
    status = {
        "daemon": "running",
        "readers": {"Virtual PCD 00 00": "waiting", "other": {}},
        "devices_down": [],
        "lists": {"deny_list": {"version": 3, "age_h": None}},
        "scanners": ["stdin", "serial"],
    }
    assert status_answer(status).out == (
        "daemon: running",
        "readers.Virtual PCD 00 00: waiting",
        "readers.other: -",
        "devices_down: -",
        "lists.deny_list.version: 3",
        "lists.deny_list.age_h: -",
        "scanners: stdin, serial",
    )
    (line,) = status_answer(status, as_json=True).out
    assert line.startswith('{"daemon": "running", "devices_down": []')
