"""End to end: ``sscard demo --daemon`` (``make demo``) decides every scripted presentation
through ``sscard run`` and the reference platform ends up with exactly the journaled rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e


def test_the_daemon_demo_decides_every_presentation_and_the_platform_holds_them(pcscd) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "demo", "--daemon"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert "✗" not in out
    for reason in ("deny_lost", "expired", "not_genuine", "card_removed", "qr_replay"):
        assert f" {reason} " in out
    assert "handed 9 of 9 journal rows to the platform" in out
    assert out.count("DEMO-RUN-01 ") == 9  # the platform's rows, each once
    assert "SIGTERM → exit status 0" in out
    assert time.monotonic() - started < 120  # the issue: under two minutes
