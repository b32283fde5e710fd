"""systemd's readiness and watchdog protocol (``sd_notify``), without libsystemd.

systemd gives a ``Type=notify`` service the datagram socket ``$NOTIFY_SOCKET`` (a path, or an
abstract name starting with ``@``) and ``$WATCHDOG_USEC``; the service sends ``READY=1`` once
it takes cards, ``WATCHDOG=1`` at least every half of that interval while healthy, and
``STOPPING=1`` when it shuts down (sd_notify(3)). Outside systemd every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
DEFAULT_PING_S = 10.0


class Notifier:
    """Send state lines to systemd, if it is listening.

    :param address: the socket (default: ``$NOTIFY_SOCKET``)
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get(ENV_SOCKET, "")

    @property
    def enabled(self) -> bool:
        """True when systemd (or a test) listens."""
        return bool(self.address)

    def send(self, *states: str) -> bool:
        """Send ``KEY=value`` lines in one datagram.

        :returns: True when sent; a failure is logged, never raised
        """
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # never wait: a listener that stopped reading must not stop the main loop
                sock.sendto("\n".join(states).encode(), socket.MSG_DONTWAIT, target)
        except BlockingIOError:
            log.debug("event=sd_notify_full states=%s", ",".join(states))
            return False
        except OSError as exc:
            log.warning("event=sd_notify_failed error=%s", exc)
            return False
        return True

    def ping_interval_s(self) -> float:
        """Seconds between ``WATCHDOG=1``: half of ``$WATCHDOG_USEC``, else 10 s."""
        try:
            usec = int(os.environ.get(ENV_WATCHDOG_USEC, ""))
        except ValueError:
            return DEFAULT_PING_S
        return max(usec / 2e6, 0.1) if usec > 0 else DEFAULT_PING_S
