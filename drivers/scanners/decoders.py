"""QR decoding of one grayscale frame, with zxing-cpp (the default) or zbar.

Shared by the camera and image scanners, and small enough to time on its own (the benchmark
calls :func:`decode_frame` directly). Measured in ``qr-offline-verification.md`` §5: zxing-cpp
decodes more codes, 5–20× faster (0.3 ms per code image, 1.7 ms per 720p frame against zbar's
2.6 and 24 ms) and returns byte content intact, where zbar re-encodes it. zbar stays
selectable as a second opinion; it needs the system library ``libzbar0``
(``scripts/install-system-deps.sh`` installs it).

Both libraries are imported on first use, so a terminal with a serial scanner loads neither.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.scanners.base import ScannerError, digest

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

ZXING = "zxing"
ZBAR = "zbar"
DECODERS = (ZXING, ZBAR)

_loaded: dict[str, Callable[[Any], list[str]]] = {}


def _zxing() -> Callable[[Any], list[str]]:
    zxingcpp = importlib.import_module("zxingcpp")
    # QR only: a gate must not act on a stray EAN on a bag. Only options zxing-cpp 2.2 and 3.x
    # both take
    qr = zxingcpp.BarcodeFormat.QRCode
    one_threshold = zxingcpp.Binarizer.GlobalHistogram

    def decode(gray: Any) -> list[str]:
        # a phone's screen lights its code evenly, and one threshold for the whole frame finds
        # it in about half the time of the default local one (bench_qr_decode); a frame where it
        # finds none (glare, a shadow across a printed code, or no code) gets the local one
        codes = zxingcpp.read_barcodes(gray, formats=qr, binarizer=one_threshold)
        if not codes:
            codes = zxingcpp.read_barcodes(gray, formats=qr)
        return [code.text for code in codes]

    return decode


def _zbar() -> Callable[[Any], list[str]]:
    pyzbar = importlib.import_module("pyzbar.pyzbar")  # ImportError when libzbar0 is missing
    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(gray: Any) -> list[str]:
        texts = []
        for symbol in pyzbar.decode(gray, symbols=symbols):
            try:
                texts.append(symbol.data.decode("utf-8"))
            except UnicodeDecodeError:
                # zbar guessed a character set and re-encoded the content (§5 "binary payloads")
                log.warning(
                    "event=decode_undecodable decoder=zbar bytes=%d digest=%s",
                    len(symbol.data),
                    digest(symbol.data),
                )
        return texts

    return decode


_LOADERS = {ZXING: _zxing, ZBAR: _zbar}


def load_decoder(decoder: str) -> Callable[[Any], list[str]]:
    """The decode function of ``decoder``, importing its library on first use.

    :param decoder: ``zxing`` or ``zbar``
    :raises ValueError: an unknown decoder name
    :raises ScannerError: its library (or, for zbar, the system's ``libzbar0``) is missing
    """
    if decoder not in _LOADERS:
        raise ValueError(f"unknown QR decoder {decoder!r}; known: {', '.join(DECODERS)}")
    if decoder not in _loaded:
        try:
            _loaded[decoder] = _LOADERS[decoder]()
        except ImportError as exc:
            hint = " (install libzbar0: scripts/install-system-deps.sh)" if decoder == ZBAR else ""
            raise ScannerError(f"QR decoder {decoder!r} cannot be loaded: {exc}{hint}") from exc
    return _loaded[decoder]


def decode_frame(gray: NDArray[np.uint8], decoder: str = ZXING) -> list[str]:
    """The texts of the QR codes in a grayscale frame, each once, in the decoder's order.

    :param gray: a 2-D ``uint8`` array (rows × columns), e.g. from ``cv2.cvtColor(…, GRAY)``
    :param decoder: ``zxing`` (default) or ``zbar``
    :returns: the texts; empty when the frame holds no readable QR code
    :raises ValueError: an unknown decoder, or an array that is not 2-D ``uint8``
    :raises ScannerError: the decoder's library is missing or failed on the frame
    """
    decode = load_decoder(decoder)
    if getattr(gray, "ndim", None) != 2 or str(getattr(gray, "dtype", "")) != "uint8":
        shape = getattr(gray, "shape", type(gray).__name__)
        raise ValueError(f"a frame must be a 2-D uint8 array, got {shape}")
    if not gray.flags.c_contiguous:
        gray = gray.copy()  # both libraries read the buffer row by row
    try:
        texts = decode(gray)
    # the libraries raise RuntimeError, ValueError or their own errors on frames they reject; a
    # crafted code must not take the scanner down (§5: a decoder threw on binary content)
    except Exception as exc:
        raise ScannerError(f"QR decoder {decoder!r} failed on a frame: {exc!r}") from exc
    return list(dict.fromkeys(texts))
