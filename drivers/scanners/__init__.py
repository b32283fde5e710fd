"""QR code scanners: a serial scanner, a camera (or a video file), image files, a text stream.

The interface lives in :mod:`drivers.scanners.base`. The back-ends are imported on first use
(the camera needs OpenCV and a decoder library, the serial one pyserial), by name through
:func:`backend` (the :class:`drivers.registry.Registry` :data:`BACKENDS`) or as attributes of
this package::

    from drivers.scanners import backend

    with backend("serial")("/dev/ttyACM0") as scanner:
        scan = scanner.read(timeout_s=1.0)  # a Scan, or None

    camera = backend("camera")(0, decoder="zbar")

:func:`decode_frame` (one grayscale frame → texts) is here too, for tools and benchmarks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from drivers.registry import Registry
from drivers.scanners.base import Scan, Scanner, ScannerDisconnected, ScannerError, digest

if TYPE_CHECKING:
    from drivers.scanners.camera import CameraScanner
    from drivers.scanners.decoders import DECODERS, decode_frame
    from drivers.scanners.image import ImageScanner
    from drivers.scanners.serial import SerialScanner
    from drivers.scanners.stdin import StdinScanner

#: back-end name → ``module:class``
BACKENDS: Registry[Scanner] = Registry(
    "scanner",
    ScannerError,
    {
        "camera": "drivers.scanners.camera:CameraScanner",
        "image": "drivers.scanners.image:ImageScanner",
        "serial": "drivers.scanners.serial:SerialScanner",
        "stdin": "drivers.scanners.stdin:StdinScanner",
    },
)
_DECODING = "drivers.scanners.decoders"

__all__ = [
    "BACKENDS",
    "DECODERS",
    "CameraScanner",
    "ImageScanner",
    "Scan",
    "Scanner",
    "ScannerDisconnected",
    "ScannerError",
    "SerialScanner",
    "StdinScanner",
    "backend",
    "decode_frame",
    "digest",
]


def backend(name: str) -> type[Scanner]:
    """The scanner class registered under ``name``, imported on first use.

    :param name: ``camera``, ``image``, ``serial`` or ``stdin``
    :raises ScannerError: an unknown name, or a back-end whose module cannot be imported
    """
    return BACKENDS.load(name)


def __getattr__(attribute: str) -> Any:
    """``drivers.scanners.SerialScanner``, ``decode_frame`` and friends, imported on first use
    (PEP 562)."""
    cls = BACKENDS.by_class_name(attribute)
    if cls is not None:
        return cls
    if attribute in {"decode_frame", "DECODERS"}:
        return getattr(importlib.import_module(_DECODING), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
