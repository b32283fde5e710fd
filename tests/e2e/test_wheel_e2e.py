"""``sscard demo`` from an installed wheel, outside the checkout (issue 12).

The wheel is built (``pip wheel --no-deps``) from a copy of the project's sources, so no
``build/`` left over from an earlier build can hide a missing file, and installed into a fresh
venv with ``pip install --no-deps``; the libraries it needs come from the test's own
environment (a ``.pth`` file naming its site-packages), so nothing is downloaded. Every Python
process of that venv — ``sscard demo`` and the ``sscard read`` and ``sscard tap`` processes it
starts — records any file it opens inside the checkout (an audit hook in the venv's
``sitecustomize``): runtime code reads its personas, TEST KEYS and profiles from the installed
package, never from ``tests/`` or another file of the checkout.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import golden
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("setup.cfg", "pyproject.toml", "README.md")
PACKAGES = (
    "apdu",
    "ecard",
    "drivers",
    "offline_store",
    "sync",
    "platform_server",
    "terminal",
    "config",
)
WATCH_ENV = "SSCARD_WHEEL_WATCH"
DEMO_TEST = "test_the_demo_reads_every_persona_and_the_3_0_card_with_the_psam"
CHECKOUT_DEMO = f"tests/e2e/test_security_e2e.py::{DEMO_TEST}"
#: installed as the venv's sitecustomize: every process of the venv notes the files it opens
#: inside the checkout (the test's own environment, where the libraries come from, excepted)
SITECUSTOMIZE = """\
import os
import sys

_watch = os.environ.get("SSCARD_WHEEL_WATCH")
if _watch:
    _root, _allowed, _log = _watch.split(os.pathsep)
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _opened(event, args):
        if event != "open" or not args or not isinstance(args[0], (str, bytes)):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(_root + os.sep) and not path.startswith(_allowed + os.sep):
            os.write(_fd, (path + "\\n").encode("utf-8", "replace"))

    sys.addaudithook(_opened)
"""


@dataclass(frozen=True)
class Installed:
    """The venv the wheel went into.

    :param python: its interpreter
    :param sscard: its ``sscard`` console script
    :param opened: the file its processes list what they opened in the checkout into
    :param env: the environment to run it with
    """

    python: Path
    sscard: Path
    opened: Path
    env: dict[str, str]


def _copy_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        shutil.copy2(ROOT / name, target / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=ignore)


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv[:4]}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel, built from a copy of the sources and installed into a fresh venv."""
    root = tmp_path_factory.mktemp("wheel")
    source, wheels, venv = root / "source", root / "dist", root / "venv"
    source.mkdir()
    _copy_sources(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=source,
    )
    (wheel,) = wheels.glob("sscard_terminal-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)])
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    libraries = next(Path(p) for p in site.getsitepackages() if Path(p, "pydantic").is_dir())
    (purelib / "_sscard_test_libraries.pth").write_text(f"{libraries}\n", encoding="utf-8")
    (purelib / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    opened = root / "opened-in-checkout.txt"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "SSCARD_CONFIG"}}
    env[WATCH_ENV] = os.pathsep.join([str(ROOT), str(libraries.resolve()), str(opened)])
    yield Installed(python, venv / "bin" / "sscard", opened, env)


def test_the_installed_package_holds_its_data_and_nothing_comes_from_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    probe = (
        "import config, drivers.virtual as v, terminal.cli, platform_server.cli, ecard\n"
        "print(terminal.cli.__file__, platform_server.cli.__file__, ecard.__file__)\n"
        "print(v.PERSONAS, v.TEST_KEYS, config.PROFILE_DIR)\n"
        "print(len(list(v.PERSONAS.glob('*.toml'))), (v.TEST_KEYS / 'test-roots.toml').is_file(),"
        " len(list(config.PROFILE_DIR.glob('*.toml'))))\n"
    )
    done = _run([str(installed.python), "-c", probe], cwd=tmp_path, env=installed.env)
    modules, folders, counts = done.stdout.splitlines()
    venv = str(installed.python.parents[1])
    for path in [*modules.split(), *folders.split()]:
        assert path.startswith(venv + os.sep), f"{path} is not inside the installed package"
    personas, roots, profiles = counts.split()
    assert int(personas) >= 14 and roots == "True" and int(profiles) >= 8
    assert not installed.opened.exists() or installed.opened.read_text() == ""


def test_sscard_demo_runs_from_the_wheel_outside_the_checkout(
    installed: Installed, tmp_path: Path, pcscd: object
) -> None:
    done = subprocess.run(
        [str(installed.sscard), "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=installed.env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "[v3-sm4]" in done.stdout and "[student] refuse: 卡已挂失" in done.stdout
    assert "journal chain verified: 5 rows" in done.stdout
    opened = installed.opened.read_text() if installed.opened.exists() else ""
    assert opened == "", f"the installed sscard opened files of the checkout:\n{opened[:2000]}"
    # it prints what the checkout's sscard demo printed (its golden output)
    (recorded,) = golden.recorded(CHECKOUT_DEMO)
    normalise = golden.RECORDER.normalise
    assert (normalise(done.stdout), normalise(done.stderr)) == (
        recorded["stdout"],
        recorded["stderr"],
    )
