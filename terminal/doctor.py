"""``sscard doctor``: check a terminal's machine, devices, platform and store, and say what to do.

Each check gives one :class:`Check`: ``ok``, ``warn`` (the terminal works, degraded or at risk)
or ``fail`` (it cannot work as configured), a one-line finding and, for a problem, what to do.
The checks reuse what the terminal itself uses: pcscd's pid file
(:func:`drivers.virtual.pcscd.running_pid`), the PC/SC readers (:class:`drivers.pcsc.PcscReader`),
the sync's signed transport (its pin or CA file) and its clock reading, the lists' ages and the
start-up warnings (:mod:`terminal.list_policy`), the journal's hash chain, SQLite's
``integrity_check``, the production key check (:mod:`terminal.configuration`).
When the daemon owns the store, the journal is verified by the daemon (admin socket).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests

from apdu.errors import SscardError
from config.settings import Settings
from drivers.indicators.voice import DEFAULT_ESPEAK
from drivers.pcsc import PcscReader
from drivers.virtual.pcscd import running_pid
from offline_store import ListName, Store, StoreLocked, list_ages
from sync.answers import server_time
from sync.config import SyncConfig
from sync.errors import SyncError, SyncRefused, SyncTlsError, SyncUnreachable
from terminal.compose import voice_enabled
from terminal.configuration import production_problems
from terminal.daemon.admin import DaemonUnavailable, ask
from terminal.list_policy import startup_warnings
from terminal.profiles import Profile

PLATFORM_TIMEOUT_S = 5.0  # the doctor asks once; a platform slower than this is a finding
DISK_FAIL_BYTES = 100 * 1024 * 1024  # the journal's fsyncs fail soon below this
DISK_WARN_BYTES = 1024 * 1024 * 1024
PATH_TIME = "/v1/time"
ADMIN_TIMEOUT_S = 30.0


class Level(StrEnum):
    """How a check came out."""

    OK = "ok"  # nothing to do
    WARN = "warn"  # the terminal works, degraded or at risk (exit status 1)
    FAIL = "fail"  # the terminal cannot work as configured (exit status 2)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding.

    :param name: what was checked (``pcscd``, ``platform``, …)
    :param level: ok, warn or fail
    :param detail: what was found, one line
    :param advice: what to do about it (empty when ok)
    """

    name: str
    level: Level
    detail: str
    advice: str = ""

    def to_json(self) -> dict[str, Any]:
        """The finding as a JSON object.

        :raises: nothing
        """
        return {**asdict(self), "level": str(self.level)}


def exit_status(checks: Iterable[Check]) -> int:
    """0 all ok, 1 with warnings, 2 with failures.

    :param checks: the findings
    :raises: nothing
    """
    levels = {c.level for c in checks}
    return 2 if Level.FAIL in levels else 1 if Level.WARN in levels else 0


def run_checks(settings: Settings, profiles: Iterable[Profile]) -> list[Check]:
    """Run every check.

    :param settings: the terminal settings
    :param profiles: the scenarios whose start-up warnings to report
    :raises: nothing (a check that cannot run is a failed check)
    """
    checks = [check_production(settings), check_key_files(settings)]
    checks.extend(check_pcsc())
    checks.append(check_security_module(settings))
    checks.append(check_serial(settings))
    checks.append(check_audio(settings))
    checks.extend(check_platform(settings))
    checks.extend(check_store(settings, list(profiles)))
    checks.append(check_disk(settings))
    return checks


def check_production(settings: Settings) -> Check:
    """A production terminal has the platform's keys in place and no TEST KEYS.

    :param settings: the terminal settings
    :raises: nothing
    """
    if not settings.production:
        return Check("mode", Level.OK, "development terminal (TEST KEYS allowed)")
    problems = production_problems(settings)
    if problems:
        return Check(
            "mode",
            Level.FAIL,
            "production terminal not ready: " + "; ".join(problems),
            "put the platform's keys in place, then `sscard sync --once`",
        )
    return Check("mode", Level.OK, "production terminal, keys in place")


def check_key_files(settings: Settings) -> Check:
    """The secret files the settings name exist and are 0600.

    :param settings: the terminal settings
    :raises: nothing
    """
    problems = []
    secrets = (
        settings.pepper_file,
        settings.journal_key_file,
        settings.sync_key_file,
        settings.ecard.audience_keys,
    )
    for path in secrets:
        if path is None:
            continue
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(f"{path} has mode {stat.S_IMODE(mode):04o}")
    if settings.pepper_file is None:
        return Check(
            "keys",
            Level.FAIL,
            "[store] pepper_file is not set: `sscard tap` cannot start",
            "write a configuration with `sscard init`, or set [store] pepper_file",
        )
    if problems:
        return Check(
            "keys",
            Level.FAIL,
            "; ".join(problems),
            "chmod 600 the key files; a missing one comes from `sscard sync --once`",
        )
    return Check("keys", Level.OK, "key files present, mode 0600")


def check_pcsc() -> list[Check]:
    """pcscd runs and lists readers.

    :raises: nothing
    """
    pid = running_pid()
    if pid is None:
        return [
            Check(
                "pcscd",
                Level.FAIL,
                "pcscd is not running",
                "start it: `systemctl start pcscd` (Debian package pcscd)",
            ),
        ]
    checks = [Check("pcscd", Level.OK, f"running (pid {pid})")]
    readers = PcscReader()
    try:
        names = readers.list_readers()
    except SscardError as exc:
        checks.append(Check("readers", Level.FAIL, str(exc), "restart pcscd; check `pcsc_scan`"))
        return checks
    finally:
        readers.close()
    if not names:
        checks.append(
            Check(
                "readers",
                Level.WARN,
                "no card reader connected",
                "plug the reader in; check its permissions (packaging/udev) and `pcsc_scan`",
            )
        )
    else:
        checks.append(Check("readers", Level.OK, f"{len(names)}: {', '.join(names)}"))
    return checks


def check_security_module(settings: Settings) -> Check:
    """Which security module authenticates cards (PSAM, HSM, software SAM).

    :param settings: the terminal settings
    :raises: nothing
    """
    if settings.hsm_url:
        return _hsm_health(settings.hsm_url, settings.hsm_timeout_s)
    if settings.soft_sam_keys is not None:
        level = Level.FAIL if settings.production else Level.WARN
        return Check(
            "security module",
            level,
            f"software SAM ({settings.soft_sam_keys}): development only",
            "put a PSAM in a second reader slot (--sam-reader) or set [security] hsm_url",
        )
    return Check(
        "security module",
        Level.WARN,
        "no HSM or software SAM configured: without a PSAM (--sam-reader) cards are not "
        "checked for genuineness and 3.0 cards' EF06 stays closed",
        "put the PSAM in a second reader slot and pass --sam-reader, or set [security] hsm_url",
    )


def _hsm_health(url: str, timeout_s: float) -> Check:
    health = url.rstrip("/") + "/v1/health"
    try:
        answer = requests.get(health, timeout=min(timeout_s, PLATFORM_TIMEOUT_S))
    except requests.RequestException as exc:
        return Check(
            "security module",
            Level.FAIL,
            f"HSM service {url} unreachable: {type(exc).__name__}",
            "start the HSM service or correct [security] hsm_url",
        )
    if answer.status_code != 200:
        return Check(
            "security module",
            Level.FAIL,
            f"HSM service {url} answered {answer.status_code} to /v1/health",
            "check the HSM service's log",
        )
    return Check("security module", Level.OK, f"HSM service {url} healthy")


def check_serial(settings: Settings) -> Check:
    """The serial board of ``[indicators] serial_port`` is there and usable.

    :param settings: the terminal settings
    :raises: nothing
    """
    port = settings.serial_port
    if port is None:
        return Check("serial ports", Level.OK, "none configured")
    if not os.path.exists(port):
        found = f"{port} does not exist"
        advice = "plug the relay/buzzer/gate board in, or correct [indicators] serial_port"
    elif not os.access(port, os.R_OK | os.W_OK):
        found = f"{port}: no permission to read and write"
        advice = "add the terminal's user to the group owning the port (dialout)"
    else:
        return Check("serial ports", Level.OK, f"{port} present and writable")
    return Check("serial ports", Level.FAIL, found, advice)


def check_audio(settings: Settings) -> Check:
    """Voice prompts: on where the settings or the machine say so, and espeak-ng is there.

    :param settings: the terminal settings
    :raises: nothing
    """
    if settings.voice is False:
        return Check(
            "audio",
            Level.WARN,
            "voice prompts are off ([indicators] voice = false)",
            "service points must be accessible (Guangdong draft §15): turn voice on if a "
            "speaker is fitted",
        )
    if not voice_enabled(settings.voice):
        return Check(
            "audio", Level.WARN, "no sound output found: no voice prompts", "fit a speaker"
        )
    if shutil.which(DEFAULT_ESPEAK) is None:
        level = Level.FAIL if settings.voice else Level.WARN
        return Check("audio", level, "espeak-ng is not installed", "apt-get install espeak-ng")
    return Check("audio", Level.OK, "sound output and espeak-ng present")


def check_platform(settings: Settings, *, clock: Callable[[], float] | None = None) -> list[Check]:
    """The platform answers a signed request (key, TLS pin or CA), and the clock agrees with it.

    :param settings: the terminal settings
    :param clock: the local wall clock (tests)
    :raises: nothing
    """
    if not settings.sync_url:
        return [
            Check(
                "platform",
                Level.WARN,
                "no [sync] url: decisions are never uploaded, lists never updated",
                "set [sync] url, key_file and key_id (`sscard platform terminal add` prints them)",
            )
        ]
    try:
        config = SyncConfig.from_settings(settings)
        transport = config.transport(clock=clock or time.time)
    except SscardError as exc:
        return [Check("platform", Level.FAIL, str(exc), "correct the [sync] settings")]
    try:
        exchange, now = transport.request(
            "GET", PATH_TIME, check=server_time, attempts=1, timeout_s=PLATFORM_TIMEOUT_S
        )
    except SyncTlsError as exc:
        return [
            Check(
                "platform",
                Level.FAIL,
                f"TLS: {exc}",
                "check [sync] pinned_cert_sha256 or ca_file against the platform's certificate",
            )
        ]
    except SyncUnreachable as exc:
        return [
            Check(
                "platform",
                Level.FAIL,
                f"unreachable: {exc}",
                f"start the platform or correct [sync] url ({config.url}); check the network",
            )
        ]
    except SyncRefused as exc:
        return [
            Check(
                "platform",
                Level.FAIL,
                f"refused this terminal: {exc}",
                "check [terminal] id, [sync] key_id and the key file against the registration",
            )
        ]
    except SyncError as exc:
        return [Check("platform", Level.FAIL, str(exc), "check the platform's log")]
    finally:
        transport.close()
    assert now is not None
    tls = (
        "TLS pinned"
        if settings.pinned_cert_sha256
        else "TLS"
        if config.url.startswith("https:")
        else "plain HTTP"
    )
    checks = [
        Check(
            "platform",
            Level.OK,
            f"{config.url} answers ({tls}, {exchange.rtt_s * 1000:.0f} ms)",
        )
    ]
    offset = now - exchange.midpoint
    limit = settings.max_clock_offset_s
    if abs(offset) > limit:
        checks.append(
            Check(
                "clock",
                Level.FAIL,
                f"off by {offset:+.1f} s from the platform (limit {limit:g} s)",
                "synchronise the clock: `timedatectl set-ntp true`",
            )
        )
    elif abs(offset) > limit / 2:
        checks.append(
            Check(
                "clock",
                Level.WARN,
                f"off by {offset:+.1f} s from the platform (limit {limit:g} s)",
                "synchronise the clock: `timedatectl set-ntp true`",
            )
        )
    else:
        checks.append(Check("clock", Level.OK, f"{offset:+.1f} s from the platform"))
    return checks


def check_store(settings: Settings, profiles: list[Profile]) -> list[Check]:
    """The store file is sound (SQLite ``integrity_check``), its journal chain verifies, its
    lists are there and fresh enough.

    :param settings: the terminal settings
    :param profiles: the scenarios whose start-up warnings to report
    :raises: nothing
    """
    path = settings.database
    if not path.exists():
        return [
            Check(
                "store",
                Level.FAIL,
                f"no offline store at {path}",
                "write a configuration with `sscard init`, or correct [store] database",
            )
        ]
    problem = _integrity(path)
    if problem:
        return [
            Check(
                "store",
                Level.FAIL,
                f"{path}: {problem}",
                "stop the terminal, keep a copy of the file, restore the store from a backup",
            )
        ]
    try:
        store = Store.open(path)
    except StoreLocked as locked:
        return [_verified_by_daemon(settings, locked)]
    except SscardError as exc:
        return [Check("store", Level.FAIL, str(exc), "check the store file and its folder")]
    with store:
        report = store.journal.verify_chain()
        checks = [
            Check("store", Level.OK, f"{path}: integrity ok, journal chain {report.rows} rows")
            if report.ok
            else Check(
                "store",
                Level.FAIL,
                f"journal chain broken at seq {report.first_bad_seq}: {report.problem}",
                "stop the terminal and report it: the journal was altered or damaged",
            )
        ]
        checks.append(_list_ages(store))
        now = dt.datetime.now().astimezone()
        online = bool(settings.sync_url and settings.sync_key_file and settings.sync_key_id)
        for profile in profiles:
            for line in startup_warnings(
                store, profile, now, region=settings.sync_region, online=online
            ):
                checks.append(Check(f"lists ({profile.name})", Level.WARN, line, ""))
    return checks


def _integrity(path: Path) -> str | None:
    """SQLite's own check, on a read-only connection (it works while the daemon owns the
    store: the owner lock is a separate file)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return f"cannot be read by SQLite: {exc}"
    try:
        found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return f"cannot be read by SQLite: {exc}"
    finally:
        conn.close()
    return None if found == ["ok"] else "integrity_check: " + "; ".join(found[:3])


def _verified_by_daemon(settings: Settings, locked: StoreLocked) -> Check:
    try:
        answer = ask(settings.admin_socket_path, "journal-verify", {}, timeout_s=ADMIN_TIMEOUT_S)
    except DaemonUnavailable:
        return Check(
            "store",
            Level.WARN,
            f"{locked}; integrity ok; the journal was not verified",
            "run `sscard doctor` again when the other command has ended",
        )
    except SscardError as exc:
        return Check("store", Level.FAIL, f"{locked}; {exc}", "check the daemon's log")
    said = " ".join([*answer.out, *answer.err])
    if answer.exit_status != 0:
        return Check("store", Level.FAIL, f"the daemon says: {said}", "stop and report it")
    return Check("store", Level.OK, f"integrity ok; owned by the daemon, which says: {said}")


def _list_ages(store: Store) -> Check:
    now = dt.datetime.now().astimezone()
    ages = list_ages(store)
    shown = []
    missing = []
    for name in (ListName.DENY_LIST, ListName.TRUST_LIST, ListName.CATALOGUE):
        seconds = ages[name].age_s(now)
        if seconds is None:
            missing.append(str(name))
            shown.append(f"{name} missing")
        else:
            shown.append(f"{name} {seconds / 3600:.1f} h")
    if missing:
        return Check(
            "lists",
            Level.WARN,
            ", ".join(shown),
            "provision them: `sscard sync --once` (decisions are flagged stale_list meanwhile)",
        )
    return Check("lists", Level.OK, ", ".join(shown))


def check_disk(settings: Settings) -> Check:
    """Free space where the store lives.

    :param settings: the terminal settings
    :raises: nothing
    """
    folder = settings.database.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return Check("disk", Level.FAIL, f"{folder}: {exc.strerror}", "check the file system")
    shown = f"{free / 1024**3:.1f} GiB free in {folder}"
    if free < DISK_FAIL_BYTES:
        return Check("disk", Level.FAIL, shown, "free space now: the journal cannot be written")
    if free < DISK_WARN_BYTES:
        return Check("disk", Level.WARN, shown, "free some space; check the upload backlog")
    return Check("disk", Level.OK, shown)


def report_lines(checks: Iterable[Check]) -> list[str]:
    """One line per check, and under each problem what to do.

    :param checks: the findings
    :raises: nothing
    """
    lines = []
    for check in checks:
        lines.append(f"{check.level:<5} {check.name}: {check.detail}")
        if check.advice and check.level is not Level.OK:
            lines.append(f"      → {check.advice}")
    return lines
