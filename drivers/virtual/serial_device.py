"""The common life of an emulated serial device (a gate board, a QR scanner): a thread that
opens its port, serves it, and opens it again when it disappears, as a real device does when a
cable is replugged or a pty pair restarted.

A subclass gives :attr:`kind` (for thread names and logs) and :meth:`_step` (one slice of
work on an open port: read, answer, send); everything else — start, stop, reconnection, the
connection count and :meth:`wait_until` — is here once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

import serial

from drivers.serial_port import PORT_ERRORS

log = logging.getLogger(__name__)

POLL_S = 0.05  # a read slice: how quickly stop() and a vanished port are noticed


class VirtualSerialDevice:
    """Base of the serial emulators (see the module docstring).

    :param port_path: the device's end of the serial line
    :param baudrate: its speed
    :param reconnect_interval_s: how long to wait before trying a vanished port again
    """

    #: a short name for threads and log lines, e.g. ``virtual-gate``
    kind = "virtual-serial-device"

    def __init__(
        self, port_path: str | Path, baudrate: int = 9600, reconnect_interval_s: float = 0.05
    ) -> None:
        self.port_path = str(port_path)
        self.baudrate = baudrate
        self.reconnect_interval_s = reconnect_interval_s
        self._connections = 0
        # reentrant: wait_until's predicate reads the properties while the condition is held
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving the port on a thread named ``<kind>-<port name>``.

        :raises RuntimeError: when it is running already
        """
        if self._thread is not None:
            raise RuntimeError(f"the {self.kind} is running already")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"{self.kind}-{Path(self.port_path).name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the port; harmless when called twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connections(self) -> int:
        """How many times the device opened its port (1 after the first start)."""
        with self._lock:
            return self._connections

    def wait_until(self, predicate: Callable[[Self], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (it is re-checked after every change).

        :param predicate: a condition on the device, e.g. ``lambda d: d.connections >= 2``
        :param timeout: seconds
        :returns: whether it held in time
        """
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # -- the thread --------------------------------------------------------------------------

    @property
    def _event(self) -> str:
        return self.kind.replace("-", "_")

    def _step(self, port: serial.Serial) -> None:
        """One slice of work on the open port; port errors end the connection.

        :param port: the open port
        :raises serial.SerialException: (or OSError) when the port went away
        """
        raise NotImplementedError

    def _opened(self) -> None:
        """Called on the thread after each (re)opening, before the first :meth:`_step`."""

    def _run(self) -> None:
        port: serial.Serial | None = None
        try:
            while not self._stop.is_set():
                if port is None:
                    port = self._open()
                    continue
                try:
                    self._step(port)
                except PORT_ERRORS as exc:
                    log.info(
                        "event=%s_port_lost port=%s error=%r", self._event, self.port_path, exc
                    )
                    with contextlib.suppress(*PORT_ERRORS):
                        port.close()
                    port = None
        finally:
            if port is not None:
                with contextlib.suppress(*PORT_ERRORS):
                    port.close()

    def _open(self) -> serial.Serial | None:
        try:
            port = serial.Serial(self.port_path, self.baudrate, timeout=POLL_S, exclusive=True)
        except PORT_ERRORS:
            self._stop.wait(self.reconnect_interval_s)
            return None
        self._opened()
        with self._changed:
            self._connections += 1
            self._changed.notify_all()
        log.info("event=%s_port_open port=%s", self._event, self.port_path)
        return port
