"""The fault campaigns reuse the sync tests' platform process and proxies (tests/sync/)."""

from __future__ import annotations

import sys
from pathlib import Path

SYNC_TESTS = str(Path(__file__).resolve().parent.parent / "sync")
if SYNC_TESTS not in sys.path:
    sys.path.append(SYNC_TESTS)
