"""The daemon's threads and their watchdog, and the devices' health with the operator's alarm.

Every thread of the daemon is a :class:`Supervised` target: an exception that escapes it is
logged with the thread's name and traceback, and :meth:`Watchdog.check` (called by the main
thread several times a second) starts it again after a back-off that doubles up to
:data:`MAX_BACKOFF_S`, counting the restart. A thread that dies silently is the failure Keyple
and pyscard users met most (anchors-terminal.md §1.3, §2.3); here none can.

:class:`Health` keeps which device is up. A device that goes down raises one alarm line for
the operator (stderr, and the log) and another when it is back; nothing is repeated while the
state stays the same.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
STABLE_S = 30.0  # a thread that ran this long before dying starts again at the first back-off


@dataclass
class Supervised:
    """One thread the watchdog keeps running.

    :param name: the thread's name (``reader:…``, ``scanner:…``, ``worker``, ``sync``)
    :param target: what the thread runs; it returns when the daemon stops
    :param final_return: a normal return ends the thread for good (a scanner whose stream
        ended); otherwise a return while the daemon runs is a death like an exception
    """

    name: str
    target: Callable[[], None]
    final_return: bool = False
    thread: threading.Thread | None = None
    restarts: int = 0
    finished: bool = False
    backoff_s: float = FIRST_BACKOFF_S
    died_at: float | None = None
    started_at: float = 0.0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def alive(self) -> bool:
        """True while its thread runs."""
        return self.thread is not None and self.thread.is_alive()


class Watchdog:
    """Start supervised threads and restart the ones that died.

    :param stop: set when the daemon stops (then nothing is restarted)
    :param on_restart: called with the thread's name at each restart (the metrics)
    :param clock: monotonic seconds (tests pass their own)
    """

    def __init__(
        self,
        stop: threading.Event,
        on_restart: Callable[[str], None] = lambda name: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stop = stop
        self.on_restart = on_restart
        self.clock = clock
        self.threads: dict[str, Supervised] = {}

    def add(self, name: str, target: Callable[[], None], *, final_return: bool = False) -> None:
        """Start a supervised thread.

        :param name: its unique name
        :param target: what it runs
        :param final_return: see :class:`Supervised`
        """
        entry = Supervised(name, target, final_return)
        self.threads[name] = entry
        self._start(entry)

    def _start(self, entry: Supervised) -> None:
        entry.started_at = self.clock()
        entry.died_at = None
        entry.thread = threading.Thread(
            target=self._run, args=(entry,), name=entry.name, daemon=True
        )
        entry.thread.start()

    def _run(self, entry: Supervised) -> None:
        try:
            entry.target()
        except Exception as exc:  # the watchdog's whole point: log with context, restart
            entry.last_error = f"{type(exc).__name__}: {exc}"
            log.error("event=thread_died thread=%s error=%r", entry.name, entry.last_error,
                      exc_info=True)  # fmt: skip
        else:
            if entry.final_return or self.stop.is_set():
                entry.finished = True
                return
            entry.last_error = "returned while the daemon runs"
            log.error("event=thread_died thread=%s error=%r", entry.name, entry.last_error)
        entry.died_at = self.clock()

    def check(self) -> list[str]:
        """Restart every thread that died and whose back-off has passed.

        :returns: the names restarted now
        """
        restarted: list[str] = []
        if self.stop.is_set():
            return restarted
        now = self.clock()
        for entry in self.threads.values():
            if entry.finished or entry.alive() or entry.died_at is None:
                continue
            if now - entry.died_at < entry.backoff_s:
                continue
            ran = entry.died_at - entry.started_at
            entry.backoff_s = (
                FIRST_BACKOFF_S if ran >= STABLE_S else min(entry.backoff_s * 2, MAX_BACKOFF_S)
            )
            entry.restarts += 1
            log.warning("event=thread_restarted thread=%s restarts=%d last_error=%r",
                        entry.name, entry.restarts, entry.last_error)  # fmt: skip
            self.on_restart(entry.name)
            self._start(entry)
            restarted.append(entry.name)
        return restarted

    @property
    def restarts(self) -> int:
        """Restarts of every thread so far."""
        return sum(entry.restarts for entry in self.threads.values())

    def join(self, names: list[str], timeout: float) -> list[str]:
        """Wait for threads to end (after :attr:`stop` or their own stop was set).

        :param names: the threads
        :param timeout: seconds for all of them together
        :returns: the names still running at the deadline
        """
        deadline = self.clock() + timeout
        for name in names:
            thread = self.threads[name].thread
            if thread is not None:
                thread.join(max(deadline - self.clock(), 0))
        return [name for name in names if self.threads[name].alive()]


class Health:
    """Which devices work; the operator hears of every change once.

    :param on_change: called with ``(device, up)`` at every change (the metrics)
    :param stream: where the operator's alarm lines go
    """

    def __init__(
        self, on_change: Callable[[str, bool], None], stream: TextIO | None = None
    ) -> None:
        self.on_change = on_change
        self.stream = stream
        self._lock = threading.Lock()
        self.devices: dict[str, bool] = {}
        self.reasons: dict[str, str] = {}

    def up(self, device: str) -> None:
        """A device works (again).

        :param device: its name, e.g. ``reader:Virtual PCD 00 00``
        """
        with self._lock:
            was = self.devices.get(device)
            self.devices[device] = True
            self.reasons.pop(device, None)
        if was is not True:
            self.on_change(device, True)
            if was is False:
                log.warning("event=device_up device=%r", device)
                self.say(f"sscard: device back: {device}")

    def down(self, device: str, reason: str) -> None:
        """A device is gone: the operator's alarm, once.

        :param device: its name
        :param reason: what happened (no personal data)
        """
        with self._lock:
            was = self.devices.get(device)
            self.devices[device] = False
            self.reasons[device] = reason
        if was is not False:
            self.on_change(device, False)
            log.error("event=device_down device=%r reason=%r alarm=operator", device, reason)
            self.say(f"sscard: ALARM: {device} is down: {reason}")

    def say(self, line: str) -> None:
        """Say one line to the operator (stderr by default); a closed console is ignored.

        :param line: the line
        """
        stream = self.stream if self.stream is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed console: the log has the line
            print(line, file=stream, flush=True)
