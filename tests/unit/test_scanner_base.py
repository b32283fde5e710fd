"""The scanner base class without a device: deadlines, the one reconnect, de-duplication,
the life cycle, the scan record and the registry — driven by a scripted back-end on a fake
clock, so the windows are exact."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pytest

from drivers.scanners import (
    BACKENDS,
    Scan,
    Scanner,
    ScannerDisconnected,
    ScannerError,
    backend,
    digest,
)

ROOT = Path(__file__).resolve().parents[2]
CODE = "SSC1:6BFOXN*TS0BI$ZDYSHTC7*B4NVB"


class Scripted(Scanner):
    """A back-end that replays a script: each poll takes the next entry — texts, an exception
    to raise, or ``None`` for "nothing until the timeout" — and advances a fake clock."""

    kind = "scripted"

    def __init__(self, script: Sequence[object], *, dedup_s: float = 3.0, poll_s: float = 1.0):
        super().__init__("scripted:0", dedup_s=dedup_s)
        self.script = deque(script)
        self.poll_s = poll_s  # fake seconds a poll that delivers takes
        self.now = 100.0
        self.timeouts: list[float] = []
        self.reconnects = 0
        self.released = 0
        self.finite = False

    def _now(self) -> float:
        return self.now

    def _poll(self, timeout_s: float) -> Sequence[str]:
        self.timeouts.append(timeout_s)
        if not self.script:
            if self.finite:
                self._exhausted = True
            self.now += timeout_s
            return []
        entry = self.script.popleft()
        if isinstance(entry, Exception):
            raise entry
        if entry is None:
            self.now += timeout_s
            return []
        self.now += min(self.poll_s, timeout_s)
        return list(entry)  # type: ignore[call-overload]

    def _reconnect(self) -> None:
        self.reconnects += 1

    def _release(self) -> None:
        self.released += 1


def texts(scanner: Scanner, reads: int, timeout_s: float = 10.0) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(reads):
        scan = scanner.read(timeout_s)
        out.append(scan.text if scan else None)
    return out


# -- de-duplication ----------------------------------------------------------------------------


def test_the_same_text_within_the_window_is_one_scan() -> None:
    scanner = Scripted([[CODE], [CODE], [CODE], None], dedup_s=3.0)
    assert texts(scanner, 2, timeout_s=5) == [CODE, None]


def test_the_window_slides_a_code_held_in_view_stays_one_scan() -> None:
    # seen every second for ten seconds with a 3 s window: one person, one scan
    scanner = Scripted([[CODE]] * 10 + [None], dedup_s=3.0, poll_s=1.0)
    assert texts(scanner, 2, timeout_s=20) == [CODE, None]


def test_the_same_text_after_the_window_is_a_new_scan() -> None:
    scanner = Scripted([[CODE], None, [CODE]], dedup_s=3.0, poll_s=1.0)
    first = scanner.read(10)
    assert scanner.read(3.5) is None  # out of sight for 3.5 s
    second = scanner.read(10)
    assert first is not None and second is not None
    assert second.text == CODE and second.monotonic - first.monotonic == pytest.approx(4.5)


def test_other_texts_between_do_not_reset_the_window() -> None:
    scanner = Scripted([["A"], ["B"], ["A"], ["B"], ["C"]], dedup_s=3.0, poll_s=0.5)
    assert texts(scanner, 3) == ["A", "B", "C"]


def test_a_zero_window_turns_the_filter_off() -> None:
    scanner = Scripted([[CODE], [CODE]], dedup_s=0)
    assert texts(scanner, 2) == [CODE, CODE]


def test_the_window_table_forgets_what_is_out_of_it() -> None:
    scanner = Scripted([[f"code-{i}"] for i in range(100)], dedup_s=3.0, poll_s=1.0)
    texts(scanner, 100)
    assert len(scanner._last_seen) <= 4


def test_empty_texts_are_dropped_and_several_texts_of_one_poll_come_one_per_read() -> None:
    scanner = Scripted([["", "A", "B", "A"], None])
    first, second = scanner.read(10), scanner.read(10)
    assert first is not None and second is not None
    assert (first.text, second.text) == ("A", "B")
    assert first.monotonic == second.monotonic  # both seen in the same poll
    assert scanner.read(1) is None


# -- deadlines ---------------------------------------------------------------------------------


def test_a_read_polls_until_its_deadline_and_passes_the_time_left() -> None:
    scanner = Scripted([[""], [""], None], poll_s=1.0)
    assert scanner.read(2.5) is None
    assert scanner.timeouts == [2.5, 1.5, 0.5]


def test_a_zero_timeout_polls_once_without_waiting() -> None:
    scanner = Scripted([None])
    assert scanner.read(0) is None
    assert scanner.timeouts == [0]


def test_an_exhausted_source_returns_none_at_once() -> None:
    scanner = Scripted([["A"]])
    scanner.finite = True
    assert texts(scanner, 1) == ["A"]
    assert not scanner.exhausted
    assert scanner.read(60) is None
    assert scanner.exhausted
    polls = len(scanner.timeouts)
    assert scanner.read(60) is None
    assert len(scanner.timeouts) == polls


def test_a_negative_timeout_or_window_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout must be 0 s or more"):
        Scripted([]).read(-1)
    with pytest.raises(ValueError, match="window must be 0 s or more"):
        Scripted([], dedup_s=-0.1)


# -- the one reconnect -------------------------------------------------------------------------


def test_a_lost_device_is_reopened_once_within_the_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scanner = Scripted([ScannerDisconnected("scripted:0: gone"), [CODE]])
    with caplog.at_level(logging.WARNING, logger="drivers.scanners.base"):
        scan = scanner.read(5)
    assert scan is not None and scan.text == CODE
    assert scanner.reconnects == 1
    assert "event=scanner_reconnect kind=scripted source=scripted:0 error='scripted:0: gone'" in (
        caplog.text
    )


def test_a_device_lost_again_after_reopening_raises() -> None:
    again = ScannerDisconnected("again")
    scanner = Scripted([ScannerDisconnected("gone"), again, [CODE]])
    with pytest.raises(ScannerDisconnected) as raised:
        scanner.read(5)
    assert raised.value is again
    assert scanner.reconnects == 1
    assert texts(scanner, 1) == [CODE]  # the next read starts afresh


def test_other_device_errors_are_not_retried() -> None:
    scanner = Scripted([ScannerError("broken"), [CODE]])
    with pytest.raises(ScannerError, match="broken"):
        scanner.read(5)
    assert scanner.reconnects == 0


def test_a_backend_that_cannot_reconnect_says_so() -> None:
    class Fixed(Scripted):
        _reconnect = Scanner._reconnect

    with pytest.raises(ScannerError, match=r"^scripted:0: the scripted scanner cannot be reopened"):
        Fixed([ScannerDisconnected("gone")]).read(1)


# -- life cycle, record, registry --------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_scanner_refuses_to_read() -> None:
    with Scripted([[CODE]]) as scanner:
        pass
    scanner.close()
    assert scanner.released == 1
    with pytest.raises(ScannerError, match=r"^scripted:0: scanner is closed$"):
        scanner.read(1)


def test_a_scan_is_frozen_and_its_repr_shows_length_and_digest_not_the_text() -> None:
    scan = Scan(CODE, "serial:/dev/ttyACM0", 12.5)
    assert CODE not in repr(scan) and CODE[5:] not in repr(scan)
    assert repr(scan) == (
        f"Scan(length={len(CODE)}, digest={digest(CODE)}, "
        "source='serial:/dev/ttyACM0', monotonic=12.500)"
    )
    with pytest.raises(AttributeError):
        scan.text = "other"  # type: ignore[misc]


def test_the_digest_is_short_stable_in_a_process_and_keyed() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}", digest(CODE))
    assert digest(CODE) == digest(CODE.encode())
    assert digest(CODE) != digest(CODE + " ")
    # keyed per process: another interpreter gives another digest for the same text
    other = subprocess.run(
        [sys.executable, "-c", f"from drivers.scanners import digest; print(digest({CODE!r}))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{8}", other) and other != digest(CODE)


def test_backends_load_by_name_and_an_unknown_name_lists_the_known_ones() -> None:
    assert sorted(BACKENDS) == ["camera", "image", "serial", "stdin"]
    for name in BACKENDS:
        cls = backend(name)
        assert issubclass(cls, Scanner) and cls.kind == name
    with pytest.raises(ScannerError, match=r"unknown scanner 'wechat'; known: camera, image"):
        backend("wechat")


def test_importing_the_package_loads_no_device_or_decoder_library() -> None:
    heavy = ["cv2", "serial", "zxingcpp", "pyzbar", "numpy"]
    code = f"import sys, drivers.scanners; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert loaded.strip() == "[]"
