"""The import layering of STYLE.md, checked on the source with :mod:`ast` (nothing is imported).

Imports point one way: ``apdu/`` → ``drivers/`` → ``offline_store/``, ``sync/`` → ``terminal/``.
``apdu/`` is pure protocol: no reader library, serial port, camera, database, HTTP client,
socket or child process, and nothing from the layers above it. ``drivers/`` must not reach up
into ``terminal/``, ``offline_store/`` or ``sync/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APDU_FORBIDDEN = frozenset(
    {
        "smartcard",
        "serial",
        "cv2",
        "sqlite3",
        "sqlite_utils",
        "requests",
        "socket",
        "subprocess",
        "drivers",
        "terminal",
        "offline_store",
        "sync",
    }
)
DRIVERS_FORBIDDEN = frozenset({"terminal", "offline_store", "sync"})


def imported_modules(source: str) -> set[str]:
    """The absolute module names a module imports, at any depth of its body.

    Covers ``import a.b``, ``from a.b import c`` and ``importlib.import_module("a.b")`` or
    ``__import__("a.b")`` with a literal name. Relative imports stay inside their package and
    are left out.

    :param source: the module's source text
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                called in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names.add(first.value)
    return names


def _top_level(name: str) -> str:
    return name.split(".", 1)[0]


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_walker_sees_imports_of_every_form() -> None:
    source = (
        "import os.path\n"
        "from apdu.tlv import parse_simple\n"
        "from . import sibling\n"
        "def lazy():\n"
        "    import smartcard.scard\n"
        "    importlib.import_module('serial.tools')\n"
        "    __import__('cv2')\n"
    )
    assert imported_modules(source) == {
        "os.path",
        "apdu.tlv",
        "smartcard.scard",
        "serial.tools",
        "cv2",
    }


def test_the_walk_finds_the_packages_and_their_imports() -> None:
    apdu_files = {p.name for p in _sources("apdu")}
    assert {"command.py", "sw.py", "transport.py", "ssc.py", "national.py"} <= apdu_files
    assert "apdu.tlv" in imported_modules((ROOT / "apdu" / "ssc.py").read_text(encoding="utf-8"))
    assert _sources("drivers")


@pytest.mark.parametrize("path", _sources("apdu"), ids=_id)
def test_apdu_imports_no_io_library_and_no_higher_layer(path: Path) -> None:
    imports = imported_modules(path.read_text(encoding="utf-8"))
    offending = sorted(name for name in imports if _top_level(name) in APDU_FORBIDDEN)
    assert not offending, f"{_id(path)} imports {offending}"


@pytest.mark.parametrize("path", _sources("drivers"), ids=_id)
def test_drivers_import_nothing_from_the_layers_above(path: Path) -> None:
    imports = imported_modules(path.read_text(encoding="utf-8"))
    offending = sorted(name for name in imports if _top_level(name) in DRIVERS_FORBIDDEN)
    assert not offending, f"{_id(path)} imports {offending}"


def test_offline_store_imports_nothing_from_the_layers_above() -> None:
    """``offline_store/`` sits beside ``sync/`` below ``terminal/``: it never imports
    ``drivers/``, ``terminal/`` or ``sync/``; of the project it uses ``apdu.errors`` and
    ``apdu.identity``, and of third-party code only ``sqlite_utils`` and ``cryptography``."""
    import sys

    sources = _sources("offline_store")
    assert {"db.py", "denylist.py", "journal.py"} <= {p.name for p in sources}
    allowed = {"sqlite_utils", "cryptography", "apdu", "offline_store"}
    for path in sources:
        imports = imported_modules(path.read_text(encoding="utf-8"))
        upward = sorted(n for n in imports if _top_level(n) in {"drivers", "terminal", "sync"})
        assert not upward, f"{_id(path)} imports {upward}"
        foreign = sorted(
            n
            for n in imports
            if _top_level(n) not in allowed and _top_level(n) not in sys.stdlib_module_names
        )
        assert not foreign, f"{_id(path)} imports {foreign}"
        from_apdu = sorted(
            n
            for n in imports
            if _top_level(n) == "apdu" and n not in {"apdu.errors", "apdu.identity"}
        )
        assert not from_apdu, f"{_id(path)} imports {from_apdu}"


def _project_closure(start: str) -> set[str]:
    """Every module a project module imports, transitively through the project's own modules
    (third-party and stdlib modules are listed but not followed)."""
    seen: set[str] = set()
    todo = [start]
    project = {"apdu", "drivers", "offline_store", "sync", "terminal", "config"}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if _top_level(name) not in project:
            continue
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        if not path.exists():
            continue
        todo.extend(imported_modules(path.read_text(encoding="utf-8")))
        parent = name.rsplit(".", 1)[0]
        if parent != name:
            todo.append(parent)  # importing a.b runs a/__init__.py
    return seen


def test_the_decision_path_imports_no_http_client() -> None:
    """The pipeline decides offline: it sees the platform through a small protocol
    (terminal.list_policy.PlatformLink), never through requests or the sync client."""
    closure = _project_closure("terminal.pipeline")
    assert "offline_store.freshness" in closure  # the walk follows the project's imports
    offending = sorted(n for n in closure if _top_level(n) in {"requests", "urllib3", "httpx"})
    assert not offending, f"terminal.pipeline reaches {offending}"
    assert not {"sync.client", "sync.transport", "sync.online"} & closure
