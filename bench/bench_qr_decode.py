"""Benchmark: decoding one 1280×720 camera frame, zxing-cpp against zbar, in the same run.

Times :func:`drivers.scanners.decoders.decode_frame` — what the camera scanner calls for every
frame — on a cluttered 720p frame holding a small ``SSC1:`` code (350 characters, version 13,
ECC Q, ≈2.75 px per module, JPEG-compressed) and on the same kind of frame with no code (most
frames at an idle gate). Prints median and p99 per decoder and the zbar/zxing ratio; nothing is
asserted. The full decode + verify benchmark of issue 5 builds on this one.

Run: ``.venv/bin/python bench/bench_qr_decode.py [--rounds N] [--module-px P]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from drivers.scanners.decoders import DECODERS, decode_frame, load_decoder

# the frames are drawn by the tests' image helper, so the benchmark measures what they check
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import qr_images
from shape import Row, percentile, row


def measure(quick: bool) -> list[Row]:
    """Median decode of a 720p frame per decoder, with the code and without, and zbar ÷ zxing.

    :param quick: 10 decodes per decoder and frame instead of 200
    """
    rounds = 10 if quick else 200
    text = qr_images.payload()
    frames = {"small code": qr_images.small_in_frame(text), "empty": qr_images.empty_frame()}
    found = []
    for label, frame in frames.items():
        medians = {}
        for decoder in DECODERS:
            load_decoder(decoder)
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                decode_frame(frame, decoder)
                samples.append(time.perf_counter() - start)
            medians[decoder] = statistics.median(samples) * 1e3
            found.append(
                row(
                    "qr_decode",
                    f"decode 720p frame, {label}, {decoder}",
                    medians[decoder],
                    "ms",
                    note=f"p99 {percentile(samples, 0.99) * 1e3:.2f} ms, {rounds} decodes",
                )
            )
        ratio = medians["zbar"] / medians["zxing"]
        found.append(row("qr_decode", f"zbar ÷ zxing, {label}", ratio, "×"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="decodes per decoder and frame")
    parser.add_argument("--module-px", type=float, default=2.75, help="pixels per module")
    args = parser.parse_args()

    text = qr_images.payload()
    frames = {
        "720p, small code": qr_images.small_in_frame(text, args.module_px),
        "720p, empty": qr_images.empty_frame(),
    }
    for decoder in DECODERS:
        load_decoder(decoder)  # the import is not part of a decode

    print(f"{'frame':<18} {'decoder':<7} {'found':>5} {'median ms':>10} {'p99 ms':>8} {'ratio':>7}")
    for label, frame in frames.items():
        medians: dict[str, float] = {}
        for decoder in DECODERS:
            found = decode_frame(frame, decoder) == [text]
            samples = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                decode_frame(frame, decoder)
                samples.append(time.perf_counter() - start)
            medians[decoder] = statistics.median(samples)
            ratio = medians[decoder] / medians[DECODERS[0]]
            print(
                f"{label:<18} {decoder:<7} {'yes' if found else 'no':>5} "
                f"{medians[decoder] * 1e3:>10.2f} {percentile(samples, 0.99) * 1e3:>8.2f} "
                f"{ratio:>6.1f}x"
            )


if __name__ == "__main__":
    main()
