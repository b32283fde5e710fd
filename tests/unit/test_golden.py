"""The golden-output harness (``tests/golden.py``): what it normalises, and that a changed
output, a missing call and an unrecorded call each fail with a readable message."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from golden import ROOT, GoldenMismatch, Normaliser, Recorder, in_process, sscard_argv

NOW = dt.datetime(2026, 12, 4, 18, 0, 0)
NODE = "tests/e2e/test_x.py::test_y"


def recorder(mode: str, folder: Path) -> Recorder:
    made = Recorder(mode, folder)
    made.normalise = Normaliser(folder / "pytest-7", NOW)
    return made


def test_what_varies_between_runs_is_replaced_and_nothing_else(tmp_path: Path) -> None:
    normalise = Normaliser(tmp_path, NOW)
    epoch = int(NOW.timestamp())
    text = (
        f"{ROOT}/tests/catalogue.toml {tmp_path}/store.db\n"
        "2026-12-04 18:01:02,345 WARNING drivers.pcsc event=x\n"
        f'{{"uuid": "8a1e2cdc-78c9-4cea-8573-011603bbd298", "wall_time": {epoch}.97}}\n'
        "serving on http://127.0.0.1:41234/ (pid 4242)\n"
        'key_id = "k317dc27e"\n'
        "SSC1:9O60GO06JFO4 LMMS3$HE9CK280B7L6VCB/EYN\n"
        "time       ok       offset +0.006 s (limit 120 s)\n"
        "SM2: new key aa9db4c1415802cb; old keys 6c9f7383464d814d leave\n"
        "SM2   aa9db4c1415802cb  current\n"
        "born 1990-03-07, card valid until 2031-03-14; 12345678901234 rows; 120 s\n"
    )
    assert normalise(text).splitlines() == [
        "<repo>/tests/catalogue.toml <tmp>/store.db",
        "<time> WARNING drivers.pcsc event=x",
        '{"uuid": "<uuid>", "wall_time": <epoch>}',
        "serving on http://127.0.0.1:<port>/ (pid <pid>)",
        'key_id = "k<id>"',
        "SSC1:<code>",
        "time       ok       offset <s> s (limit 120 s)",
        "SM2: new key <new SM2 key>; old keys 6c9f7383464d814d leave",
        "SM2   <new SM2 key>  current",
        "born 1990-03-07, card valid until 2031-03-14; 12345678901234 rows; 120 s",
    ]


def test_a_recording_is_checked_call_by_call(tmp_path: Path) -> None:
    first = recorder("record", tmp_path)
    first.collected([NODE], whole=True)
    with first.scope(NODE):
        first.record("child", ["deny", "status"], 0, "version: 2\n", "")
        first.record("child", ["journal", "tail"], 0, "", "", stdin="x")
    (written,) = first.save()
    assert written == tmp_path / "e2e.test_x.json"
    assert [c["argv"] for c in json.loads(written.read_text())[NODE]] == [
        ["deny", "status"],
        ["journal", "tail"],
    ]
    same = recorder("check", tmp_path)
    with same.scope(NODE):
        same.record("child", ["deny", "status"], 0, "version: 2\n", "")
        same.record("child", ["journal", "tail"], 0, "", "", stdin="x")
    assert same.problems(NODE) == []
    changed = recorder("check", tmp_path)
    with changed.scope(NODE), pytest.raises(GoldenMismatch) as raised:
        changed.record("child", ["deny", "status"], 0, "version: 3\n", "")
    assert "-version: 2\n+version: 3" in str(raised.value)
    assert changed.problems(NODE) == [str(raised.value)]
    fewer = recorder("check", tmp_path)
    with fewer.scope(NODE):
        fewer.record("child", ["deny", "status"], 0, "version: 2\n", "")
    (problem,) = fewer.problems(NODE)
    assert "made 1 sscard calls, 2 are recorded" in problem and "journal" in problem
    more = recorder("check", tmp_path)
    with more.scope("tests/e2e/test_x.py::test_new"), pytest.raises(GoldenMismatch) as raised:
        more.record("child", ["demo"], 0, "", "")
    assert "is not recorded" in str(raised.value)


def test_in_process_calls_are_copied_and_still_reach_the_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import golden

    saved = golden.RECORDER
    golden.RECORDER = recorder("record", tmp_path)
    try:
        with golden.RECORDER.scope(NODE):

            def command() -> int:
                print("out")
                raise SystemExit(2)

            with pytest.raises(SystemExit):
                in_process(["fly"], command)
        (call,) = golden.RECORDER._made[("e2e.test_x", NODE)]
    finally:
        golden.RECORDER = saved
    assert (call["via"], call["status"], call["stdout"]) == ("in-process", 2, "out\n")
    assert capsys.readouterr().out == "out\n"


def test_child_command_lines_are_told_apart() -> None:
    assert sscard_argv(["py", "-m", "terminal.cli", "read"]) == ("child", ["read"])
    assert sscard_argv(["py", "-c", "code", "-vv", "demo"]) == ("child -c", ["-vv", "demo"])
    with pytest.raises(ValueError, match="not an sscard command line"):
        sscard_argv(["scriptor", "-r", "x"])
