"""The daemon's admin socket (terminal/daemon/admin.py) with a real store file, served from a
thread of the test process: mode 0600, foreign users refused, every request answered as the
command line would print it, a stale socket replaced, a second daemon refused."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from store_support import TOKEN, Platform, entry, public_pem

from config.settings import parse_settings
from offline_store import JournalEntry, Store
from terminal import operator
from terminal.compose import scenario_profiles
from terminal.daemon.admin import REQUESTS, AdminServer, DaemonUnavailable, ask

pytestmark = pytest.mark.emulated

CATALOGUE = Path(__file__).resolve().parents[1] / "catalogue.toml"


class Served:
    """A store, its lock and an admin server, as the daemon holds them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = Store.open(folder / "store.db")
        self.lock = threading.Lock()
        self.syncs = 0
        self.path = folder / "admin.sock"
        daemon = {"admin_socket": str(self.path)}
        self.settings = parse_settings({"daemon": daemon}, base_dir=folder)
        self.server = AdminServer(
            settings=self.settings,
            store=self.store,
            store_lock=self.lock,
            status=self.status,
            sync_now=self.sync_now,
        )

    def status(self) -> dict[str, object]:
        return {
            "daemon": "running",
            "readers": {"Virtual PCD 00 00": "waiting"},
            "syncs": self.syncs,
        }

    def sync_now(self) -> dict[str, object]:
        self.syncs += 1
        return operator.Answer(("time       ok", "sync: ok")).to_json()

    def ask(self, request: str, **params: object) -> operator.Answer:
        return ask(self.path, request, params, timeout_s=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as served:
        yield served


@pytest.fixture
def served_open(tmp_path: Path) -> Iterator[Served]:
    """Served from a folder every user may pass through (pytest's own is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="sscard-admin-"))
    try:
        folder.chmod(0o711)
        with serving(folder) as served:
            yield served
    finally:
        shutil.rmtree(folder)


@contextmanager
def serving(folder: Path) -> Iterator[Served]:
    served = Served(folder)
    served.server.start()
    try:
        yield served
    finally:
        served.server.close()
        served.store.close()


def test_the_socket_is_0600_and_removed_at_close(tmp_path: Path) -> None:
    served = Served(tmp_path)
    with served.server:
        mode = served.path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert not served.path.exists()
    served.server.close()  # idempotent
    served.store.close()
    with pytest.raises(DaemonUnavailable):
        ask(served.path, "status", {}, timeout_s=1)


def test_every_request_answers_what_the_command_prints(served: Served, tmp_path: Path) -> None:
    for n in range(3):
        served.store.journal.append(JournalEntry("gate", "0501", TOKEN, "accept", f"ok{n}", None))
    platform = Platform.generate()
    deny = platform.snapshot(tmp_path, 1, [entry(1), entry(2)])
    key = tmp_path / "deny.pem"
    key.write_bytes(public_pem(platform.key))
    now_profiles = scenario_profiles(["gate"])

    tail = served.ask("journal-tail", n=2)
    assert [json.loads(line)["reason"] for line in tail.out] == ["ok1", "ok2"]
    assert served.ask("journal-verify") == operator.Answer(("journal chain verified: 3 rows",))
    imported = served.ask("deny-import", file=str(deny), public_key=str(key), unsigned_ok=False)
    assert imported.exit_status == 0
    assert imported.out == (
        "deny list version 1 (snapshot) imported: 2 entries in the file, 2 cards listed",
    )
    again = served.ask("deny-import", file=str(deny), public_key=str(key), unsigned_ok=False)
    assert again.out == ("deny list version 1 was already imported: nothing changed",)
    assert served.ask("catalogue-load", file=str(CATALOGUE)).out[0].startswith("catalogue loaded:")
    # the same formatting as the direct path, on the same store, at the same moment
    for request, direct in (
        ("deny-status", operator.deny_status),
        ("catalogue-list", operator.catalogue_list),
    ):
        answer = served.ask(request, scenarios=["gate"])
        with served.lock:
            expected = direct(served.store, now_profiles, dt.datetime.now().astimezone())
        assert answer == expected
    status = served.ask("status")
    assert status.out == (
        "daemon: running",
        "readers.Virtual PCD 00 00: waiting",
        "syncs: 0",
    )
    assert json.loads(served.ask("status", json=True).out[0])["daemon"] == "running"
    assert served.ask("sync-once").out == ("time       ok", "sync: ok")
    assert served.syncs == 1
    assert set(REQUESTS) == {
        "status",
        "sync-once",
        "deny-import",
        "deny-status",
        "journal-tail",
        "journal-verify",
        "catalogue-load",
        "catalogue-list",
    }


def test_an_unsigned_import_is_refused_and_said_when_allowed(
    served: Served, tmp_path: Path
) -> None:
    platform = Platform.generate()
    deny = platform.snapshot(tmp_path, 1, [entry(1)])
    refused = served.ask("deny-import", file=str(deny), public_key=None, unsigned_ok=False)
    assert refused.exit_status == 2 and "refusing an unsigned import" in refused.err[0]
    taken = served.ask("deny-import", file=str(deny), public_key=None, unsigned_ok=True)
    assert taken.exit_status == 0
    assert taken.err == (
        "sscard: warning: importing without checking a signature (--unsigned-ok, development only)",
    )


def test_failures_are_one_line_answers_with_status_2(served: Served, tmp_path: Path) -> None:
    missing = served.ask("catalogue-load", file=str(tmp_path / "nope.toml"))
    assert missing.exit_status == 2 and missing.out == ()
    assert len(missing.err) == 1 and "nope.toml" in missing.err[0]
    unknown = served.ask("reboot")
    assert unknown.exit_status == 2 and "unknown request 'reboot'" in unknown.err[0]
    malformed = served.ask("journal-tail", n="many")
    assert malformed.exit_status == 2 and "n must be an integer" in malformed.err[0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(str(served.path))
        raw.sendall(b"not json\n")
        raw.shutdown(socket.SHUT_WR)
        answer = json.loads(raw.recv(65536))
    assert answer["exit_status"] == 2 and "unreadable request" in answer["err"][0]
    # the server still answers after all that
    assert served.ask("journal-verify").exit_status == 0


def test_a_peer_of_another_user_is_refused(served_open: Served) -> None:
    served = served_open
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another user")
    # the mode keeps another user out; opened up, SO_PEERCRED still refuses them
    os.chmod(served.path, 0o666)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become nobody, ask, report what came back
        os.close(read)
        code = 0
        try:
            os.setuid(65534)
            answer = ask(served.path, "journal-verify", {}, timeout_s=5)
            os.write(write, json.dumps(answer.to_json()).encode())
        except BaseException as exc:
            os.write(write, repr(exc).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, said
    answer = json.loads(said)
    assert (
        answer["exit_status"] == 2 and "uid 65534 may not use the admin socket" in answer["err"][0]
    )
    assert answer["out"] == []


def test_the_mode_alone_keeps_another_user_out(served_open: Served) -> None:
    served = served_open
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another user")
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(65534)
            ask(served.path, "status", {}, timeout_s=5)
        except PermissionError:
            os._exit(0)
        except BaseException as exc:
            os._exit(3 if "Permission denied" in str(exc) else 1)
        os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 3)


def test_a_stale_socket_is_replaced_and_a_live_daemon_is_not(tmp_path: Path) -> None:
    stale = tmp_path / "admin.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(stale))  # bound, never listening: what a killed daemon leaves
    first = Served(tmp_path)
    with first.server:
        assert first.ask("journal-verify").exit_status == 0
        second = AdminServer(
            settings=first.settings,
            store=first.store,
            store_lock=first.lock,
            status=first.status,
            sync_now=first.sync_now,
        )
        with pytest.raises(Exception, match="another daemon answers"):
            second.start()
        assert first.ask("journal-verify").exit_status == 0
    first.store.close()


def test_a_path_longer_than_a_socket_address_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    served = Served(deep)
    assert len(os.fsencode(served.path)) > 108
    with served.server:
        assert served.ask("journal-verify").exit_status == 0
    served.store.close()


def test_store_use_waits_for_the_daemons_lock(served: Served) -> None:
    answered = threading.Event()

    def asking() -> None:
        served.ask("journal-verify")
        answered.set()

    with served.lock:  # the decision worker is journaling
        thread = threading.Thread(target=asking)
        thread.start()
        assert not answered.wait(0.3)
    assert answered.wait(5)
    thread.join()


def test_a_bug_in_the_daemons_status_is_one_line_not_a_dropped_connection(
    tmp_path: Path,
) -> None:
    served = Served(tmp_path)

    def broken() -> dict[str, object]:
        raise RuntimeError("status thread gone")

    served.server.status = broken
    with served.server:
        answer = served.ask("status")
        assert answer.exit_status == 2
        assert answer.err == ("sscard: internal error in the daemon: RuntimeError (see its log)",)
        assert served.ask("journal-verify").exit_status == 0
    served.store.close()
