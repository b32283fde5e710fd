"""Golden outputs: what every ``sscard`` command the suite runs printed, kept in files (issue 12).

Before the code is moved around, the output of every command line the tests run is recorded;
after the move it must be the same, byte for byte once normalised. Every way the tests run the
CLI goes through here:

* child processes ``python -m terminal.cli …`` (``support.run_sscard``, ``platform_support.cli``,
  ``sync_support.run`` and the tests' own ``subprocess.run``): :func:`completed`;
* long-running children (``platform serve``, ``sync --interval``, ``scan``, ``read`` across a
  pcscd restart) that a test reads from and stops: :func:`record` with what the test saw;
* the forking runner ``tests/cli_runner.py``: :func:`cli_runner.run_many` records each result;
* handlers and ``main`` called in the test process: :func:`in_process` (stdout and stderr are
  copied while the call runs; the test's ``capsys`` still sees everything).

Modes, from ``$SSCARD_GOLDEN``:

``check`` (the default, and what ``make test`` uses)
    each call is compared with the recorded one at the same place (test id, call index); a
    difference fails the test at once with a readable diff, and a test that made fewer calls
    than were recorded fails at its teardown.
``record`` (``make golden``)
    the calls of the tests that ran replace what was recorded for them; the files are written
    when the session ends.
``off``
    nothing is recorded or checked.

``$SSCARD_GOLDEN_DIR`` records into (or checks against) another folder than ``tests/golden``
(to compare two recordings and find what varies between runs).

Files: ``tests/golden/<folder>.<module>.json`` per test module (``e2e.test_read_e2e.json``),
a JSON object from key to the list of calls in the order they were made. The key is the test's
node id; calls made while a fixture of a wider scope is set up go under
``<node id of the module> fixture <name>`` (the same whichever test set it up first). A call
is ``{"via", "argv", "stdin"?, "status", "stdout", "stderr"}``; ``via`` says how the command ran
(``child``, ``child -c``: a Python snippet calling the CLI, ``fork``: the forking runner,
``in-process``); ``status`` is the exit status (``raised <Type>`` when an exception left an
in-process call; ``null`` for a child killed by the test); ``null`` output was not captured.

Normalised — only what differs from one run to the next (found by recording twice and comparing),
each replaced by a placeholder:

1. the checkout's path (``<repo>``) and the Python running the tests (``<python>``): they
   differ between worktrees and machines;
2. pytest's temporary folder (``<tmp>``), the system's (``<tmpdir>``), the random part of a
   ``tempfile`` name (``<rand>``) and the number pytest gives a test's own folder
   (``<tmp>/test_name<n>``: it counts tests whose names share their first 30 letters);
3. wall-clock time: timestamps (``<time>``), seconds since 1970 within a day of now
   (``<epoch>``: a journal row's ``wall_time``), the clock offset a sync measures
   (``offset <s> s``, ``clock_offset_s: <s>``), an upload's rate (``<n> rows/s``) and the age
   of a list whose date a test fixed (``age: <h> h``);
4. TCP ports (``127.0.0.1:<port>``, ``port=<port>``, the value of ``--port``): each run takes a
   free one;
5. process ids (``pid <pid>``, ``process [<pid>]``, a store ``in use by process <pid>``);
6. what is random by design: e-card codes (``SSC1:<code>``: a fresh timestamp and a randomised
   ECDSA/SM2 signature), national codes the reference platform issues (``CNSSC<code>``) and the
   card token it derives from one (``card token <token>``), journal row ids (``<uuid>``), the
   key id of a terminal the platform registers (``key_id = "k<id>"``), a platform key made
   at random (``<new SM2 key>``, also where it is listed later) and the fingerprint of a TLS
   certificate a test makes (a fresh key, valid from today).

Everything else is the same from run to run: the tests fix their peppers, keys and dates, or
what they print does not depend on them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
MODE_ENV = "SSCARD_GOLDEN"
DIR_ENV = "SSCARD_GOLDEN_DIR"
MODES = ("check", "record", "off")
T = TypeVar("T")


class GoldenMismatch(AssertionError):
    """A command printed something else than was recorded for it."""


# --- normalisation ------------------------------------------------------------------------------

_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d([.,]\d+)?)?(Z|[+-]\d\d:?\d\d)?(?!\d)")
_EPOCH = re.compile(r"(?<![\d.])(1\d{9})(\.\d+)?(?![\d])")
_PORT = re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):\d{2,5}\b")
_TEMPFILE = re.compile(r"(sscard-[\w-]*?|tmp)[a-z0-9_]{8}(?=[/\s'\":]|$)", re.M)
#: (pattern, replacement) applied after paths, times and ports (see the module docstring)
_VARYING = (
    (re.compile(r"SSC1:[0-9A-Z $%*+\-./:]+"), "SSC1:<code>"),
    (re.compile(r"\bCNSSC[A-Z2-7]{32}\b"), "CNSSC<code>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\bpid \d+\b"), "pid <pid>"),
    (re.compile(r"\bprocess \[\d+\]"), "process [<pid>]"),
    (re.compile(r"\bin use by process \d+\b"), "in use by process <pid>"),
    (re.compile(r"\bport=\d+\b"), "port=<port>"),
    (re.compile(r"\bkey_id = \"k[0-9a-f]{8}\""), 'key_id = "k<id>"'),
    (re.compile(r"\bcard token [0-9a-f]{64}\b"), "card token <token>"),
    (re.compile(r"(<tmp>/\w+?)\d+(?=[/\s'\":]|$)", re.M), r"\1<n>"),
    (re.compile(r"\boffset [+-]?\d+\.\d+ s\b"), "offset <s> s"),
    (re.compile(r"^(clock_offset_s: )[+-]?\d+\.\d+$", re.M), r"\1<s>"),
    (re.compile(r"\b\d+ rows/s\b"), "<n> rows/s"),
    (re.compile(r"\b\d+ ms\)"), "<n> ms)"),  # sscard doctor: the platform's round trip
    (re.compile(r"\b\d+\.\d GiB free\b"), "<n> GiB free"),  # sscard doctor: free disk
    (re.compile(r"(clock: )[+-]\d+\.\d s\b"), r"\1<s> s"),  # sscard doctor: clock offset
    (re.compile(r"\b(deny_list|trust_list|catalogue) \d+\.\d h\b"), r"\1 <h> h"),
    (re.compile(r"^(age: +)\d+\.\d h\b", re.M), r"\1<h> h"),
    (
        re.compile(r'(Fingerprints did not match\. Expected "[0-9a-f]{64}", got ")[0-9a-f]{64}'),
        r"\1<sha256 of a certificate made for the test>",
    ),
)
#: a key made at random, printed when it is made and named again later: the later mentions get
#: the same placeholder
_NEW_KEY = re.compile(r"\b(ES256|SM2): new key ([0-9a-f]{16})\b")


def _renormalise(value: Any) -> Any:
    """A recording with the placeholders of :data:`_VARYING` put in where they are missing.

    :param value: a loaded golden file, or part of it
    """
    if isinstance(value, str):
        for pattern, replacement in _VARYING:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, list):
        return [_renormalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _renormalise(v) for k, v in value.items()}
    return value


class Normaliser:
    """Replaces what varies between runs (see the module docstring) by placeholders.

    :param tmp: pytest's temporary folder of this session
    :param now: the wall clock to judge times and dates by
    """

    def __init__(self, tmp: Path | None, now: dt.datetime | None = None) -> None:
        self.tmp = tmp
        self.now = now or dt.datetime.now()
        self.learned: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        """The text with what varies replaced.

        :param text: a command's argument, input or output
        """
        text = self._paths(text)
        text = _TIME.sub("<time>", text)
        text = _EPOCH.sub(self._epoch, text)
        text = _PORT.sub(r"\1:<port>", text)
        for found in _NEW_KEY.finditer(text):
            self.learned.setdefault(found.group(2), f"<new {found.group(1)} key>")
        for value, placeholder in self.learned.items():
            text = text.replace(value, placeholder)
        for pattern, replacement in _VARYING:
            text = pattern.sub(replacement, text)
        return text

    def _paths(self, text: str) -> str:
        pairs = [(str(ROOT), "<repo>"), (sys.executable, "<python>")]
        if self.tmp is not None:
            pairs += [(str(self.tmp.resolve()), "<tmp>"), (str(self.tmp), "<tmp>")]
        pairs.append((tempfile.gettempdir().rstrip("/") + "/", "<tmpdir>/"))
        for path, placeholder in pairs:
            text = text.replace(path, placeholder)
        return _TEMPFILE.sub(lambda m: f"{m.group(1)}<rand>", text)

    def _epoch(self, found: re.Match[str]) -> str:
        if abs(int(found.group(1)) - self.now.timestamp()) > 86_400:
            return found.group(0)
        return "<epoch>"


# --- what a command did -------------------------------------------------------------------------


def sscard_argv(command: Sequence[str]) -> tuple[str, list[str]]:
    """How a child's command line runs ``sscard``, and its ``sscard`` arguments.

    :param command: ``[python, "-m", "terminal.cli", ARGS…]`` or ``[python, "-c", CODE, ARGS…]``
    :raises ValueError: the command line is not one of those
    """
    parts = [str(p) for p in command]
    if parts[1:3] == ["-m", "terminal.cli"]:
        return "child", parts[3:]
    if parts[1:2] == ["-c"]:
        return "child -c", parts[3:]
    raise ValueError(f"not an sscard command line: {parts[:4]}")


class Recorder:
    """The session's golden calls: recorded, or checked against the files.

    :param mode: ``check``, ``record`` or ``off``
    :param folder: where the files are
    """

    def __init__(self, mode: str, folder: Path) -> None:
        if mode not in MODES:
            raise ValueError(f"${MODE_ENV} must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.folder = folder
        self.normalise = Normaliser(None)
        self._lock = threading.RLock()
        self._scopes: list[tuple[str, str]] = []  # (file stem, key)
        self._loaded: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._made: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._problems: dict[tuple[str, str], list[str]] = {}
        self._collected: dict[str, set[str]] = {}

    # scopes: which test (or wider fixture) the calls belong to

    @staticmethod
    def file_of(nodeid: str) -> str:
        """The golden file stem of a node id (``e2e.test_read_e2e``; ``_session`` for none).

        :param nodeid: a pytest node id
        """
        module = nodeid.split("::", 1)[0]
        if not module.endswith(".py"):
            return "_session"
        path = Path(module).with_suffix("")
        parts = path.parts[1:] if path.parts[:1] == ("tests",) else path.parts
        return ".".join(parts)

    @contextlib.contextmanager
    def scope(self, nodeid: str, key: str | None = None) -> Iterator[None]:
        """Calls made inside belong to ``key`` (default: the node id) of the node's file.

        :param nodeid: the node (a test item, a module)
        :param key: the key, when it is not the node id
        """
        with self._lock:
            self._scopes.append((self.file_of(nodeid), key or nodeid))
            entry = self._scopes[-1]
            self._made.setdefault(entry, [])
        try:
            yield
        finally:
            with self._lock:
                self._scopes.remove(entry)

    def collected(self, nodeids: Sequence[str], *, whole: bool) -> None:
        """The test ids of the session: when it runs the whole suite, record mode drops the keys
        of tests that no longer exist (a partial run keeps what it did not run).

        :param nodeids: every collected test id
        :param whole: the session runs the whole suite (no paths, ``-k`` or ``-m`` given)
        """
        if not whole:
            return
        for nodeid in nodeids:
            self._collected.setdefault(self.file_of(nodeid), set()).add(nodeid)

    # recording and checking

    def record(
        self,
        via: str,
        argv: Sequence[str],
        status: int | str | None,
        stdout: str | None,
        stderr: str | None,
        *,
        stdin: str | None = None,
    ) -> None:
        """Record one call, or check it against the recorded one.

        :param via: how it ran (``child``, ``child -c``, ``fork``, ``in-process``)
        :param argv: its ``sscard`` arguments
        :param status: its exit status
        :param stdout: its standard output (``None``: not captured)
        :param stderr: its standard error (``None``: not captured)
        :param stdin: its standard input, if the test gave one
        :raises GoldenMismatch: in check mode, it differs from the recording
        """
        if self.mode == "off":
            return
        call: dict[str, Any] = {"via": via, "argv": self._argv(argv)}
        if stdin is not None:
            call["stdin"] = self.normalise(stdin)
        call["status"] = status
        call["stdout"] = None if stdout is None else self.normalise(stdout)
        call["stderr"] = None if stderr is None else self.normalise(stderr)
        with self._lock:
            if not self._scopes:
                raise RuntimeError("an sscard call outside any test: golden cannot key it")
            where = self._scopes[-1]
            made = self._made[where]
            index = len(made)
            made.append(call)
            if self.mode != "check":
                return
            recorded = self._recorded(where)
            expected = recorded[index] if index < len(recorded) else None
            if expected == call:
                return
            problem = self._explain(where, index, expected, call)
            self._problems.setdefault(where, []).append(problem)
        raise GoldenMismatch(problem)

    def _argv(self, argv: Sequence[str]) -> list[str]:
        """The arguments, normalised; the value of ``--port`` is a free port (0 stays)."""
        shown = [self.normalise(str(a)) for a in argv]
        for n, arg in enumerate(shown[1:], 1):
            if shown[n - 1] == "--port" and arg != "0":
                shown[n] = "<port>"
        return shown

    def problems(self, nodeid: str) -> list[str]:
        """What went wrong for a test: mismatches, and recorded calls it did not make.

        :param nodeid: the test id
        """
        where = (self.file_of(nodeid), nodeid)
        with self._lock:
            found = list(self._problems.get(where, []))
            if self.mode != "check" or found:
                return found
            made = len(self._made.get(where, []))
            recorded = self._recorded(where)
            if made < len(recorded):
                found.append(
                    f"golden: {nodeid} made {made} sscard calls, {len(recorded)} are recorded; "
                    f"the first not made:\n{_show(recorded[made])}\n(`make golden` re-records)"
                )
            return found

    def save(self) -> list[Path]:
        """Record mode: write the files of the tests that ran; returns the files written."""
        if self.mode != "record":
            return []
        written = []
        by_file: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for (stem, key), calls in self._made.items():
            by_file.setdefault(stem, {})[key] = calls
        for stem, keys in sorted(by_file.items()):
            data = dict(self._load(stem))
            data.update(keys)
            collected = self._collected.get(stem)
            for key in list(data):
                gone = collected is not None and "::" in key and " fixture " not in key
                if not data[key] or (gone and key not in collected):  # type: ignore[operator]
                    del data[key]  # no calls, or a test that no longer exists
            path = self.folder / f"{stem}.json"
            if not data:
                path.unlink(missing_ok=True)
                continue
            self.folder.mkdir(parents=True, exist_ok=True)
            ordered = {key: data[key] for key in sorted(data)}
            text = json.dumps(ordered, ensure_ascii=False, indent=1) + "\n"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written

    def _load(self, stem: str) -> dict[str, list[dict[str, Any]]]:
        if stem not in self._loaded:
            path = self.folder / f"{stem}.json"
            # what a newer normaliser replaces is replaced in older recordings too
            self._loaded[stem] = _renormalise(
                json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            )
        return self._loaded[stem]

    def _recorded(self, where: tuple[str, str]) -> list[dict[str, Any]]:
        return self._load(where[0]).get(where[1], [])

    @staticmethod
    def _explain(
        where: tuple[str, str], index: int, expected: dict[str, Any] | None, call: dict[str, Any]
    ) -> str:
        head = f"golden: {where[1]} call #{index} (tests/golden/{where[0]}.json)"
        if expected is None:
            return f"{head} is not recorded:\n{_show(call)}\n(`make golden` records it)"
        lines = [f"{head} differs from the recording (`make golden` re-records):"]
        for field in ("via", "argv", "stdin", "status", "stdout", "stderr"):
            old, new = expected.get(field), call.get(field)
            if old == new:
                continue
            if isinstance(old, str) and isinstance(new, str):
                diff = difflib.unified_diff(
                    old.splitlines(), new.splitlines(), "recorded", "now", lineterm="", n=2
                )
                lines.append(f"--- {field}:\n" + "\n".join(diff))
            else:
                lines.append(f"--- {field}: recorded {old!r}, now {new!r}")
        return "\n".join(lines)


def _show(call: dict[str, Any]) -> str:
    return json.dumps(call, ensure_ascii=False, indent=1)[:3000]


def _folder() -> Path:
    configured = os.environ.get(DIR_ENV)
    return Path(configured) if configured else ROOT / "tests" / "golden"


RECORDER = Recorder(os.environ.get(MODE_ENV, "check") or "check", _folder())


# --- the ways tests run sscard -----------------------------------------------------------------


def record(
    via: str,
    argv: Sequence[str],
    status: int | str | None,
    stdout: str | None,
    stderr: str | None,
    *,
    stdin: str | None = None,
) -> None:
    """Record (or check) one call: see :meth:`Recorder.record`."""
    RECORDER.record(via, argv, status, stdout, stderr, stdin=stdin)


def recorded(nodeid: str) -> list[dict[str, Any]]:
    """The calls recorded for a test (as the golden file holds them, normalised).

    :param nodeid: the test's id
    """
    return list(RECORDER._recorded((RECORDER.file_of(nodeid), nodeid)))


def completed(
    done: subprocess.CompletedProcess[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Record a child ``sscard`` that ran to its end (``subprocess.run`` with captured text).

    :param done: what ``subprocess.run`` returned
    :param stdin: the input it was given
    :returns: ``done``
    """
    via, argv = sscard_argv(done.args)
    RECORDER.record(via, argv, done.returncode, done.stdout, done.stderr, stdin=stdin)
    return done


def observed(
    command: Sequence[str], status: int | None, stdout: str | None, stderr: str | None = None
) -> None:
    """Record a long-running child as the test saw it (what it read, how it ended).

    :param command: the child's command line
    :param status: its exit status (``None``: the test killed it, the status says nothing)
    :param stdout: what the test read of its standard output (``None``: not captured)
    :param stderr: what the test read of its standard error (``None``: not captured)
    """
    via, argv = sscard_argv(command)
    RECORDER.record(via, argv, status, stdout, stderr)


class _Tee:
    """A text stream that writes through to another and keeps a copy."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.copy: list[str] = []

    def write(self, text: str) -> int:
        self.copy.append(text)
        written: int = self.stream.write(text)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def in_process(argv: Sequence[str], call: Callable[[], T]) -> T:
    """Run a handler (or ``main``) in this process and record what it printed and returned.

    :param argv: the ``sscard`` arguments the call stands for
    :param call: the call; its result is the exit status
    :returns: what ``call`` returned (a ``SystemExit`` or other exception is re-raised)
    """
    if RECORDER.mode == "off":
        return call()
    out, err = _Tee(sys.stdout), _Tee(sys.stderr)
    status: int | str | None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[type-var]
            result = call()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else str(exc.code)
        RECORDER.record("in-process", argv, status, "".join(out.copy), "".join(err.copy))
        raise
    except Exception as exc:
        status = f"raised {type(exc).__name__}"
        RECORDER.record("in-process", argv, status, "".join(out.copy), "".join(err.copy))
        raise
    status = result if isinstance(result, int) or result is None else str(result)
    RECORDER.record("in-process", argv, status, "".join(out.copy), "".join(err.copy))
    return result


def configure(tmp: Path) -> None:
    """Set the session's temporary folder (paths under it are normalised).

    :param tmp: pytest's base temporary folder
    """
    RECORDER.normalise = Normaliser(tmp, dt.datetime.fromtimestamp(time.time()))
