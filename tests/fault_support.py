"""Helpers for the fault campaigns (tests/faults/): their size, and a small disk of its own.

Every campaign has a short form, run by ``make test``, and a long one, run by ``make faults``
(``SSCARD_FAULTS=long``): :func:`size` picks the count.

:class:`SmallDisk` is a tmpfs of a few megabytes mounted in a mount namespace of its own
(``unshare --mount``, private propagation: nothing reaches the machine's mounts), kept alive by
a holder process. The daemon and ``sscard`` commands run inside it through ``nsenter``; the test
reads and fills the disk from outside through ``/proc/<holder>/root``. Mounting needs root
(the suite runs as root in CI): :func:`need_root` skips with the reason otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

LONG = os.environ.get("SSCARD_FAULTS", "") == "long"
FILLER = "filler"


def size(short: int, long: int) -> int:
    """A campaign's count: ``long`` under ``make faults``, else ``short`` (``make test``)."""
    return long if LONG else short


def seeded(default: int | None = None) -> tuple[int, random.Random]:
    """A campaign's seed (``$SSCARD_FAULTS_SEED``, else ``default``, else the time) and its
    generator: a failure names the seed, and the same seed replays the run."""
    fallback = time.time_ns() if default is None else default
    seed = int(os.environ.get("SSCARD_FAULTS_SEED", str(fallback)))
    return seed, random.Random(seed)


def need_root() -> None:
    """Skip, saying why, where a tmpfs cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (unshare --mount) needs root; the suite runs as root")
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is not installed")


class SmallDisk:
    """A tmpfs of ``megabytes`` at ``mountpoint``, seen only inside its mount namespace.

    :param mountpoint: an empty folder (made if missing)
    :param megabytes: the tmpfs's size
    :param seed: files copied onto the new disk (from outside it), e.g. a prepared store
    """

    def __init__(self, mountpoint: Path, megabytes: int, seed: tuple[Path, ...] = ()) -> None:
        self.mountpoint = mountpoint
        mountpoint.mkdir(exist_ok=True)
        script = 'mount -t tmpfs -o size="$1"m sscard-faults "$2" || exit 1; shift 2\n'
        script += 'for f in "$@"; do cp -p "$f" "$MNT/" || exit 1; done\n'
        script += "echo mounted\nexec sleep 1d"
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
             str(megabytes), str(mountpoint), *map(str, seed)],
            env={**os.environ, "MNT": str(mountpoint)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "mounted":
            self.holder.wait()
            problem = self.holder.stderr.read() if self.holder.stderr else ""
            self.close()
            raise AssertionError(f"no tmpfs at {mountpoint}: {line} {problem}")

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--"]

    def outside(self, path: Path) -> Path:
        """Where a path inside the namespace is seen from the test."""
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")

    def rows(self, store: Path) -> list[tuple[int, str, str, str]]:
        """The journal of a store on this disk, read inside the namespace (SQLite resolves the
        ``/proc/<pid>/root`` link to the path outside, where the file is not)."""
        code = (
            "import json, sys; from pathlib import Path; from daemon_support import TerminalFolder;"
            "print(json.dumps(TerminalFolder(Path('.'), Path('.'), 0).rows(Path(sys.argv[1]))))"
        )
        done = subprocess.run(
            [*self.prefix, sys.executable, "-c", code, str(store)],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [tuple(row) for row in json.loads(done.stdout)]  # type: ignore[misc]

    def fill(self) -> int:
        """Take every free byte of the disk with a filler file; the bytes taken."""
        fd = os.open(self.outside(self.mountpoint / FILLER), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        taken = 0
        try:
            for chunk in (1 << 16, 4096, 512, 1):  # down to the last partial block
                try:
                    while True:
                        taken += os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        return taken

    def free(self) -> None:
        """Give the filler's space back."""
        self.outside(self.mountpoint / FILLER).unlink(missing_ok=True)

    def close(self) -> None:
        """End the holder: the namespace and its tmpfs go with it."""
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        for stream in (self.holder.stdout, self.holder.stderr):
            if stream is not None:
                stream.close()
