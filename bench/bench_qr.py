"""Benchmark: a scanned 720p camera frame to a verified e-card code, against the slow path.

One round = decode the QR code in a cluttered 1280×720 frame (a small code, ≈2.75 px per
module, JPEG-compressed) and verify it offline (Base45, zlib, CBOR, platform signature, device
signature, window) against a trust list. The fast path is zxing-cpp + native SM2 (tongsuopy);
the baseline, measured in the same run on the same frame, is pyzbar + the pure-Python SM2
backend. An ES256 code is timed too. Prints median and p99 and the baseline/fast ratio (issue
5's goal: ≥ 6× faster, ≤ 5 ms median); nothing is asserted.

Run: ``.venv/bin/python bench/bench_qr.py [--rounds N]`` (the rows ``bench/run.py`` prints)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from drivers.scanners.decoders import decode_frame
from drivers.virtual import TEST_KEYS
from ecard import sm2
from ecard.keys import Alg, load_private_key
from ecard.trust import parse_trust_list
from ecard.verify import verify_code

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import qr_images  # noqa: E402 - the tests' frames, so the bench measures what they check
from codes import signed_code  # noqa: E402
from shape import Row, percentile, print_rows, rounds_option, row, timed  # noqa: E402

KEYS = TEST_KEYS


def make(alg: Alg, now: int) -> tuple[str, bytes, bytes]:
    """A fresh code, its trust list and the root's public key."""
    platform = load_private_key((KEYS / f"qr-platform-{alg.value.lower()}-test.pem").read_bytes())
    root = load_private_key((KEYS / "qr-root-test.pem").read_bytes())
    code, trust = signed_code(platform, root, now)
    return code, trust, root.public_key.to_pem()


def paths(rounds: int) -> list[tuple[str, list[float]]]:
    """Seconds per decode + verify: SM2 fast, the SM2 baseline, ES256 fast.

    :param rounds: rounds per fast path (the baseline runs a fifth of them)
    """
    now = int(time.time())
    rows: list[tuple[str, list[float]]] = []
    for alg in (Alg.SM2, Alg.ES256):
        code, trust_bytes, root_pem = make(alg, now)
        trust = parse_trust_list(trust_bytes, root_pem, now)
        frame = qr_images.small_in_frame(code)

        def fast(frame=frame, trust=trust) -> None:
            (text,) = decode_frame(frame, "zxing")
            verify_code(text, trust, now)

        assert decode_frame(frame, "zxing") == [code], "zxing did not read the frame"
        verifier = sm2.BACKEND.name if alg is Alg.SM2 else "cryptography"
        rows.append((f"{alg} zxing + {verifier}", timed(fast, rounds)))
        if alg is Alg.SM2:
            pure = sm2.get_backend("pysmx")

            def slow(frame=frame, trust=trust) -> None:
                (text,) = decode_frame(frame, "zbar")
                verify_code(text, trust, now)

            assert decode_frame(frame, "zbar") == [code], "zbar did not read the frame"
            native, sm2.BACKEND = sm2.BACKEND, pure  # the module's default backend, swapped
            try:
                rows.append(("SM2 zbar + pysmx (baseline)", timed(slow, max(10, rounds // 5))))
            finally:
                sm2.BACKEND = native
    return rows


def measure(quick: bool) -> list[Row]:
    """Decode + verify of a 720p frame against issue 16's goals (3 ms p50, 6 ms p99, ≥ 20×).

    :param quick: 20 rounds instead of 100
    """
    return report(20 if quick else 100)


def report(rounds: int) -> list[Row]:
    """The rows of :func:`measure`, for any number of rounds.

    :param rounds: rounds per fast path (the baseline runs a fifth of them)
    """
    timings = paths(rounds)
    baseline = statistics.median(timings[1][1]) * 1e3
    found = []
    for name, samples in timings:
        median, p99 = statistics.median(samples) * 1e3, percentile(samples, 0.99) * 1e3
        label = f"QR 720p decode + verify, {name}"
        if "baseline" in name:
            found.append(row("qr", label + " p50", median, "ms", note=f"{len(samples)} rounds"))
            continue
        found.append(row("qr", label + " p50", median, "ms", goal=3.0, note=f"p99 {p99:.2f} ms"))
        found.append(row("qr", label + " p99", p99, "ms", goal=6.0, note=f"{len(samples)} rounds"))
        if not name.startswith("SM2"):
            continue  # the baseline is an SM2 code: only the SM2 path is compared with it
        found.append(
            row(
                "qr",
                f"QR speed-up over zbar + pysmx, {name}",
                baseline / median,
                "×",
                goal=20.0,
                comparison=">=",
                note=f"baseline p50 {baseline:.1f} ms",
            )
        )
    return found


if __name__ == "__main__":
    print_rows(report(rounds_option(__doc__, 100, "rounds per path")))
