"""Lines of a text stream as a QR code scanner: standard input by default, for operators (a
keyboard-wedge scanner typing into a terminal, a code pasted by hand, a shell pipe) and tests.

The lines follow the same rules as a serial scanner's (:mod:`drivers.scanners.lines`); at the
end of the stream an unterminated last line still counts, and the scanner is exhausted.

A stream backed by a file descriptor (stdin, a pipe, a file) is read with ``os.read`` after
``select``, so :meth:`~drivers.scanners.base.Scanner.read` keeps its deadline; reading the
descriptor directly also keeps lines from hiding in the text layer's buffer while ``select``
says there is nothing to read. A stream without one (``io.StringIO``) is read as it is: it
never blocks.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from drivers.scanners.base import DEDUP_S, Scanner, ScannerError
from drivers.scanners.lines import MAX_LINE, LineBuffer


class StdinScanner(Scanner):
    """Read codes, one per line, from a text stream.

    The stream belongs to the caller: :meth:`close` does not close it. Nothing else should read
    from it meanwhile.

    :param stream: the stream; standard input when ``None``
    :param dedup_s: see :class:`~drivers.scanners.base.Scanner`
    :param max_line: the longest line kept, in bytes of UTF-8; longer ones are discarded whole
    :raises ValueError: a negative ``dedup_s`` or a ``max_line`` below 1
    """

    kind = "stdin"

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        dedup_s: float = DEDUP_S,
        max_line: int = MAX_LINE,
    ) -> None:
        self.stream = sys.stdin if stream is None else stream
        super().__init__(f"stdin:{getattr(self.stream, 'name', '<stream>')}", dedup_s=dedup_s)
        self.lines = LineBuffer(self.source, max_line)
        self._fd: int | None
        try:
            self._fd = self.stream.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            self._fd = None

    def _poll(self, timeout_s: float) -> Sequence[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            chunk = self._chunk(max(deadline - time.monotonic(), 0.0))
            if chunk is None:  # nothing arrived in time
                return []
            if not chunk:  # the end: an unterminated last line still counts
                self._exhausted = True
                return self.lines.feed(b"\n")
            texts = self.lines.feed(chunk)
            if texts:
                return texts

    def _chunk(self, timeout_s: float) -> bytes | None:
        """The next bytes; ``b""`` at the end of the stream, ``None`` when none came in time."""
        try:
            if self._fd is None:
                text = self.stream.read(self.lines.max_line)
                # surrogateescape: bytes a stream could not decode come back as they were, and
                # the line rules then skip them
                return text.encode("utf-8", "surrogateescape")
            ready, _, _ = select.select([self._fd], [], [], timeout_s)
            if not ready:
                return None
            return os.read(self._fd, self.lines.max_line)
        except (OSError, ValueError) as exc:  # a closed stream raises ValueError
            raise ScannerError(f"{self.source}: cannot read the stream: {exc}") from exc

    def _release(self) -> None:
        self.lines.clear()
