"""QR code images made in the tests: a realistic ``SSC1:`` payload rendered with segno into a
grayscale numpy image, and the transforms a scanner meets (rotation, blur, low contrast, a small
code in a cluttered 720p frame, an empty frame).

Nothing here is committed as a binary: every image is drawn from a seed, so a run is repeatable.
The categories follow the decoder measurements of ``qr-offline-verification.md`` §5.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import segno
from numpy.typing import NDArray

Gray = NDArray[np.uint8]

# RFC 9285 §4: the 45 characters, in value order
BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
FRAME_720P = (720, 1280)  # rows, columns
QUIET_ZONE = 4  # modules, ISO/IEC 18004 §6.3.8


def base45(data: bytes) -> str:
    """Encode bytes as Base45 (RFC 9285 §4): two bytes → three characters, a last byte → two.

    :param data: the bytes
    """
    out = []
    for i in range(0, len(data), 2):
        chunk = data[i : i + 2]
        if len(chunk) == 2:
            n = chunk[0] * 256 + chunk[1]
            e, n = divmod(n, 45 * 45)
            d, c = divmod(n, 45)
            out += [BASE45_ALPHABET[c], BASE45_ALPHABET[d], BASE45_ALPHABET[e]]
        else:
            d, c = divmod(chunk[0], 45)
            out += [BASE45_ALPHABET[c], BASE45_ALPHABET[d]]
    return "".join(out)


def payload(seed: int = 1, size: int = 230) -> str:
    """A realistic e-card code: ``SSC1:`` and the Base45 text of ``size`` random bytes.

    230 bytes give 345 Base45 characters, 350 in all: QR version 13 in alphanumeric mode at ECC
    level Q, the size a signed credential with a dynamic part comes to.

    :param seed: picks the bytes
    :param size: how many bytes to encode
    """
    rng = random.Random(seed)
    return "SSC1:" + base45(bytes(rng.randrange(256) for _ in range(size)))


def render(text: str, module_px: int = 4) -> Gray:
    """The QR code of ``text`` (alphanumeric mode when it allows, ECC Q), black on white.

    :param text: the content
    :param module_px: pixels per module
    """
    code = segno.make_qr(text, error="q", boost_error=False)
    modules = np.array(code.matrix, dtype=np.uint8)
    modules = np.pad(modules, QUIET_ZONE, constant_values=0)
    image = np.where(modules == 1, 0, 255).astype(np.uint8)
    return np.kron(image, np.ones((module_px, module_px), dtype=np.uint8))


def clean(text: str) -> Gray:
    """The code at 4 px per module, untouched.

    :param text: the content
    """
    return render(text)


def rotated(text: str, degrees: float = 30.0) -> Gray:
    """The code turned by ``degrees`` on a white canvas large enough to hold it.

    :param text: the content
    :param degrees: counter-clockwise angle
    """
    image = render(text)
    side = int(image.shape[0] * 1.5)
    canvas = np.full((side, side), 255, dtype=np.uint8)
    offset = (side - image.shape[0]) // 2
    canvas[offset : offset + image.shape[0], offset : offset + image.shape[1]] = image
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    turned = cv2.warpAffine(
        canvas, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=(255,)
    )
    return np.asarray(turned, dtype=np.uint8)


def blurred(text: str, sigma: float = 1.5) -> Gray:
    """The code at 4 px per module under a Gaussian blur (an out-of-focus lens).

    :param text: the content
    :param sigma: the blur's standard deviation in pixels
    """
    return np.asarray(cv2.GaussianBlur(render(text), (0, 0), sigma), dtype=np.uint8)


def low_contrast(text: str, gap: int = 40, noise: float = 4.0, seed: int = 2) -> Gray:
    """The code with dark and light ``gap`` grey levels apart around mid grey, plus noise (a dim
    phone screen under a bright lamp).

    :param text: the content
    :param gap: grey levels between dark and light modules
    :param noise: the noise's standard deviation in grey levels
    :param seed: picks the noise
    """
    image = render(text).astype(np.float64)
    dark = 128 - gap / 2
    image = dark + image / 255 * gap
    image += np.random.default_rng(seed).normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def empty_frame(seed: int = 3) -> Gray:
    """A cluttered, noisy 1280×720 camera frame with no code in it.

    :param seed: picks the clutter
    """
    rng = np.random.default_rng(seed)
    rows, columns = FRAME_720P
    # a lit scene: a smooth gradient, some boxes and lines (a bag, a sleeve, the turnstile)
    frame = np.tile(np.linspace(90, 200, columns), (rows, 1))
    frame = np.ascontiguousarray(frame.astype(np.uint8))
    for _ in range(40):
        x, y = int(rng.integers(0, columns)), int(rng.integers(0, rows))
        w, h = int(rng.integers(20, 300)), int(rng.integers(20, 200))
        cv2.rectangle(frame, (x, y), (x + w, y + h), int(rng.integers(0, 256)), -1)
    for _ in range(40):
        start = (int(rng.integers(0, columns)), int(rng.integers(0, rows)))
        end = (int(rng.integers(0, columns)), int(rng.integers(0, rows)))
        cv2.line(frame, start, end, int(rng.integers(0, 256)), int(rng.integers(1, 6)))
    noisy = frame.astype(np.float64) + rng.normal(0, 6, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def small_in_frame(text: str, module_px: float = 2.75, seed: int = 4) -> Gray:
    """The code at ``module_px`` pixels per module somewhere in a cluttered 1280×720 frame, with
    a slight blur, sensor noise and a JPEG round trip (quality 80), like a camera sees a phone
    held at arm's length.

    :param text: the content
    :param module_px: pixels per module after scaling (2.5–3 is the hard end for decoders)
    :param seed: picks the clutter, the place and the noise
    """
    rng = np.random.default_rng(seed)
    frame = empty_frame(seed)
    code = render(text, module_px=1)
    side = round(code.shape[0] * module_px)
    code = np.asarray(cv2.resize(code, (side, side), interpolation=cv2.INTER_AREA), np.uint8)
    rows, columns = FRAME_720P
    y = int(rng.integers(40, rows - side - 40))
    x = int(rng.integers(40, columns - side - 40))
    frame[y : y + side, x : x + side] = code
    frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), 0.6), dtype=np.uint8)
    noisy = frame.astype(np.float64) + rng.normal(0, 3, frame.shape)
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok, "JPEG encoding failed"
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE), dtype=np.uint8)


#: name → image maker taking the text; the names used by the tests and the benchmark
TRANSFORMS = {
    "clean": clean,
    "rotated": rotated,
    "blurred": blurred,
    "low_contrast": low_contrast,
    "small_in_720p": small_in_frame,
}
