"""The operator's commands on an open offline store, each answered as text: what ``sscard deny
import|status``, ``sscard journal tail|verify``, ``sscard catalogue load|list``, ``sscard sync
--once`` and ``sscard status`` print.

Both ways of running them go through here, so they print the same, byte for byte: the command
line on a store it opened itself (:mod:`terminal.cli`), and the daemon that owns the store
answering the same request on its admin socket (:mod:`terminal.daemon.admin`). Each function
takes the open store and returns an :class:`Answer` (stdout lines, stderr lines, exit status);
the command line prints it, the daemon sends it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu.errors import SscardError
from offline_store import ListName, accept_unsigned, list_ages, load_verifier
from terminal.list_policy import status_lines

if TYPE_CHECKING:
    from offline_store import Store, Verifier
    from sync.reports import SyncReport
    from terminal.profiles import Profile

EXIT_OK = 0
EXIT_WARNINGS = 1
EXIT_FAILURE = 2
#: ``sync --once``: what each exit status says on its last line
SYNC_VERDICTS = {0: "ok", 1: "refused or alarm", 2: "failed"}

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a command prints and how it ends.

    :param out: the lines of standard output
    :param err: the lines of standard error (warnings, ``sscard: …`` reasons)
    :param exit_status: the command's exit status
    """

    out: tuple[str, ...] = ()
    err: tuple[str, ...] = ()
    exit_status: int = EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """The answer as a JSON object (the admin socket's reply).

        :raises: nothing
        """
        return {"out": list(self.out), "err": list(self.err), "exit_status": self.exit_status}

    @classmethod
    def from_json(cls, document: object) -> Answer:
        """The answer of a JSON object made by :meth:`to_json`.

        :param document: the parsed reply
        :raises SscardError: any other shape
        """
        if not isinstance(document, dict):
            raise SscardError("the daemon's answer is not a JSON object")
        out, err, status = document.get("out"), document.get("err"), document.get("exit_status")
        if (
            not isinstance(out, list)
            or not isinstance(err, list)
            or not all(isinstance(line, str) for line in [*out, *err])
            or not isinstance(status, int)
            or isinstance(status, bool)
        ):
            raise SscardError("the daemon's answer lacks out, err or exit_status")
        return cls(tuple(out), tuple(err), status)

    def emit(self) -> int:
        """Print the answer (stdout first, as the direct commands print) and return its status.

        :raises OSError: stdout or stderr closed
        """
        for line in self.out:
            print(line)
        sys.stdout.flush()
        for line in self.err:
            print(line, file=sys.stderr)
        return self.exit_status


@dataclass(slots=True)
class Warnings:
    """Warnings collected while a command runs (``--unsigned-ok`` said when a file is really
    taken unchecked), for the answer's stderr."""

    lines: list[str] = field(default_factory=list)

    def unsigned_verifier(self) -> Verifier:
        """A verifier that takes any file and says so, once per file it takes.

        :raises: nothing
        """

        def verify(data: bytes, signature: bytes | None) -> None:
            self.lines.append(
                "sscard: warning: importing without checking a signature "
                "(--unsigned-ok, development only)"
            )
            accept_unsigned(data, signature)

        return verify


def verifier_for(public_key: str | None, unsigned_ok: bool, warnings: Warnings) -> Verifier | None:
    """The deny-list verifier of ``--public-key`` or ``--unsigned-ok``, ``None`` for neither.

    :param public_key: the platform's Ed25519 public key file
    :param unsigned_ok: take files without a signature (development only)
    :param warnings: where the unsigned import's warning goes
    :raises SscardError: an unreadable or malformed key
    """
    if public_key:
        return load_verifier(public_key)
    if unsigned_ok:
        return warnings.unsigned_verifier()
    return None


def deny_import(
    store: Store,
    file: str | Path,
    *,
    public_key: str | None,
    unsigned_ok: bool,
    progress: Progress | None = None,
    production: bool = False,
) -> Answer:
    """``sscard deny import FILE``: verify, apply in one transaction, switch versions.

    :param store: the open store
    :param file: the sscard-deny/1 file (``FILE.sig`` next to it)
    :param public_key: the platform's public key file, or ``None``
    :param unsigned_ok: import without a signature (development only)
    :param progress: called with (entries done, entries in all)
    :param production: a production terminal, which refuses ``unsigned_ok``
    :raises StoreError: a file that fails its signature, its checks or its base version
    """
    if production and unsigned_ok and public_key is None:
        return _refuse(
            "a production terminal refuses an unsigned deny list (--unsigned-ok is for "
            "development): give --public-key PEM or set deny_public_key in the settings"
        )
    warnings = Warnings()
    verify = verifier_for(public_key, unsigned_ok, warnings)
    if verify is None:
        return _refuse(
            "refusing an unsigned import: give --public-key PEM (or --unsigned-ok for development)"
        )
    result = store.deny.import_file(file, verify, progress=progress)
    err = tuple(warnings.lines)
    if result.already_applied:
        line = f"deny list version {result.version} was already imported: nothing changed"
        return Answer((line,), err)
    base = f" on version {result.base_version}" if result.base_version is not None else ""
    line = (
        f"deny list version {result.version} ({result.kind}{base}) imported: "
        f"{result.file_entries} entries in the file, {result.listed} cards listed"
    )
    return Answer((line,), err)


def deny_status(store: Store, profiles: Iterable[Profile], now: dt.datetime) -> Answer:
    """``sscard deny status``: the active and previous versions, entries, dates, age, and the
    scenarios whose decisions are degraded.

    :param store: the open store
    :param profiles: the scenarios to report on
    :param now: the terminal's clock (aware)
    :raises StoreError: the database failed
    """
    status = store.deny.status()
    ages = status_lines(store, ListName.DENY_LIST, profiles, now)
    if status.version is None:
        return Answer(("no deny list imported", *ages))
    created = status.created.isoformat() if status.created else "-"
    imported = status.imported_at.isoformat() if status.imported_at else "-"
    previous = status.previous if status.previous is not None else "none"
    return Answer(
        (
            f"version:     {status.version}",
            f"previous:    {previous}",
            f"entries:     {status.entries}",
            f"created:     {created}",
            f"imported at: {imported}",
            *ages,
        )
    )


def catalogue_load(store: Store, file: str | Path) -> Answer:
    """``sscard catalogue load FILE``: replace the application catalogue (应用目录).

    :param store: the open store
    :param file: an sscard-catalogue/1 file
    :raises StoreError: a file that does not parse or check
    """
    count = store.catalogue.load_file(file)
    return Answer((f"catalogue loaded: {count} items",))


def catalogue_list(store: Store, profiles: Iterable[Profile], now: dt.datetime) -> Answer:
    """``sscard catalogue list``: the items, one per line, then the age (``#`` lines).

    :param store: the open store
    :param profiles: the scenarios to report on
    :param now: the terminal's clock (aware)
    :raises StoreError: the database failed
    """
    lines = []
    for item in store.catalogue.items():
        valid = f"{item.valid_from or '…'} – {item.valid_to or '…'}"
        lines.append(
            f"{item.code}\t{item.scenario}\t{','.join(item.regions)}\t{valid}\t{item.name}"
        )
    ages = status_lines(store, ListName.CATALOGUE, profiles, now)
    return Answer((*lines, *(f"# {line}" for line in ages)))


def journal_verify(store: Store) -> Answer:
    """``sscard journal verify``: check the hash chain; exit status 2 on a break.

    :param store: the open store
    :raises StoreError: the database failed
    """
    report = store.journal.verify_chain()
    alarm = store.journal.alarm()
    err = (f"sscard: warning: {alarm}",) if alarm else ()
    # a declared gap (docs/offline-store.md §5.8) is accepted, and always said
    gaps = tuple(
        f"declared gap: seqs {first}-{last} lost ({last - first + 1} rows), declared by row {seq}"
        for first, last, seq in report.gaps
    )
    if not report.ok:
        line = f"sscard: journal chain broken at seq {report.first_bad_seq}: {report.problem}"
        return Answer((*gaps, line), err, EXIT_FAILURE)
    return Answer((f"journal chain verified: {report.rows} rows", *gaps), err)


def journal_tail(store: Store, n: int) -> Answer:
    """``sscard journal tail -n N``: the last rows as JSON lines, personal fields by name only.

    :param store: the open store
    :param n: how many rows
    :raises StoreError: the database failed
    """
    last = store.journal.last()
    after = max(0, (last.seq if last else 0) - n)
    lines = []
    for row in store.journal.rows(after_seq=after):
        out: dict[str, Any] = {
            "seq": row.seq,
            "uuid": row.uuid,
            "wall_time": row.wall_time,
            "scenario": row.scenario,
            "outcome": row.outcome,
            "reason": row.reason_code,
            "amount": row.amount,
            "personal_fields": list(row.personal_fields),
            "flags": list(row.flags),
            "uploaded": row.uploaded,
        }
        lines.append(json.dumps(out, ensure_ascii=False))
    return Answer(tuple(lines))


def sync_answer(report: SyncReport) -> Answer:
    """``sscard sync --once``: one line per step, then the verdict.

    :param report: the sync's report
    :raises: nothing
    """
    status = report.exit_status
    return Answer((*report.lines(), f"sync: {SYNC_VERDICTS[status]}"), (), status)


def store_status(store: Store, now: dt.datetime) -> dict[str, Any]:
    """The store's view of the terminal for ``sscard status`` when no daemon runs: the upload
    backlog, the age of each list and the last sync.

    :param store: the open store
    :param now: the terminal's clock (aware)
    :raises StoreError: the database failed
    """
    backlog = store.journal.backlog()
    ages: dict[str, Any] = {}
    for name, age in list_ages(store).items():
        seconds = age.age_s(now)
        ages[str(name)] = {
            "version": age.version,
            "age_h": None if seconds is None else round(seconds / 3600, 1),
        }
    synced = _meta_time(store, "sync.synced_at")
    offset = store.meta.get("sync.clock_offset_s")
    return {
        "daemon": "not running",
        "journal": {
            "last_seq": backlog.last_seq,
            "acked_seq": backlog.acked_seq,
            "backlog_rows": backlog.pending,
        },
        "lists": ages,
        "last_sync": synced,
        "clock_offset_s": None if offset is None else round(float(offset), 3),
    }


def _meta_time(store: Store, key: str) -> str | None:
    value = store.meta.get(key)
    if value is None:
        return None
    stamp = dt.datetime.fromtimestamp(float(value), dt.UTC).astimezone()
    return stamp.isoformat(timespec="seconds")


def status_answer(status: Mapping[str, Any], *, as_json: bool = False) -> Answer:
    """``sscard status``: the status as ``key: value`` lines (nested keys dotted), or JSON.

    :param status: the daemon's :meth:`status` or :func:`store_status`
    :param as_json: one JSON document instead
    :raises: nothing
    """
    if as_json:
        return Answer((json.dumps(status, ensure_ascii=False, sort_keys=True, default=str),))
    return Answer(tuple(_flat_lines(status, "")))


def _flat_lines(value: Mapping[str, Any], prefix: str) -> Iterable[str]:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            yield from _flat_lines(item, f"{name}.")
        elif isinstance(item, Mapping):
            yield f"{name}: -"
        elif isinstance(item, list | tuple):
            shown = ", ".join(str(x) for x in item) or "-"
            yield f"{name}: {shown}"
        else:
            yield f"{name}: {'-' if item is None else item}"


def _refuse(message: str) -> Answer:
    return Answer((), (f"sscard: {message}",), EXIT_FAILURE)
