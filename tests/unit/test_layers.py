"""The layout of ``../shared/DESIGN.md`` ("Layout (repository root)"), checked on the source with
:mod:`ast` (nothing is imported): every package imports only what the table's "may import"
column allows, and nothing imports ``terminal/``.

Every import counts, at any depth of a module: lazy imports inside functions, imports under
``if TYPE_CHECKING:`` and ``importlib.import_module("…")`` with a literal name. The table, as
the test reads it (:data:`LAYERS`):

========================  =============================================  =====================
package                   may import (project)                           third-party
========================  =============================================  =====================
``apdu/``                 —                                              cryptography
``ecard/``                ``apdu`` (errors)                              cryptography, cbor2
``drivers/``              ``apdu``, ``config``                           (any)
``drivers/virtual/``      ``apdu``, ``drivers``                          (any)
``offline_store/``        ``apdu`` (errors)                              — (sqlite3)
``sync/``                 ``offline_store``, ``ecard``, ``config``       (any)
``platform_server/``      ``sync`` (signing), ``ecard``,                 (any)
                          ``offline_store`` codecs, ``apdu``'s
                          purse cryptography (the TAC check)
``terminal/``             everything below                               (any)
``config/``               —                                              pydantic
========================  =============================================  =====================

plus the project's three roots, which every package but ``config/`` (its own root,
:mod:`config.errors`) may use: the one error root, ``apdu.errors`` (STYLE.md: "One root,
``SscardError``"), ``apdu.resources`` (``Closing``, the base of what ``with`` closes) and
``apdu.faces`` (``lazy_getattr``, the ``__getattr__`` of a lazy package face).
A row that names no third-party library limits none; the standard library is always allowed,
but the pure packages (``apdu/``, ``ecard/``) do no I/O, so not its sockets, child processes or
SQLite. What the code needs beyond the table is listed, with its reason, in
:data:`BEYOND_THE_TABLE`: each entry must still be needed (the list can only shrink), and
anything not listed there or in the table fails.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOTS = frozenset({"apdu.errors", "apdu.faces", "apdu.resources"})
#: stdlib modules that are I/O, which the pure packages never import
IO_STDLIB = frozenset({"socket", "subprocess", "sqlite3", "ssl", "http", "urllib", "asyncio"})


@dataclass(frozen=True)
class Layer:
    """One row of the DESIGN.md table.

    :param project: the project modules it may import (a package, or a module of one)
    :param third_party: the third-party top-level names it may import; ``None``: any
    :param pure: no I/O (the stdlib's sockets, child processes and SQLite are out too)
    :param error_root: it may import the roots (``apdu.errors``, ``apdu.faces``,
        ``apdu.resources``)
    """

    project: tuple[str, ...]
    third_party: frozenset[str] | None = None
    pure: bool = False
    error_root: bool = True


#: the offline store's codecs (file formats, canonical ids, the hash chain), not the store
OFFLINE_STORE_CODECS = (
    "offline_store.catalogue",
    "offline_store.chain",
    "offline_store.denyfile",
    "offline_store.errors",
    "offline_store.identity",
    "offline_store.payment_object",
)
#: the card's purchase cryptography the platform checks every TAC with (issue 15): pure apdu
TAC_CHECK = ("apdu.crypto", "apdu.purse", "apdu.payment", "apdu.medical_payment")
LAYERS: dict[str, Layer] = {
    "apdu": Layer((), frozenset({"cryptography"}), pure=True),
    "ecard": Layer(("apdu.errors",), frozenset({"cryptography", "cbor2"}), pure=True),
    "drivers": Layer(("apdu", "config")),
    "drivers/virtual": Layer(("apdu", "drivers")),
    "offline_store": Layer(("apdu.errors",), frozenset()),
    "sync": Layer(("offline_store", "ecard", "config")),
    "platform_server": Layer(("sync.auth", "ecard", *OFFLINE_STORE_CODECS, *TAC_CHECK)),
    "terminal": Layer(
        ("apdu", "ecard", "drivers", "offline_store", "sync", "platform_server", "config")
    ),
    "config": Layer((), frozenset({"pydantic", "pydantic_core"}), error_root=False),
}
PROJECT = frozenset(name.split("/")[0] for name in LAYERS)

#: (package, what it imports) → why the code needs it, though the table does not list it
BEYOND_THE_TABLE: dict[tuple[str, str], str] = {
    ("ecard", "apdu.identity"): "the national code tables of holder categories and sexes "
    "(CATEGORY_NAMES, SEX_NAMES) the credential and the sealed identity carry",
    ("ecard", "tongsuopy"): "the native SM2 backend (cryptography has no SM2)",
    ("ecard", "pysmx"): "the pure-Python SM2 backend (cryptography has no SM2)",
    ("offline_store", "cryptography"): "Ed25519 signatures of deny lists, AES-GCM of the "
    "journal's personal fields",
    ("drivers/virtual", "config"): "persona and PSAM files are read with config's TOML reader "
    "and schema, as drivers/ (whose part it is) may",
    ("drivers/virtual", "sync.wire"): "the reference HSM service parses request bodies with "
    "the one bounded JSON parser of both services",
    ("platform_server", "sync.wire"): "the bounded JSON parser and log quoting of the wire "
    "format, shared with the client",
    ("platform_server", "sync.status"): "the card-status answer of the protocol, shared with "
    "the client",
    ("platform_server", "sync.deferred"): "the hash of a deferred e-card code, which client "
    "and platform must compute alike",
    ("platform_server", "apdu.identity"): "the masking of card numbers in the operator "
    "commands' output",
}


def imported_modules(source: str, *, when: str = "ever") -> set[str]:
    """The absolute module names a module imports.

    Covers ``import a.b``, ``from a.b import c`` (and ``from a import b``, which may import
    the module ``a.b``, or a name a lazy package face hands on from its module: the module is
    listed too) and ``importlib.import_module("a.b")`` or ``__import__("a.b")`` with a literal
    name. Relative imports stay inside their package and are left out.

    :param source: the module's source text
    :param when: ``ever`` (at any depth, ``if TYPE_CHECKING:`` included), ``runtime`` (at any
        depth, ``if TYPE_CHECKING:`` left out) or ``import`` (what importing the module runs:
        not inside functions, not under ``if TYPE_CHECKING:``)
    """
    names: set[str] = set()
    for node in _walk(ast.parse(source), when):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module.split(".")[0] in PROJECT:
                faces = _face(node.module)
                for alias in node.names:
                    names.add(f"{node.module}.{alias.name}")
                    if alias.name in faces:
                        names.add(faces[alias.name])
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
    return {name for name in names if _exists(name) or name.split(".")[0] not in PROJECT}


def _walk(tree: ast.AST, when: str) -> list[ast.AST]:
    """The nodes of a module that run ``when`` (see :func:`imported_modules`)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if when != "ever" and isinstance(child, ast.If) and _type_checking(child):
                todo.extend(child.orelse)
                continue
            if when == "import" and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            todo.append(child)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", "") == "TYPE_CHECKING" or getattr(test, "attr", "") == (
        "TYPE_CHECKING"
    )


def _face(package: str) -> dict[str, str]:
    """What a lazy package face hands on (its ``_EXPORTS``: name → module), or nothing."""
    init = ROOT / package.replace(".", "/") / "__init__.py"
    if not init.exists():
        return {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(getattr(t, "id", "") == "_EXPORTS" for t in targets):
            exports: dict[str, str] = ast.literal_eval(node.value)  # type: ignore[attr-defined]
            return exports
    return {}


def _exists(name: str) -> bool:
    """Whether a dotted name is a module or package of the project (``a.b`` in ``from a
    import b`` may be a function instead)."""
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _top_level(name: str) -> str:
    return name.split(".", 1)[0]


def _package_of(path: Path) -> str:
    """The table's row of a source file (``drivers/virtual`` is a row of its own)."""
    parts = path.relative_to(ROOT).parts
    if parts[:2] == ("drivers", "virtual"):
        return "drivers/virtual"
    return parts[0]


def _sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if _package_of(p) == package)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _allowed(package: str, name: str) -> bool:
    """Whether the table lets ``package`` import the project module ``name``."""
    layer = LAYERS[package]
    if layer.error_root and (name in ROOTS or name == "apdu"):
        return True  # ``from apdu.errors import …`` names the package apdu too
    own = package.replace("/", ".")
    if name == own or name.startswith(own + "."):
        return True
    return any(name == m or name.startswith(m + ".") for m in layer.project)


def _beyond(package: str, name: str) -> str | None:
    for (where, what), _why in BEYOND_THE_TABLE.items():
        if where == package and (name == what or name.startswith(what + ".")):
            return what
    return None


def _violations(package: str, path: Path) -> tuple[list[str], set[str]]:
    """What a module imports against the table, and the :data:`BEYOND_THE_TABLE` entries it
    uses."""
    layer = LAYERS[package]
    wrong, used = [], set()
    for name in sorted(imported_modules(path.read_text(encoding="utf-8"))):
        top = _top_level(name)
        if top in PROJECT:
            if name.startswith("drivers.virtual") and package == "drivers":
                wrong.append(name)  # drivers/ sits below its emulators
                continue
            if _allowed(package, name):
                continue
        elif top in sys.stdlib_module_names or top == "__future__":
            if not (layer.pure and top in IO_STDLIB):
                continue
        elif layer.third_party is None or top in layer.third_party:
            continue
        beyond = _beyond(package, name)
        if beyond is not None:
            used.add(beyond)
            continue
        wrong.append(name)
    return wrong, used


# -- the walker ---------------------------------------------------------------------------------


def test_the_walker_sees_imports_of_every_form() -> None:
    source = (
        "import os.path\n"
        "from apdu.tlv import parse_simple\n"
        "from apdu import ssc\n"
        "from . import sibling\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from offline_store import Store\n"
        "def lazy():\n"
        "    import smartcard.scard\n"
        "    importlib.import_module('serial.tools')\n"
        "    __import__('cv2')\n"
    )
    assert imported_modules(source) == {
        "os.path",
        "apdu.tlv",
        "apdu",
        "apdu.ssc",
        "typing",
        "offline_store",
        "offline_store.store",
        "smartcard.scard",
        "serial.tools",
        "cv2",
    }


def test_the_walk_finds_every_package_and_its_files() -> None:
    for package in LAYERS:
        assert _sources(package), package
    assert "drivers/virtual/hsm_service.py" in {_id(p) for p in _sources("drivers/virtual")}
    assert not {_id(p) for p in _sources("drivers")} & {"drivers/virtual/card.py"}
    assert "apdu.tlv" in imported_modules(
        (ROOT / "apdu" / "records.py").read_text(encoding="utf-8")
    )


def test_a_layer_break_is_found() -> None:
    """The check itself fails on what the table forbids (so a pass says something)."""
    probe = ROOT / "ecard" / "format.py"
    assert _package_of(probe) == "ecard"
    assert not _allowed("ecard", "config.settings")
    assert not _allowed("drivers/virtual", "sync.client")
    assert not _allowed("platform_server", "sync.client")
    assert not _allowed("platform_server", "offline_store.store")
    assert not _allowed("sync", "terminal.pipeline")
    assert not _allowed("config", "apdu.errors")
    assert not _allowed("ecard", "apdu.ssc")
    assert _allowed("offline_store", "apdu.resources")
    assert _allowed("platform_server", "offline_store.denyfile")
    assert _allowed("terminal", "platform_server.cli")


# -- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "path"),
    [pytest.param(package, path, id=_id(path)) for package in LAYERS for path in _sources(package)],
)
def test_every_module_imports_only_what_its_layer_may(package: str, path: Path) -> None:
    wrong, _ = _violations(package, path)
    assert not wrong, f"{_id(path)} ({package}/) imports {wrong}: not in DESIGN.md's layout"


def test_nothing_imports_the_terminal() -> None:
    """DESIGN.md: "nothing imports ``terminal/``" (the application composes; nothing below it
    reaches up)."""
    offending = [
        f"{_id(path)}: {name}"
        for package in LAYERS
        if package != "terminal"
        for path in _sources(package)
        for name in imported_modules(path.read_text(encoding="utf-8"))
        if _top_level(name) == "terminal"
    ]
    assert not offending, offending


def test_every_exception_to_the_table_is_still_needed() -> None:
    """An entry of :data:`BEYOND_THE_TABLE` that no module uses any more goes (so the list only
    shrinks as the code comes to fit the table)."""
    used: set[tuple[str, str]] = set()
    for package in LAYERS:
        for path in _sources(package):
            _, beyond = _violations(package, path)
            used.update((package, what) for what in beyond)
    assert set(BEYOND_THE_TABLE) - used == set()


# -- the decision path --------------------------------------------------------------------------


def _project_closure(start: str, when: str) -> set[str]:
    """Every module a project module imports (``runtime`` or at ``import``: see
    :func:`imported_modules`), transitively through the project's own modules (third-party
    and stdlib modules are listed but not followed)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if _top_level(name) not in PROJECT:
            continue
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        if not path.exists():
            continue
        todo.extend(imported_modules(path.read_text(encoding="utf-8"), when=when))
        parent = name.rsplit(".", 1)[0]
        if parent != name:
            todo.append(parent)  # importing a.b runs a/__init__.py
    return seen


def test_the_decision_path_imports_no_sync_code_and_no_http_client() -> None:
    """The pipeline decides offline: it sees the platform through a small protocol
    (terminal.list_policy.PlatformLink), never through requests or any module of sync/."""
    closure = _project_closure("terminal.pipeline", "runtime")
    assert "offline_store.freshness" in closure  # the walk follows the project's imports
    offending = sorted(
        n for n in closure if _top_level(n) in {"requests", "urllib3", "httpx", "sync"}
    )
    assert not offending, f"terminal.pipeline reaches {offending}"


def test_sscard_starts_without_the_heavy_libraries() -> None:
    """Registering the commands loads no command's libraries: each handler imports them when
    its command runs (the web stack, the store, the HTTP client, the card reader, OpenCV)."""
    closure = _project_closure("terminal.cli", "import")
    heavy = {"fastapi", "sqlalchemy", "uvicorn", "sqlite_utils", "requests", "smartcard", "cv2"}
    assert not {_top_level(n) for n in closure} & heavy
    assert "terminal.cli.tap" in closure and "platform_server.cli" in closure
