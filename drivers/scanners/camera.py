"""A camera as a QR code scanner (OpenCV capture), or a video file played as if it were one.

Each frame is turned to grayscale and decoded by :func:`~drivers.scanners.decoders.decode_frame`
(zxing-cpp by default, zbar by name). Frames are never queued: while a decode is busy the
camera keeps capturing, and the next decode takes the newest frame, skipping the ones in
between. A queue would make a slow decoder fall further and further behind the person at the
gate; skipping keeps the latency at one decode plus one frame.

* A live camera (an index, a ``/dev/video*`` path, a stream URL): the driver's buffered frames
  are grabbed and dropped until a grab has to wait for the sensor — that frame is new. The
  buffer is also asked to hold a single frame where the driver supports it.
* A video file: played in real time at its own frame rate from the first read, so the frames
  that went by during a decode are skipped exactly as a camera would skip them; this is how the
  tests drive the scanner without a camera. With ``realtime=False`` every frame is decoded.
  At the end of the file the scanner is exhausted.

A live read may overrun its deadline by one frame interval (a grab cannot be interrupted).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from drivers.scanners.base import DEDUP_S, Scanner, ScannerDisconnected, ScannerError
from drivers.scanners.decoders import ZXING, decode_frame, load_decoder

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # when the driver or the file does not say
MAX_DRAIN = 16  # grabs to empty a driver's buffer (V4L2 keeps 4 by default)
FRESH_FRACTION = 0.25  # a grab that waits this part of a frame interval waited for the sensor
READ_TIMEOUT_MS = 2000  # a stalled camera fails a grab after this (V4L2's default is 10 s)


class CameraScanner(Scanner):
    """Decode QR codes from a camera or a video file, newest frame first.

    :param source: a camera index (``0`` or ``"0"``), a device path, a stream URL or a video
        file
    :param decoder: ``zxing`` (default) or ``zbar``
    :param dedup_s: see :class:`~drivers.scanners.base.Scanner`; a code held in view stays one
        scan until it was out of sight this long
    :param realtime: for a video file, play it at its frame rate and skip the frames that go by
        during a decode (as a camera would); ``False`` decodes every frame
    :raises ValueError: an unknown decoder or a negative ``dedup_s``
    :raises ScannerError: the decoder's library is missing, or the source cannot be opened
    """

    kind = "camera"

    def __init__(
        self,
        source: int | str = 0,
        decoder: str = ZXING,
        *,
        dedup_s: float = DEDUP_S,
        realtime: bool = True,
    ) -> None:
        if isinstance(source, str) and source.isascii() and source.isdigit():
            source = int(source)  # "0" from a command line is the camera, not a file named 0
        super().__init__(f"camera:{source}", dedup_s=dedup_s)
        load_decoder(decoder)  # fail now on a missing library, not on the first frame
        self.device = source
        self.decoder = decoder
        self.live = not (isinstance(source, str) and Path(source).is_file())
        self.realtime = realtime
        #: frames decoded and frames dropped unseen so far
        self.frames_decoded = 0
        self.frames_skipped = 0
        self._capture: Any = None
        self._fps = DEFAULT_FPS
        self._started: float | None = None  # a file's playback clock: when frame 0 was shown
        self._position = 0  # a file's next frame index
        self._open()

    # -- primitives ----------------------------------------------------------------------------

    def _poll(self, timeout_s: float) -> Sequence[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                return []
            try:
                gray = _grayscale(frame)
            except cv2.error as exc:
                raise ScannerError(f"{self.source}: cannot convert a frame: {exc}") from exc
            texts = decode_frame(gray, self.decoder)
            self.frames_decoded += 1
            if texts or time.monotonic() >= deadline:
                return texts

    def _reconnect(self) -> None:
        if not self.live:
            super()._reconnect()
        self._drop()
        self._open()

    def _release(self) -> None:
        self._drop()

    # -- frames ------------------------------------------------------------------------------

    def _next_frame(self, deadline: float) -> Any:
        """The newest frame, or ``None`` at the deadline or the end of a file."""
        try:
            if self.live:
                return self._newest_live_frame()
            return self._file_frame(deadline)
        except cv2.error as exc:
            raise ScannerError(f"{self.source}: capture failed: {exc}") from exc

    def _newest_live_frame(self) -> Any:
        capture = self._capture
        if capture is None:
            raise ScannerDisconnected(f"{self.source}: the camera is not open")
        fresh_s = FRESH_FRACTION / self._fps
        grabs = 0
        while grabs < MAX_DRAIN:
            grabs += 1
            started = time.monotonic()
            if not capture.grab():
                self._drop()
                raise ScannerDisconnected(f"{self.source}: the camera delivered no frame")
            if time.monotonic() - started >= fresh_s:
                break  # this grab waited for the sensor: the frame is new
        self.frames_skipped += grabs - 1
        ok, frame = capture.retrieve()
        if not ok:
            self._drop()
            raise ScannerDisconnected(f"{self.source}: the camera delivered no frame")
        return frame

    def _file_frame(self, deadline: float) -> Any:
        capture = self._capture
        if capture is None:
            raise ScannerError(f"{self.source}: the video is not open")
        if self.realtime:
            now = time.monotonic()
            if self._started is None:
                self._started = now
            shown = math.floor((now - self._started) * self._fps)  # the frame on screen now
            if self._position > shown:  # decoded already: wait for the next one
                due = self._started + self._position / self._fps
                time.sleep(max(min(due, deadline) - now, 0.0))
                if due > deadline:
                    return None
            while self._position < shown:  # went by during the last decode
                if not capture.grab():
                    return self._end()
                self._position += 1
                self.frames_skipped += 1
        ok, frame = capture.read()
        if not ok:
            return self._end()
        self._position += 1
        return frame

    def _end(self) -> None:
        self._exhausted = True
        log.info(
            "event=scanner_end kind=camera source=%s decoded=%d skipped=%d",
            self.source,
            self.frames_decoded,
            self.frames_skipped,
        )

    # -- device ------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            capture = cv2.VideoCapture(self.device)
            if not capture.isOpened():
                capture.release()
                raise ScannerError(f"{self.source}: cannot open the camera or video")
            if self.live:
                capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by some drivers only
                with contextlib.suppress(AttributeError):  # OpenCV before 4.6 lacks it
                    capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS)
            fps = float(capture.get(cv2.CAP_PROP_FPS))
        except cv2.error as exc:
            raise ScannerError(f"{self.source}: cannot open the camera or video: {exc}") from exc
        self._capture = capture
        self._fps = fps if 0 < fps <= 1000 else DEFAULT_FPS
        log.info(
            "event=scanner_camera_open source=%s live=%s fps=%.1f decoder=%s",
            self.source,
            self.live,
            self._fps,
            self.decoder,
        )

    def _drop(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            with contextlib.suppress(cv2.error):
                capture.release()


def _grayscale(frame: Any) -> Any:
    """A capture frame as a 2-D grayscale array (cameras deliver BGR, BGRA or already gray)."""
    if frame.ndim == 2:
        return frame
    channels = frame.shape[2]
    if channels == 1:
        return frame[:, :, 0]
    if channels == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise ScannerError(f"a frame with {channels} channels cannot be made grayscale")
