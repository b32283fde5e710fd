"""No ``sscard`` command ends in a traceback for a condition the project knows (issue 10, #2).

Every command and sub-command of :func:`terminal.cli.build_parser` is run under each condition:

* ``pcscd-stopped`` — no pcscd (a pcscd this
  test session started is stopped for the module), everything else in order: a terminal with
  settings, store, keys and a live platform for ``sync``; a platform database with keys;
* ``settings-missing`` — ``$SSCARD_CONFIG`` names a file that is not there (and the platform's
  ``$SSCARD_PLATFORM_DB`` / ``$SSCARD_PLATFORM_KEYS`` a folder that is not there);
* ``no-settings`` — no ``$SSCARD_CONFIG`` and no ``/etc/sscard/terminal.toml``: the defaults,
  whose store ``/var/lib/sscard/store.db`` is kept off the host by a tmpfs over ``/var/lib``
  in a private mount namespace (``unshare``);
* ``store-garbage``, ``store-folder``, ``store-under-file`` — the offline store (and the
  platform's database) is a file of random bytes, a folder, or a path under a plain file.

:data:`CASES` says per command what is right under each: a failure is exit status 2 with the
last line of stderr ``sscard: …`` matching a pattern (``sscard: -11: …``, the national code,
when the reader is missing), a command the condition does not touch does its work. Commands
that serve until stopped are stopped with SIGTERM once they serve, and must exit 0; a serving
command whose port is taken must fail at once with one line. Nothing may print "Traceback".

The command lines run in real child processes: a forking runner (``tests/cli_runner.py``)
imports the CLI once and forks one process per command line, which keeps a few hundred runs
within seconds. The issue's own case — ``sscard read --sam-reader`` with pcscd stopped —, a
closed stdout, Ctrl-C and a bug are also checked with ``python -m terminal.cli`` children.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import golden
import pytest
from cli_runner import Result, record_result, run_many
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from platform_support import LivePlatform, live_platform
from store_support import header, write_list
from support import CATALOGUE, TEST_ROOTS, persona_path, run_sscard

from apdu.errors import ReaderUnavailable
from config.settings import DEFAULT_PATH
from drivers.pcsc import PcscReader
from drivers.virtual.pcscd import running_pid
from offline_store import DenyReason, canonical_card_id
from platform_server.keys import DENY_KEY
from terminal.cli import build_parser

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PERSONA = str(persona_path("ordinary-2.0"))
STOP_AFTER_S = 8.0  # a serving command is sent SIGTERM once it serves, at the latest after this
RUN_TIMEOUT_S = 20.0
CONDITIONS = (
    "pcscd-stopped",
    "settings-missing",
    "no-settings",
    "store-garbage",
    "store-folder",
    "store-under-file",
)
VAR_LIB_ON_TMPFS = [
    "unshare", "-m", "--propagation", "private", "sh", "-c",
    'mount -t tmpfs tmpfs /var/lib && exec "$@"', "sh",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Expect:
    """What a command must do under one condition.

    :param status: the exit status
    :param stderr: a pattern the last line of stderr must match (``serves``: any line)
    :param stdout: a pattern stdout must contain
    :param serves: it serves until stopped: SIGTERM once it printed ``stderr`` (or ``stdout``),
        at the latest after :data:`STOP_AFTER_S`, then ``status``
    """

    status: int
    stderr: str = ""
    stdout: str = ""
    serves: bool = False


def ok(stdout: str = "") -> Expect:
    """The command does its work (the condition does not touch it)."""
    return Expect(0, stdout=stdout)


def fails(stderr: str, stdout: str = "") -> Expect:
    """Exit status 2 and one clear last line on stderr matching ``stderr``."""
    return Expect(2, stderr, stdout)


def serves(stderr: str = "", stdout: str = "") -> Expect:
    """It serves until SIGTERM, then exits 0."""
    return Expect(0, stderr, stdout, serves=True)


READER = fails(r"^sscard: -11: 读卡器连接错误 / reader connection error: ")  # App A: -11
SETTINGS = fails(r"^sscard: cannot read settings file .*absent[/]terminal\.toml: No such file")
# read keeps its own format: the national string's code (-13) comes with every failure
READ_SETTINGS = fails(r"^sscard: -13: .*cannot read settings file .*absent[/]terminal\.toml")
STORE = fails(r"^sscard: (?=.*store\.db).*(not an sscard offline store|cannot open|cannot create)")
PLATFORM_DB = fails(r"^sscard: .*(cannot use the database|cannot create) .*platform\.db")
NO_KEYS = fails(r"^sscard: give the keys folder: --keys DIR")
ABSENT_KEYS = fails(r"^sscard: no keys folder .*absent[/]keys")
SYNC_UNSET = fails(r"^sscard: <defaults>: \[sync\] needs url, key_file, key_id")
PEPPER_UNSET = fails(r"^sscard: <defaults>: \[store\] pepper_file is not set")


@dataclass(frozen=True, slots=True)
class Case:
    """One command line and what it must do under each condition.

    :param argv: the arguments (``{busy}``: a port taken; ``{code}``: an e-card code)
    :param expect: condition → expectation; the ``store-…`` conditions share ``store``
    :param why: why the case runs as it does, where that needs saying
    """

    argv: tuple[str, ...]
    pcscd_stopped: Expect
    settings_missing: Expect
    no_settings: Expect
    store: Expect
    why: str = ""

    def expect(self, condition: str) -> Expect:
        """The expectation under a condition."""
        if condition.startswith("store-"):
            return self.store
        expected: Expect = getattr(self, condition.replace("-", "_"))
        return expected


def same(expect: Expect, *argv: str, why: str = "") -> Case:
    """A case the conditions do not tell apart."""
    return Case(tuple(argv), expect, expect, expect, expect, why)


def terminal(*argv: str, working: Expect, no_settings: Expect, settings: Expect = SETTINGS) -> Case:
    """A command of the terminal's store: settings, then store."""
    return Case(tuple(argv), working, settings, no_settings, STORE)


def platform(*argv: str, working: Expect, absent: Expect, default: Expect) -> Case:
    """A ``platform`` command: ``absent`` with the env naming a missing folder, ``default``
    with no env at all (``./platform.db`` is created)."""
    return Case(("platform", *argv), working, absent, default, PLATFORM_DB)


CARD = "440100:D2143569X"
CASES: dict[tuple[str, ...], list[Case]] = {
    ("read",): [
        Case(
            ("read", "--timeout", "0.5", "--sam-reader", "PSAM"),
            READER, READ_SETTINGS, READER, READER,
            why="issue 10: ReaderUnavailable from list_readers was a traceback",
        ),
        Case(
            ("read", "--timeout", "0.5", "--format", "json"),
            fails(READER.stderr, r'"code": -11'), READ_SETTINGS,
            fails(READER.stderr, r'"code": -11'), fails(READER.stderr, r'"code": -11'),
        ),
    ],
    ("pin",): [
        Case(("pin", "verify", "--pin-stdin", "--timeout", "0.5"), READER, SETTINGS, READER, READER)
    ],
    ("hsm-service",): [
        same(
            fails(r"^sscard: cannot bind the HSM service to 127\.0\.0\.1:\d+: Address already"),
            "hsm-service", "--keys", "roots.toml", "--port", "{busy}",
        ),
        same(
            serves(r"reference HSM service on http://127\.0\.0\.1:\d+/?; Ctrl-C to stop"),
            "hsm-service", "--keys", "roots.toml", "--port", "0",
        ),
    ],
    ("virtual-card",): [
        same(
            serves(r"virtual card 'ordinary-2\.0' \(T=1\) on vpcd slot 0"),
            "virtual-card", "--persona", PERSONA,
            why="it waits for vpcd (pcscd) to come back, like after a pcscd restart",
        ),
    ],
    ("demo",): [
        same(
            fails(r"^sscard: no persona files in "),
            "demo", "--personas", "empty",
            why="a real demo starts its own pcscd, which would end 'pcscd-stopped' for the "
            "other commands, and reads every persona through `sscard read`, whose failures "
            "are checked here; the empty folder checks the demo's own failure path",
        ),
    ],
    ("tap",): [
        terminal(
            "tap", "--scenario", "gate", "--timeout", "0.5",
            working=READER, no_settings=PEPPER_UNSET,
        ),
    ],
    ("run",): [
        terminal(
            "run", working=READER, no_settings=PEPPER_UNSET,
        ),
    ],
    ("init",): [
        same(
            fails(r"^sscard: .*deny-3\.jsonl exists and is not a folder"),
            "init", "deny-3.jsonl",
            why="init writes a new folder whatever the conditions; a file in its way is the "
            "failure every condition shares (a working init is tested in test_init.py)",
        ),
    ],
    ("status",): [
        terminal(
            "status", working=ok(),
            no_settings=fails(r"^sscard: cannot open /var/lib/sscard/store\.db: there is no "),
        ),
    ],
    ("doctor",): [
        Case(
            ("doctor",),
            Expect(2, stdout=r"fail  pcscd"),
            Expect(2, stdout=r"fail  settings: cannot read settings file"),
            Expect(2, stdout=r"fail  store: no offline store at /var/lib/sscard/store\.db"),
            Expect(2, stdout=r"fail  store"),
            why="doctor reports every check on stdout and exits 2 when one fails",
        ),
    ],
    ("deny", "import"): [
        terminal(
            "deny", "import", "deny-3.jsonl",
            working=ok(r"deny list version 3 \(snapshot\) imported"),
            no_settings=fails(r"^sscard: refusing an unsigned import"),
        ),
    ],
    ("deny", "check"): [
        terminal(
            "deny", "check", CARD,
            working=ok(r"440100:D\*+9X: not listed \(list version 2\)"),
            no_settings=fails(r"^sscard: deny check needs --pepper-file"),
        ),
    ],
    ("deny", "status"): [
        terminal(
            "deny", "status",
            working=ok(r"version: +2\n"), no_settings=ok(r"^no deny list imported"),
        ),
    ],
    ("deny", "rollback"): [
        terminal(
            "deny", "rollback",
            working=ok(r"deny list rolled back to version 1"),
            no_settings=fails(r"^sscard: there is no previous deny-list version"),
        ),
    ],
    ("catalogue", "load"): [
        terminal(
            "catalogue", "load", str(CATALOGUE),
            working=ok(r"catalogue loaded: \d+ items"), no_settings=ok(r"catalogue loaded"),
        ),
    ],
    ("catalogue", "list"): [
        terminal("catalogue", "list", working=ok(r"\tgate\t"), no_settings=ok()),
    ],
    ("journal", "verify"): [
        terminal(
            "journal", "verify",
            working=ok(r"journal chain verified: 0 rows"), no_settings=ok(r"verified: 0 rows"),
        ),
    ],
    ("journal", "tail"): [terminal("journal", "tail", working=ok(), no_settings=ok())],
    ("journal", "recover"): [
        terminal(
            "journal", "recover",
            working=ok(r"nothing to recover"), no_settings=ok(r"nothing to recover"),
        ),
    ],
    ("qr", "issue"): [same(ok(r"^SSC1:"), "qr", "issue", "--persona", PERSONA)],
    ("qr", "trust-list"): [
        same(ok(r"trust list version 1 with 2 keys"), "qr", "trust-list", "--out", "t.bin")
    ],
    ("qr", "trust-import"): [
        terminal(
            "qr", "trust-import", "trust-2.bin",
            working=ok(r"trust list version 2 imported"),
            no_settings=fails(r"^sscard: <defaults>: \[ecard\] trust_root_key is not set"),
        ),
    ],
    ("qr", "verify"): [
        terminal(
            "qr", "verify", "{code}", "--format", "json",
            working=ok(r'"outcome": "accept"'), no_settings=PEPPER_UNSET,
        ),
    ],
    ("scan",): [
        terminal(
            "scan", "--image", "code.png", "--once", "--format", "json",
            working=ok(r'"outcome": "accept"'), no_settings=PEPPER_UNSET,
        ),
    ],
    ("sync",): [
        terminal(
            "sync", "--once",
            working=ok(r"sync: ok"), no_settings=SYNC_UNSET,
        ),
        terminal(
            "sync", "--interval", "60",
            working=serves(stdout=r"sync: ok"), no_settings=SYNC_UNSET,
        ),
    ],
    ("platform", "init"): [
        platform(
            "init", "--test-keys", "--keys", "new-keys",
            working=ok(r"keys folder new-keys created"), absent=ok(r"keys folder new-keys created"),
            default=ok(r"keys folder new-keys created"),
        ),
    ],
    ("host", "serve"): [
        terminal(
            "host", "serve", "--port", "{busy}",
            working=fails(r"^sscard: cannot listen on 127\.0\.0\.1:\d+: Address already in use"),
            no_settings=PEPPER_UNSET,
        ),
        terminal(
            "host", "serve", "--port", "0",
            working=serves(r"sscard host API on http://127\.0\.0\.1:\d+/; Ctrl-C to stop"),
            no_settings=PEPPER_UNSET,
        ),
        same(
            fails(r"^sscard: a bearer token is required to bind 0\.0\.0\.0"),
            "host", "serve", "--host", "0.0.0.0",
        ),
    ],
    ("platform", "serve"): [
        platform(
            "serve", "--port", "{busy}",
            working=fails(r"^sscard: cannot listen on 127\.0\.0\.1:\d+: Address already in use"),
            absent=ABSENT_KEYS, default=NO_KEYS,
        ),
        Case(
            ("-v", "platform", "serve", "--port", "0"),
            serves(r"uvicorn\.error Application startup complete"), ABSENT_KEYS, NO_KEYS,
            PLATFORM_DB,
            why="-v: uvicorn logs when it serves; stopped before, the SIGTERM would be lost",
        ),
    ],
    ("platform", "terminal", "add"): [
        platform(
            "terminal", "add", "T9", "--key-out", "t9.key",
            working=ok(r'id = "T9"'), absent=ok(r'id = "T9"'), default=ok(r'id = "T9"'),
        ),
    ],
    ("platform", "terminal", "list"): [
        platform(
            "terminal", "list",
            working=ok(r"FAIL-01"), absent=ok(r"no terminals registered"),
            default=ok(r"no terminals registered"),
        ),
    ],
    ("platform", "deny", "add"): [
        platform(
            "deny", "add", CARD, "--reason", "lost",
            working=ok(r"card 440100:D\*+9X is already listed"), absent=ABSENT_KEYS,
            default=NO_KEYS,
        ),
    ],
    ("platform", "deny", "remove"): [
        platform(
            "deny", "remove", CARD,
            working=ok(r"card 440100:D\*+9X unlisted"), absent=ABSENT_KEYS, default=NO_KEYS,
        ),
    ],
    ("platform", "deny", "status"): [
        platform(
            "deny", "status",
            working=ok(r"deny list version \d+"), absent=ok(r"deny list version 1: 0 entries"),
            default=ok(r"deny list version 1: 0 entries"),
        ),
    ],
    ("platform", "keys", "rotate"): [
        platform(
            "keys", "rotate",
            working=ok(r"ES256: new key .*\nSM2: new key"), absent=ABSENT_KEYS, default=NO_KEYS,
        ),
    ],
    ("platform", "keys", "list"): [
        platform("keys", "list", working=ok(r"ES256 "), absent=ok(), default=ok()),
    ],
    ("platform", "ecard", "issue"): [
        platform(
            "ecard", "issue", "--persona", PERSONA,
            working=ok(r"\S"), absent=ABSENT_KEYS, default=NO_KEYS,
        ),
    ],
    ("platform", "ecard", "deferred"): [
        platform(
            "ecard", "deferred",
            working=ok(r"no deferred e-card codes"), absent=ok(r"no deferred e-card codes"),
            default=ok(r"no deferred e-card codes"),
        ),
    ],
    ("platform", "catalogue", "load"): [
        platform(
            "catalogue", "load", str(CATALOGUE),
            working=ok(r"catalogue loaded: \d+ items"), absent=ok(r"catalogue loaded"),
            default=ok(r"catalogue loaded"),
        ),
    ],
    ("platform", "tx", "list"): [
        platform(
            "tx", "list",
            working=ok(r"no journal rows"), absent=ok(r"no journal rows"),
            default=ok(r"no journal rows"),
        ),
    ],
    ("platform", "tx", "verify"): [
        platform("tx", "verify", working=ok(), absent=ok(), default=ok()),
    ],
    ("platform", "clearing"): [
        platform(
            "clearing", "--day", "2026-11-29",
            working=ok(r"0 purchases 0\.00 yuan"), absent=ok(r"0 purchases 0\.00 yuan"),
            default=ok(r"0 purchases 0\.00 yuan"),
        ),
    ],
}  # fmt: skip


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command and sub-command of a parser, as paths of names."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_commands(sub, (*path, name))
            return
    yield path


def case_ids() -> list[tuple[str, str, Case]]:
    """(test id, condition, case) for every case under every condition."""
    out = []
    for command, cases in CASES.items():
        for n, case in enumerate(cases):
            name = " ".join(command) + (f" #{n + 1}" if len(cases) > 1 else "")
            out.extend((f"{name} | {condition}", condition, case) for condition in CONDITIONS)
    return out


def test_every_command_has_cases_in_the_table() -> None:
    """A new command fails here until its behaviour under each condition is written down."""
    commands = set(leaf_commands(build_parser()))
    assert commands == set(CASES), (
        f"commands without cases: {sorted(commands - set(CASES))}; "
        f"cases of no command: {sorted(set(CASES) - commands)}"
    )
    for command, cases in CASES.items():
        for case in cases:
            argv = case.argv[1:] if case.argv[0] == "-v" else case.argv
            assert argv[: len(command)] == command, case.argv


# --- the world the commands run in -------------------------------------------------------------


@pytest.fixture(scope="module")
def no_pcscd(request: pytest.FixtureRequest) -> Iterator[None]:
    """No pcscd for this module: a pcscd this test session started is stopped, then started
    again for the modules that follow."""
    daemon = None
    if running_pid() is not None:
        daemon = request.getfixturevalue("pcscd")  # fails if the pcscd is not this session's
        daemon.stop()
    with PcscReader() as readers, pytest.raises(ReaderUnavailable):
        readers.list_readers()  # the condition holds
    yield
    if daemon is not None:
        daemon.start()


@dataclass(frozen=True, slots=True)
class World:
    """What every run did, by test id.

    :param results: test id → (the run, its result)
    :param unshare_problem: why the no-settings runs could not run, or ``None``
    """

    results: dict[str, tuple[dict[str, Any], Result]]
    unshare_problem: str | None


def _write_secret(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _settings(sync_url: str, key_id: str) -> str:
    return (
        '[terminal]\nid = "FAIL-01"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\n'
        'journal_key_file = "journal.key"\ndeny_public_key = "deny.pem"\n'
        '[ecard]\ntrust_root_key = "qr-root.pem"\n'
        f'[sync]\nurl = "{sync_url}"\nkey_file = "sync.key"\nkey_id = "{key_id}"\n'
        "[indicators]\nconsole = false\n"
    )


def _prepare(folder: Path, argvs: list[tuple[str, ...]], env: dict[str, Any]) -> list[Result]:
    runs = [{"argv": list(a), "env": env, "cwd": str(folder), "timeout": 30} for a in argvs]
    done = run_many(runs, parallel=1)
    for argv, result in zip(argvs, done, strict=True):
        assert result.status == 0, f"preparing {argv}: {result.stdout}{result.stderr}"
    return done


def _make_template(folder: Path, live: LivePlatform) -> str:
    """A terminal that synced twice with the live platform (pepper, keys, deny list v1 and v2,
    trust list, catalogue), a platform of its own (database, test keys, a listed card) and
    the input files; returns an e-card code."""
    term = folder / "terminal"
    term.mkdir(parents=True)
    (folder / "empty").mkdir()
    credentials = live.terminals["FAIL-01"]
    _write_secret(term / "journal.key", os.urandom(32).hex().encode())
    _write_secret(term / "sync.key", credentials.key.hex().encode())
    _write_secret(folder / "roots.toml", TEST_ROOTS.read_bytes())
    (term / "terminal.toml").write_text(_settings(live.url, credentials.key_id))
    live.platform.load_catalogue(CATALOGUE)
    env = {"SSCARD_CONFIG": str(term / "terminal.toml")}
    db = ("--db", "platform/platform.db")
    first = _prepare(
        folder,
        [
            ("qr", "trust-list", "--out", "trust-2.bin", "--version", "2"),
            ("qr", "issue", "--persona", PERSONA, "--png", "code.png"),
            ("sync", "--once"),
            ("platform", "init", "--test-keys", *db, "--keys", "platform/keys"),
            ("platform", "terminal", "add", "FAIL-01", "--key-out", "fail-01.key", *db),
            ("platform", "deny", "add", CARD, "--reason", "lost", *db, "--keys", "platform/keys"),
        ],
        env,
    )
    live.platform.deny(canonical_card_id("440100", "X00000001"), DenyReason("lost"))
    _prepare(folder, [("sync", "--once")], env)  # deny list v2 on top of v1
    signer = serialization.load_pem_private_key((live.keys_dir / DENY_KEY).read_bytes(), None)
    assert isinstance(signer, Ed25519PrivateKey)
    write_list(folder / "deny-3.jsonl", header("snapshot", 3, 0), [], signer)
    return first[1].stdout.strip()


def _run_folder(folder: Path, template: Path, part: str, condition: str) -> dict[str, Any]:
    """Copy the input files and one part of the template (``terminal`` or ``platform``) into
    ``folder``, break it as the condition says, and return the environment to run with."""
    folder.mkdir()
    for item in template.iterdir():
        if item.is_file():
            shutil.copy2(item, folder / item.name)
        elif item.name == "empty":
            (folder / "empty").mkdir()
    shutil.copytree(template / part, folder / part)
    db = folder / part / ("store.db" if part == "terminal" else "platform.db")
    env: dict[str, Any] = {
        "SSCARD_CONFIG": str(folder / "terminal" / "terminal.toml"),
        "SSCARD_PLATFORM_DB": str(folder / "platform" / "platform.db"),
        "SSCARD_PLATFORM_KEYS": str(folder / "platform" / "keys"),
    }
    if condition == "settings-missing":
        absent = folder / "absent"
        env = {
            "SSCARD_CONFIG": str(absent / "terminal.toml"),
            "SSCARD_PLATFORM_DB": str(absent / "platform.db"),
            "SSCARD_PLATFORM_KEYS": str(absent / "keys"),
        }
    elif condition == "no-settings":
        env = dict.fromkeys(env)  # unset
    elif condition == "store-garbage":
        db.write_bytes(os.urandom(8192))
    elif condition == "store-folder":
        db.unlink()
        db.mkdir()
    elif condition == "store-under-file":
        db.write_bytes(b"a plain file, not a folder\n")
        if part == "terminal":
            settings = db.with_name("terminal.toml")
            settings.write_text(settings.read_text().replace('"store.db"', '"store.db/store.db"'))
        env["SSCARD_PLATFORM_DB"] = str(db / "platform.db")
    return env


def _runs(
    world_root: Path, template: Path, condition: str, code: str, busy: int
) -> tuple[list[str], list[dict[str, Any]]]:
    ids, runs = [], []
    for test_id, cond, case in case_ids():
        if cond != condition:
            continue
        folder = world_root / f"run-{len(ids)}-{condition}"
        part = "platform" if "platform" in case.argv else "terminal"
        env = _run_folder(folder, template, part, condition)
        argv = [a.replace("{busy}", str(busy)).replace("{code}", code) for a in case.argv]
        expect = case.expect(condition)
        ids.append(test_id)
        runs.append(
            {
                "argv": argv,
                "env": env,
                "cwd": str(folder),
                "timeout": RUN_TIMEOUT_S,
                "stop_after": STOP_AFTER_S if expect.serves else None,
                "stop_when": (expect.stderr or expect.stdout) if expect.serves else None,
            }
        )
    return ids, runs


def _unshare_problem() -> str | None:
    """Why the no-settings runs cannot have their own /var/lib, or None."""
    if DEFAULT_PATH.exists():
        return f"{DEFAULT_PATH} exists: this machine is configured as a terminal"
    probe = subprocess.run([*VAR_LIB_ON_TMPFS, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot mount a private /var/lib: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def world(no_pcscd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Prepare the template, then run every case under every condition: the no-settings runs
    (in their own /var/lib, one after the other: they share its default store) beside all the
    others (four at a time)."""
    root = tmp_path_factory.mktemp("cli-failures")
    with (
        socket.socket() as busy,
        live_platform(root / "live", {"FAIL-01": ("gate",)}, clock=time.time) as live,
    ):
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        template = root / "template"
        code = _make_template(template, live)
        port = busy.getsockname()[1]
        problem = _unshare_problem()
        plain_ids, plain_runs, own_ids, own_runs = [], [], [], []
        for condition in CONDITIONS:
            ids, runs = _runs(root, template, condition, code, port)
            if condition != "no-settings":
                plain_ids += ids
                plain_runs += runs
            elif problem is None:
                own_ids, own_runs = ids, runs
        with ThreadPoolExecutor(max_workers=2) as pool:  # each test records its own run
            plain = pool.submit(run_many, plain_runs, record=False)
            own = pool.submit(
                run_many, own_runs, parallel=1, wrapper=VAR_LIB_ON_TMPFS, record=False
            )
            done = zip(plain_runs, plain.result(), strict=True)
            results = dict(zip(plain_ids, done, strict=True))
            results |= dict(zip(own_ids, zip(own_runs, own.result(), strict=True), strict=True))
        yield World(results, problem)


@pytest.mark.parametrize(
    ("test_id", "condition", "case"),
    [pytest.param(test_id, cond, case, id=test_id) for test_id, cond, case in case_ids()],
)
def test_no_command_ends_in_a_traceback_under_a_known_condition(
    world: World, test_id: str, condition: str, case: Case
) -> None:
    if condition == "no-settings" and world.unshare_problem:
        pytest.skip(world.unshare_problem)
    run, done = world.results[test_id]
    record_result(run, done)
    expect = case.expect(condition)
    shown = (
        f"{case.why}\nexit {done.status}\n--- stdout\n{done.stdout[-1500:]}\n"
        f"--- stderr\n{done.stderr[-1500:]}"
    )
    assert "Traceback" not in done.stdout + done.stderr, shown
    assert not done.timed_out, f"still running after {RUN_TIMEOUT_S} s\n{shown}"
    assert done.status == expect.status, shown
    lines = done.stderr.strip().splitlines()
    if expect.serves:
        assert re.search(expect.stderr, done.stderr, re.M), shown
    elif expect.status == 2:
        assert lines and lines[-1].startswith("sscard: "), shown
        assert re.search(expect.stderr, lines[-1]), shown
    assert re.search(expect.stdout, done.stdout, re.M), shown


# --- the same edge in plain `python -m terminal.cli` children ----------------------------------


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSCARD_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def test_read_with_a_sam_reader_and_no_pcscd_is_one_line_with_the_national_code(
    no_pcscd: None,
) -> None:
    """Issue 10: this printed the traceback of ReaderUnavailable from list_readers."""
    done = run_sscard("read", "--sam-reader", "PSAM", "--timeout", "1", "--format", "json")
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("sscard: -11: 读卡器连接错误"), done.stderr
    assert json.loads(done.stdout)["code"] == -11


def test_ctrl_c_while_waiting_for_a_card_is_one_line_and_status_130(no_pcscd: None) -> None:
    command = [sys.executable, "-m", "terminal.cli", "read", "--timeout", "60"]
    # faulthandler: a child that does not stop is made to print where each thread is (SIGABRT)
    env = _child_env(PYTHONFAULTHANDLER="1")
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stderr is not None
        seen = ""
        while "event=pcsc_unavailable" not in seen:  # it waits for pcscd to come back
            line = child.stderr.readline()
            assert line, f"sscard read ended early: {seen}"
            seen += line
        child.send_signal(signal.SIGINT)
        try:
            out, err = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)
            out, err = child.communicate(timeout=20)
            pytest.fail(f"sscard read did not stop on SIGINT; where it was:\n{seen}{err}")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    golden.observed(command, child.returncode, out, err)
    assert child.returncode == 130, seen + err
    assert "Traceback" not in out + seen + err
    assert err.splitlines()[-1] == "sscard: interrupted"


def test_a_closed_stdout_is_one_line_not_a_broken_pipe_report() -> None:
    command = [sys.executable, "-m", "terminal.cli", "qr", "issue", "--persona", PERSONA]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env()
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader goes away before sscard writes (it is still importing)
    err = child.stderr.read()
    child.wait(timeout=30)
    child.stderr.close()
    golden.observed(command, child.returncode, None, err)
    assert err == "sscard: standard output closed early (broken pipe)\n"
    assert child.returncode == 2


BUGGY = (
    "import sys, terminal.cli as cli, terminal.cli.virtual as virtual\n"
    "def cmd_demo(args):\n"
    "    raise ZeroDivisionError('division by zero (a planted bug)')\n"
    "virtual.cmd_demo = cmd_demo\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def test_a_bug_is_one_line_for_the_user_and_a_traceback_in_the_log(tmp_path: Path) -> None:
    log_file = tmp_path / "sscard.log"
    done = subprocess.run(
        [sys.executable, "-c", BUGGY, "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(SSCARD_LOG_FILE=str(log_file), SSCARD_LOG_LEVEL="INFO"),
        check=False,
    )
    golden.completed(done)
    assert done.returncode == 2
    assert done.stderr == (
        "sscard: internal error: ZeroDivisionError: division by zero (a planted bug) "
        f"(traceback in {log_file})\n"
    )
    logged = log_file.read_text()
    assert "ERROR sscard event=internal_error type=ZeroDivisionError" in logged
    assert "Traceback (most recent call last)" in logged and "a planted bug" in logged


def test_a_bug_without_a_log_file_shows_its_traceback_with_vv_only() -> None:
    env = {k: v for k, v in _child_env().items() if k != "SSCARD_LOG_FILE"}
    quiet, loud = (
        subprocess.run(
            [sys.executable, "-c", BUGGY, *verbose, "demo"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        for verbose in ((), ("-vv",))
    )
    golden.completed(quiet)
    # the traceback names files and lines of the code: only its last line is a golden output
    last = loud.stderr.splitlines()[-1:]
    golden.record("child -c", loud.args[3:], loud.returncode, loud.stdout, "\n".join(last))
    assert quiet.returncode == loud.returncode == 2
    assert quiet.stderr == (
        "sscard: internal error: ZeroDivisionError: division by zero (a planted bug) "
        "(run with -vv for the traceback)\n"
    )
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.splitlines()[-1] == quiet.stderr.strip()


def test_a_log_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "sscard.log"
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "qr", "issue", "--persona", PERSONA],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(SSCARD_LOG_FILE=str(missing)),
        check=False,
    )
    golden.completed(done)
    assert done.returncode == 2
    assert done.stderr == (
        f"sscard: cannot open the log file $SSCARD_LOG_FILE={missing}: No such file or directory\n"
    )
