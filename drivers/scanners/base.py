"""What a QR code scanner yields and the one interface every scanner back-end implements.

A :class:`Scanner` is read with a deadline: :meth:`Scanner.read` blocks until a code arrives
or ``timeout_s`` has passed. The rules that hold for every kind of scanner live here, once:

* the deadline, across as many device reads as it takes;
* one retry: when the device went away (:class:`ScannerDisconnected`, e.g. a USB scanner
  replugged), it is reopened once within the same read; a second loss raises;
* filtering: an empty text is dropped, and the same text seen again within ``dedup_s``
  seconds of the last time it was seen is the same scan, not a new one. The window slides: a
  phone held in front of a camera for ten seconds is one scan, and becomes a new one only after
  it was out of sight for ``dedup_s`` (a turnstile must not take one code for several people);
* logging: a scan is logged with its length and a keyed :func:`digest`, never its text, which
  may carry identity (a national e-card code, an SSN on a paper slip).

A back-end implements only the primitives: :meth:`Scanner._poll` (wait for texts from the
device), :meth:`Scanner._release` and, where a device can come back, :meth:`Scanner._reconnect`.

:class:`ScannerError` extends the tree of :mod:`apdu.errors` under ``DriverError``::

    DriverError
    └── ScannerError             a scanner could not be opened or read
        └── ScannerDisconnected  the device went away; reopening it may help
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from apdu.errors import DriverError
from apdu.resources import Closing

log = logging.getLogger(__name__)

DEDUP_S = 3.0  # issue 5: "the same code seen again within a few seconds is one scan"

# a per-process key: the digests of one run can be matched against each other in its log, but a
# digest cannot be brute-forced back to a short text (an SSN has only ~10^9 plausible values)
_DIGEST_KEY = os.urandom(16)
DIGEST_HEX = 8


class ScannerError(DriverError):
    """A scanner could not be opened, read or set up (the message never holds a scanned text)."""


class ScannerDisconnected(ScannerError):
    """The device went away during a read (cable pulled, pty hung up); reopening may help."""


def digest(data: str | bytes) -> str:
    """A short keyed hash of a scanned text, to tell codes apart in logs without showing them.

    :param data: the text, or raw bytes that did not decode
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return hmac.new(_DIGEST_KEY, raw, hashlib.sha256).hexdigest()[:DIGEST_HEX]


@dataclass(frozen=True, slots=True)
class Scan:
    """One code read by a scanner.

    Its ``repr`` shows the text's length and digest, not the text: a scan that ends up in a log
    line or a traceback does not give away what the code holds.

    :param text: the code's text as the device delivered it (serial lines are stripped)
    :param source: where it came from, e.g. ``serial:/dev/ttyACM0``, ``camera:0``,
        ``image:/tmp/code.png``, ``stdin:<stdin>``
    :param monotonic: :func:`time.monotonic` when the back-end delivered it (a serial line
        just read, a camera frame just decoded)
    """

    text: str = field(repr=False)
    source: str
    monotonic: float

    def __repr__(self) -> str:
        return (
            f"Scan(length={len(self.text)}, digest={digest(self.text)}, "
            f"source={self.source!r}, monotonic={self.monotonic:.3f})"
        )


class Scanner(Closing, ABC):
    """A QR code scanner read with a deadline; blocking, single-threaded, no threads of its own.

    Use it from one thread, as a context manager or with :meth:`close`.

    :param source: the name scans carry in :attr:`Scan.source` (a back-end reading several
        files may change :attr:`source` as it goes)
    :param dedup_s: a text seen again within this many seconds of its last sighting is not a new
        scan; 0 turns the filter off
    :raises ValueError: a negative ``dedup_s``
    """

    #: the back-end's name in the registry and in log lines
    kind: ClassVar[str] = "scanner"

    def __init__(self, source: str, *, dedup_s: float = DEDUP_S) -> None:
        if not dedup_s >= 0:
            raise ValueError(f"the de-duplication window must be 0 s or more, got {dedup_s}")
        self.source = source
        self.dedup_s = float(dedup_s)
        self._pending: deque[tuple[str, str, float]] = deque()  # text, source, when
        self._last_seen: dict[str, float] = {}
        self._exhausted = False
        self._closed = False

    # -- public ------------------------------------------------------------------------------

    @property
    def exhausted(self) -> bool:
        """Whether a finite source (files, a closed stream) has nothing more to give.

        :meth:`read` then returns ``None`` at once instead of waiting out its deadline.
        """
        return self._exhausted and not self._pending

    def read(self, timeout_s: float) -> Scan | None:
        """The next new code, waiting at most ``timeout_s`` seconds for it.

        :param timeout_s: how long to wait; 0 takes only what has arrived already
        :returns: the scan, or ``None`` when none came in time or the source is exhausted
        :raises ValueError: a negative timeout
        :raises ScannerError: the scanner is closed, or the device failed (and, if it went
            away, could not be reopened or failed again)
        """
        if not timeout_s >= 0:
            raise ValueError(f"the timeout must be 0 s or more, got {timeout_s}")
        if self._closed:
            raise ScannerError(f"{self.source}: scanner is closed")
        deadline = self._now() + timeout_s
        polled = reconnected = False
        while True:
            while self._pending:
                text, source, seen = self._pending.popleft()
                if self._is_new(text, seen):
                    log.info(
                        "event=scan kind=%s source=%s length=%d digest=%s",
                        self.kind,
                        source,
                        len(text),
                        digest(text),
                    )
                    return Scan(text, source, seen)
            remaining = deadline - self._now()
            if self._exhausted or (polled and remaining <= 0):
                return None
            try:
                texts = self._poll(max(remaining, 0.0))
            except ScannerDisconnected as exc:
                if reconnected:
                    raise
                log.warning(
                    "event=scanner_reconnect kind=%s source=%s error=%r",
                    self.kind,
                    self.source,
                    str(exc),
                )
                self._reconnect()
                reconnected = True
                continue
            polled = True
            now = self._now()
            # stamped now: an image scanner names the file it just read in self.source
            self._pending.extend((text, self.source, now) for text in texts if text)

    def close(self) -> None:
        """Release the device; harmless when called twice.

        :raises ScannerError: when the device could not be released cleanly
        """
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._last_seen.clear()
        self._release()

    # -- the primitives of a back-end ---------------------------------------------------------

    def _now(self) -> float:
        """The clock of deadlines and of the de-duplication window (:func:`time.monotonic`)."""
        return time.monotonic()

    @abstractmethod
    def _poll(self, timeout_s: float) -> Sequence[str]:
        """Wait up to ``timeout_s`` for the device and return the texts it delivered.

        Return as soon as there is at least one text; return nothing at the timeout. A finite
        source sets ``self._exhausted`` when it reaches its end.

        :param timeout_s: at most this long; 0 means do not wait
        :raises ScannerDisconnected: the device went away
        :raises ScannerError: any other device failure (vendor exceptions chained)
        """

    @abstractmethod
    def _release(self) -> None:
        """Close the device (called once, by :meth:`close`).

        :raises ScannerError: when it could not be closed cleanly
        """

    def _reconnect(self) -> None:
        """Reopen a device that went away; a back-end whose device cannot come back says so.

        :raises ScannerError: always, here; a back-end's override when reopening fails
        """
        raise ScannerError(f"{self.source}: the {self.kind} scanner cannot be reopened")

    # -- filtering ---------------------------------------------------------------------------

    def _is_new(self, text: str, seen: float) -> bool:
        """Whether ``text`` seen at ``seen`` is a new scan; remembers the sighting either way."""
        if self.dedup_s == 0:
            return True
        # forget what is out of the window: the table holds only the last dedup_s seconds
        for old in [t for t, at in self._last_seen.items() if seen - at > self.dedup_s]:
            del self._last_seen[old]
        last = self._last_seen.get(text)
        self._last_seen[text] = seen
        if last is None:
            return True
        log.debug(
            "event=scan_repeat kind=%s source=%s digest=%s after_s=%.3f",
            self.kind,
            self.source,
            digest(text),
            seen - last,
        )
        return False
