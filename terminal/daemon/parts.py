"""What the daemon's threads take from the daemon: :class:`DaemonParts`.

The decision worker (``worker.py``) and the sync thread (``sync_thread.py``) are built by the
daemon (``core.py``) and need a few of its parts: the terminal, the store lock, the metrics, the
device health, the stop flag and the bookkeeping after a decision or a sync. They name this
interface rather than :class:`~terminal.daemon.core.Daemon`, which imports them: so the daemon
stands above its threads and no import runs in a circle. The daemon satisfies it as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from terminal.compose import Terminal
from terminal.daemon.metrics import DaemonMetrics
from terminal.daemon.supervisor import Health
from terminal.host.desk import Desk


class DaemonParts(Protocol):
    """The parts of a running daemon its worker and sync threads use.

    :ivar stopping: set when the daemon stops
    :ivar store_lock: held for each decision (and each operator command)
    :ivar metrics: the daemon's counters and gauges
    :ivar health: the devices' state and the operator's alarms
    :ivar desk: with ``[host] enabled``, what the host API sees of the taps, else ``None``
    """

    stopping: threading.Event
    store_lock: threading.Lock
    metrics: DaemonMetrics
    health: Health
    desk: Desk | None

    @property
    def terminal(self) -> Terminal:
        """The terminal decided with (a reload replaces its pipeline)."""
        ...

    def after_decision(self) -> None:
        """Refresh the gauges a decision changes (called under the store lock)."""
        ...

    def after_sync(self) -> None:
        """Refresh the gauges a sync changes."""
        ...


class ReaderView(Protocol):
    """A reader thread as the host API shows it (``inputs.ReaderLoop``).

    :ivar wanted: the reader's name as configured
    :ivar state: ``waiting_card``, ``processing``, ``waiting_removal``, ``down`` or ``stopped``
    """

    wanted: str
    state: str


class HostedDaemon(DaemonParts, Protocol):
    """What the host API (``host.py``) takes from the daemon besides :class:`DaemonParts`."""

    @property
    def readers(self) -> Sequence[ReaderView]:
        """The reader threads."""
        ...

    def healthy(self) -> bool:
        """True while the decision worker runs."""
        ...
