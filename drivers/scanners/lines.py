"""Lines of text out of a byte stream, for the scanners that speak lines (serial, stdin).

A serial QR scanner in its usual "keyboard over serial" mode sends each code as one line. Which
end of line it sends depends on the model and its setup, so CR, LF and CR LF all end a line
(CR LF simply yields an empty line in between, which is dropped). The rules, decided once:

* surrounding ASCII whitespace is framing, not content, and is stripped. This never damages an
  ``SSC1:`` code: its prefix is not a space, and Base45 text never ends in one — the last
  character of a three-character group is at most value 32 (``W``), of a two-character group
  at most 5 (RFC 9285 §4), while the space is value 36;
* an empty line is dropped;
* a line longer than ``max_line`` bytes is discarded whole with one warning, including the part
  that arrives after the limit was hit — the buffer never holds more than ``max_line`` bytes
  plus the chunk being fed, whatever the device sends;
* a line that is not valid UTF-8 is skipped with a warning naming its length and digest. Such
  bytes come from line noise or a wrong baud rate, not from a code a person holds up: every
  code this terminal accepts is text (``SSC1:`` is Base45, the national codes are ASCII), and
  an "unreadable code" result for noise would make the indicators flash at nobody.
"""

from __future__ import annotations

import logging
import re

from drivers.scanners.base import digest

log = logging.getLogger(__name__)

MAX_LINE = 4096  # bytes; the largest QR code holds 4296 alphanumeric characters, ours ~400
LINE_END = re.compile(rb"[\r\n]")


class LineBuffer:
    """Split bytes into stripped, non-empty UTF-8 lines ended by CR, LF or CR LF.

    :param source: the scanner's source, for log lines
    :param max_line: the longest line kept, in bytes as received (before stripping)
    :raises ValueError: a ``max_line`` below 1
    """

    def __init__(self, source: str, max_line: int = MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError(f"the line cap must be at least 1 byte, got {max_line}")
        self.source = source
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False  # inside a line that already ran over the cap
        #: lines discarded so far: too long or not UTF-8
        self.discarded = 0

    def __len__(self) -> int:
        """How many bytes of an unfinished line are held."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[str]:
        """Take more bytes; the lines they complete.

        :param data: the bytes, as read from the device
        """
        self._buffer += data
        texts = []
        while (end := LINE_END.search(self._buffer)) is not None:
            line = bytes(self._buffer[: end.start()])
            del self._buffer[: end.end()]
            if self._discarding:
                self._discarding = False  # the tail of an overlong line
                continue
            if len(line) > self.max_line:
                self._too_long(len(line))
                continue
            text = self._decode(line.strip())
            if text:
                texts.append(text)
        if len(self._buffer) > self.max_line:
            if not self._discarding:
                self._too_long(len(self._buffer))
                self._discarding = True
            self._buffer.clear()
        return texts

    def clear(self) -> None:
        """Forget an unfinished line (the device was reopened: its rest will not come)."""
        self._buffer.clear()
        self._discarding = False

    def _too_long(self, length: int) -> None:
        self.discarded += 1
        log.warning(
            "event=scanner_line_too_long source=%s bytes=%d max=%d",
            self.source,
            length,
            self.max_line,
        )

    def _decode(self, line: bytes) -> str | None:
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.discarded += 1
            log.warning(
                "event=scanner_undecodable source=%s bytes=%d digest=%s",
                self.source,
                len(line),
                digest(line),
            )
            return None
