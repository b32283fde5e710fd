"""Image files (PNG, JPEG, anything OpenCV reads) as a QR code scanner, for operators and tests.

The files are read in the order given, each decoded once as grayscale by
:func:`~drivers.scanners.decoders.decode_frame`; scans name the file they came from
(``image:<path>``). After the last file the scanner is exhausted. The de-duplication of the
base class applies here too: the same code in two files read within ``dedup_s`` is one scan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import cv2

from drivers.scanners.base import DEDUP_S, Scanner, ScannerError
from drivers.scanners.decoders import ZXING, decode_frame, load_decoder

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)


class ImageScanner(Scanner):
    """Decode QR codes from image files, one file per device read.

    :param paths: one file or several, read in this order
    :param decoder: ``zxing`` (default) or ``zbar``
    :param dedup_s: see :class:`~drivers.scanners.base.Scanner`
    :raises ValueError: no file, an unknown decoder or a negative ``dedup_s``
    :raises ScannerError: a file that does not exist, or a decoder whose library is missing
    """

    kind = "image"

    def __init__(
        self,
        paths: str | Path | Iterable[str | Path],
        decoder: str = ZXING,
        *,
        dedup_s: float = DEDUP_S,
    ) -> None:
        files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        if not files:
            raise ValueError("an image scanner needs at least one file")
        super().__init__(f"image:{files[0]}", dedup_s=dedup_s)
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise ScannerError(f"no such image file: {', '.join(missing)}")
        load_decoder(decoder)
        self.paths = tuple(files)
        self.decoder = decoder
        self._next = 0

    def _poll(self, timeout_s: float) -> Sequence[str]:
        deadline = time.monotonic() + timeout_s
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1  # an unreadable file is reported once, then passed over
            self._exhausted = self._next == len(self.paths)
            self.source = f"image:{path}"
            try:
                gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            except cv2.error as exc:
                raise ScannerError(f"{self.source}: cannot read the image: {exc}") from exc
            if gray is None:
                raise ScannerError(f"{self.source}: not an image OpenCV can read")
            # IMREAD_GRAYSCALE always yields 2-D uint8 (decode_frame checks it anyway)
            texts = decode_frame(cast("NDArray[np.uint8]", gray), self.decoder)
            if not texts:
                log.info("event=scanner_no_code kind=image source=%s", self.source)
            if texts or time.monotonic() >= deadline:
                return texts
        return []

    def _release(self) -> None:
        self._next = len(self.paths)  # nothing is held open between reads
