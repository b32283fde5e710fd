"""Never retain a card (Jiangxi §16), checked on the source with :mod:`ast`: every command APDU the
project's non-test code can build for a card is read-only or holder-initiated
(:mod:`apdu.card_commands`), none writes, blocks or locks, CHANGE PIN is reachable from
``sscard pin change`` alone, and nothing reaches a card except through the command builder.

The emulators under ``drivers/virtual/`` answer commands and build none for a real card; the
PSAM's commands go to the PSAM, the terminal's own security module, and are checked apart;
``CommandApdu.with_le`` copies a command already built.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from apdu.card_commands import (
    FORBIDDEN,
    HOLDER_INITIATED,
    READ_ONLY,
    allowed,
    forbidden,
)
from terminal.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
NOT_CODE = frozenset({"tests", "docs", "build", "dist"})
EMULATORS = "drivers/virtual/"
#: sources whose commands go to the PSAM (the terminal's own module), and what they may send
PSAM_SOURCES = frozenset({"apdu/psam.py", "apdu/transit_psam.py"})
PSAM_SESSION = "PsamSession"
#: the session class each PSAM source builds its commands in
PSAM_SESSIONS = {"apdu/psam.py": PSAM_SESSION, "apdu/transit_psam.py": "TransitPsamSession"}
PSAM_COMMANDS = frozenset(
    {
        (0x00, 0xA4),  # SELECT the key environment and DF01
        (0xBF, 0xEC),  # INIT ENVIRONMENT
        (0xBF, 0xDE),  # DELIVER SESSION KEY
        (0x80, 0xFA),  # CIPHER DATA
        (0x80, 0x70),  # INIT SAM FOR PURCHASE (MAC1)
        (0x80, 0x72),  # CREDIT SAM FOR PURCHASE (MAC2 check)
        (0x00, 0xB0),  # READ BINARY: the terminal number in EF 0016
    }
)
#: the only place that may hand a card bytes it did not receive: the transport chain (which
#: forwards a built command, re-issues it with another Le, or asks GET RESPONSE)
TRANSMIT_CALLERS = frozenset({"apdu/transport.py"})
SCARD_TRANSMIT = frozenset({"drivers/pcsc.py"})
#: a copy of a command already built (the 6Cxx re-issue with another Le), not a new one
COPIES = frozenset({"apdu.command.CommandApdu.with_le"})
#: the electronic-card (QR) flow and the names through which code reaches a card
QR_SOURCES = ("terminal/ecard_flow.py", "ecard/", "terminal/cli/qr.py")
CARD_ACCESS = frozenset(
    {
        "transmit",
        "send",
        "send_card",
        "t0_chain",
        "PcscReader",
        "wait_for_card",
        "SscSession",
        "ScenarioRead",
        "MedicalSession",
        "read_medical",
        "verify_pin",
        "change_pin",
        "read_contents",
        "open_module",
    }
)


@dataclass
class Source:
    """One module of the project, parsed."""

    rel: str
    module: str
    tree: ast.Module
    constants: dict[str, ast.expr] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    classes: dict[str, dict[str, ast.expr]] = field(default_factory=dict)

    @classmethod
    def parse(cls, rel: str, text: str) -> Source:
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        source = cls(rel, module, ast.parse(text))
        for node in source.tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        source.constants[target.id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    source.imports[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    source.imports[alias.asname or alias.name] = (alias.name, None)
            elif isinstance(node, ast.ClassDef):
                source.classes[node.name] = {
                    t.id: item.value
                    for item in node.body
                    if isinstance(item, ast.Assign)
                    for t in item.targets
                    if isinstance(t, ast.Name)
                }
        return source


def _project_files() -> Iterator[Path]:
    for top in sorted(ROOT.iterdir()):
        if not top.is_dir() or top.name.startswith(".") or top.name in NOT_CODE:
            continue
        if top.name.endswith(".egg-info"):
            continue
        yield from sorted(top.rglob("*.py"))


@cache
def sources() -> dict[str, Source]:
    """Every non-test module of the project, by path relative to the root."""
    found = {}
    for path in _project_files():
        rel = str(path.relative_to(ROOT))
        found[rel] = Source.parse(rel, path.read_text(encoding="utf-8"))
    return found


@cache
def _by_module() -> dict[str, Source]:
    return {source.module: source for source in sources().values()}


def resolve(node: ast.expr, source: Source, depth: int = 0) -> int | None:
    """The integer a CLA or INS expression stands for, followed through names, imports and
    class attributes; ``None`` when the source does not say."""
    if depth > 8:
        return None
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        if node.id in source.constants:
            return resolve(source.constants[node.id], source, depth + 1)
        module, name = source.imports.get(node.id, ("", None))
        target = _by_module().get(module)
        if target is not None and name is not None:
            return resolve(ast.Name(name), target, depth + 1)
        return None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = node.value.id
        if owner in source.classes and node.attr in source.classes[owner]:
            return resolve(source.classes[owner][node.attr], source, depth + 1)
        module, name = source.imports.get(owner, ("", None))
        dotted = module if name is None else f"{module}.{name}"
        target = _by_module().get(dotted)
        if target is not None:
            return resolve(ast.Name(node.attr), target, depth + 1)
    return None


@dataclass(frozen=True)
class Built:
    """One ``CommandApdu(...)`` in the source."""

    rel: str
    line: int
    function: str  # module.qualname of the enclosing function, or the module
    cla: int | None
    ins: int | None

    def where(self) -> str:
        return f"{self.rel}:{self.line} ({self.function})"


def _functions(source: Source) -> Iterator[tuple[str, ast.AST]]:
    """(qualified name, node) of every function, and of the module for top-level code."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}.{child.name}"
                yield name, child
                yield from walk(child, name)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}.{child.name}")

    yield from walk(source.tree, source.module)


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, without those of the functions it defines."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield child
        yield from _own_nodes(child)


def _module_level(source: Source) -> Iterator[ast.AST]:
    return _own_nodes(source.tree)


def _units(source: Source) -> Iterator[tuple[str, Iterator[ast.AST]]]:
    yield f"{source.module}.<module>", _module_level(source)
    for name, node in _functions(source):
        yield name, _own_nodes(node)


def _arg(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    if len(call.args) > index and not any(isinstance(a, ast.Starred) for a in call.args):
        return call.args[index]
    return None


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def built_commands(source: Source) -> list[Built]:
    """Every ``CommandApdu(...)`` a module builds, with its CLA and INS where known."""
    found = []
    for function, nodes in _units(source):
        for node in nodes:
            if isinstance(node, ast.Call) and _called(node) == "CommandApdu":
                cla, ins = _arg(node, 0, "cla"), _arg(node, 1, "ins")
                found.append(
                    Built(
                        source.rel,
                        node.lineno,
                        function,
                        None if cla is None else resolve(cla, source),
                        None if ins is None else resolve(ins, source),
                    )
                )
    return found


def card_commands() -> list[Built]:
    """What the non-test code builds for a holder's card (not the emulators, not the PSAM)."""
    return [
        built
        for rel, source in sources().items()
        if not rel.startswith(EMULATORS) and rel not in PSAM_SOURCES
        for built in built_commands(source)
        if built.function not in COPIES
    ]


def _names(nodes: Iterator[ast.AST]) -> set[str]:
    """The names a body calls or mentions; a function registered as a command's handler
    (``set_defaults(handler=f)``) is an entry point, not a use."""
    names = set()
    registered = set()
    for node in nodes:
        if isinstance(node, ast.keyword) and node.arg == "handler":
            registered.add(id(node.value))
        elif isinstance(node, ast.Name) and id(node) not in registered:
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    return names


@cache
def _users_index() -> dict[str, frozenset[str]]:
    """name → the functions (or ``module.<module>``) of non-test code that use it."""
    index: dict[str, set[str]] = {}
    for rel, source in sources().items():
        if rel.startswith(EMULATORS):
            continue
        for function, nodes in _units(source):
            for name in _names(nodes):
                index.setdefault(name, set()).add(function)
    return {name: frozenset(users) for name, users in index.items()}


def _uses(name: str) -> frozenset[str]:
    """The functions (or ``module.<module>``) that call or mention ``name``."""
    return _users_index().get(name, frozenset())


def entry_points(function: str) -> set[str]:
    """The functions nothing in the project calls or mentions that lead to ``function``
    (by name: two functions of one name count as one, which can only add entry points)."""
    roots, seen, todo = set(), {function}, [function]
    while todo:
        current = todo.pop()
        users = _uses(current.rsplit(".", 1)[1]) - {current}
        if not users:
            roots.add(current)
        for user in users - seen:
            seen.add(user)
            todo.append(user)
    return roots


# -- the finder itself -------------------------------------------------------------------------


def test_the_finder_resolves_literals_names_imports_and_class_attributes() -> None:
    source = Source.parse(
        "x/probe.py",
        "from apdu.pin import INS_VERIFY\n"
        "from apdu import files\n"
        "from enum import IntEnum\n"
        "CLA = 0x84\n"
        "ALIAS = CLA\n"
        "class Ins(IntEnum):\n"
        "    CARD_BLOCK = 0x16\n"
        "def a(c):\n"
        "    c.send(CommandApdu(0x00, 0xD6, 0, 0, b'x'))\n"
        "def b():\n"
        "    return CommandApdu(ALIAS, Ins.CARD_BLOCK, 0, 0)\n"
        "def c():\n"
        "    return CommandApdu(cla=0, ins=INS_VERIFY, p1=0, p2=0)\n"
        "def d():\n"
        "    return CommandApdu(files.CLA_ISO, files.INS_READ_RECORD, 1, 0)\n"
        "def e(ins):\n"
        "    return CommandApdu(0x00, ins, 0, 0)\n",
    )
    found = [(b.function, b.cla, b.ins) for b in built_commands(source)]
    assert found == [
        ("x.probe.a", 0x00, 0xD6),
        ("x.probe.b", 0x84, 0x16),
        ("x.probe.c", 0x00, 0x20),
        ("x.probe.d", 0x00, 0xB2),
        ("x.probe.e", 0x00, None),
    ]
    assert forbidden(0x00, 0xD6) and forbidden(0x84, 0x16)


def test_the_finder_sees_the_projects_card_commands() -> None:
    sites = {b.function for b in card_commands()}
    # the emulators answer commands; they never build one for a card
    assert not any(f.startswith("drivers.virtual") for f in sites)
    assert {
        "apdu.ssc.SscSession.change_pin",
        "apdu.ssc.SscSession.verify_pin",
        "apdu.ssc.SscSession.get_challenge",
    } <= sites


# -- the policy --------------------------------------------------------------------------------


def test_every_command_built_for_a_card_is_read_only_or_holder_initiated() -> None:
    built = card_commands()
    unknown = [b.where() for b in built if b.cla is None or b.ins is None]
    assert not unknown, f"cannot tell which command these build (use named constants): {unknown}"
    refused = [
        f"{b.where()}: {b.cla:02X} {b.ins:02X} {hit.name}"
        for b in built
        if b.cla is not None and b.ins is not None and (hit := forbidden(b.cla, b.ins))
    ]
    assert not refused, f"commands that write to, block or lock a card: {refused}"
    unlisted = [
        f"{b.where()}: {b.cla:02X} {b.ins:02X}"
        for b in built
        if b.cla is not None and b.ins is not None and allowed(b.cla, b.ins) is None
    ]
    assert not unlisted, (
        f"commands outside apdu/card_commands.py READ_ONLY and HOLDER_INITIATED: {unlisted}"
    )
    # and no entry of the lists is left without code: an unused permission is a loophole
    used = {(b.cla, b.ins) for b in built}
    listed = {(c.cla, c.ins) for c in (*READ_ONLY, *HOLDER_INITIATED)}
    assert used == listed


def test_the_lists_forbid_every_write_block_and_lock_and_allow_none_of_them() -> None:
    for entry in (*READ_ONLY, *HOLDER_INITIATED):
        assert forbidden(entry.cla, entry.ins) is None, entry.name
    never = [
        (0x00, 0xD6),  # UPDATE BINARY
        (0x04, 0xD6),  # … with secure messaging
        (0x00, 0xDC),  # UPDATE RECORD
        (0x04, 0xDC),
        (0x00, 0xE2),  # APPEND RECORD
        (0x00, 0xD0),  # WRITE BINARY
        (0x00, 0x0E),  # ERASE BINARY
        (0x84, 0x1E),  # APPLICATION BLOCK
        (0x80, 0x1E),
        (0x84, 0x16),  # CARD BLOCK
        (0x84, 0x18),  # APPLICATION UNBLOCK (issuer)
        (0x00, 0x2C),  # RESET RETRY COUNTER
        (0x00, 0x24),  # CHANGE REFERENCE DATA
        (0x84, 0x24),  # PIN CHANGE/UNBLOCK (issuer reload)
        (0x80, 0xDC),  # UPDATE CAPP DATA CACHE
        (0x80, 0x52),  # CREDIT FOR LOAD
        (0xB0, 0x2A),  # medical CREDIT FOR LOAD
        (0x00, 0xFE),  # TERMINATE CARD USAGE
    ]
    for cla, ins in never:
        assert forbidden(cla, ins) is not None, f"{cla:02X} {ins:02X}"
        assert allowed(cla, ins) is None
    # payments are holder-initiated, each reached through the purchase flow; never read-only
    read_only = {(c.cla, c.ins) for c in READ_ONLY}
    for cla, ins in ((0x80, 0x54), (0x80, 0x50), (0xB0, 0x2C), (0xB0, 0x28)):
        entry = allowed(cla, ins)
        assert entry in HOLDER_INITIATED and (cla, ins) not in read_only
        assert entry.through and all(t.startswith("apdu.purchase.") for t in entry.through)
    assert len({(f.ins, f.clas) for f in FORBIDDEN}) == len(FORBIDDEN)


def entry_points_through(function: str, gates: frozenset[str]) -> set[str]:
    """Like :func:`entry_points`, but a path ends at a gate: the roots found are the gates
    reached and any entry point some path reaches without passing one."""
    roots, seen, todo = set(), {function}, [function]
    while todo:
        current = todo.pop()
        if current in gates:
            roots.add(current)
            continue
        users = _uses(current.rsplit(".", 1)[1]) - {current}
        if not users:
            roots.add(current)
        for user in users - seen:
            seen.add(user)
            todo.append(user)
    return roots


@pytest.mark.parametrize("holder", HOLDER_INITIATED, ids=lambda h: h.name)
def test_a_holder_initiated_command_is_reached_from_its_own_command_only(holder) -> None:
    if not holder.command:
        # no command of its own yet: every path from an entry point passes through the flow
        gates = frozenset(holder.through)
        sites = {b.function for b in card_commands() if (b.cla, b.ins) == (holder.cla, holder.ins)}
        assert sites and gates, f"no code builds {holder.name}, or it names no gate"
        for site in sites:
            roots = entry_points_through(site, gates)
            assert roots and roots <= gates, (
                f"{holder.name} ({site}) is reachable from {roots - gates}, not only "
                f"through {sorted(gates)}"
            )
        return
    handler = build_parser().parse_args(list(holder.command)).handler
    expected = {f"{handler.__module__}.{handler.__qualname__}"}
    sites = {b.function for b in card_commands() if (b.cla, b.ins) == (holder.cla, holder.ins)}
    assert sites, f"no code builds {holder.name}"
    for site in sites:
        assert entry_points(site) == expected, (
            f"{holder.name} ({site}) is reachable from {entry_points(site)}, "
            f"not only from `sscard {' '.join(holder.command)}`"
        )


def test_the_reachability_walk_finds_several_entry_points_where_there_are_several() -> None:
    # VERIFY is reached from the PIN command, taps, and the local API's helpers alike
    roots = entry_points("apdu.ssc.SscSession.verify_pin")
    assert "terminal.cli.pin.cmd_pin" in roots and len(roots) > 1


def test_the_psam_commands_go_to_the_psam_only() -> None:
    for rel in PSAM_SOURCES:
        built = built_commands(sources()[rel])
        assert built and all(f".{PSAM_SESSIONS[rel]}." in b.function for b in built), rel
        assert {(b.cla, b.ins) for b in built} <= PSAM_COMMANDS, rel
    for session in PSAM_SESSIONS.values():
        makers = _uses(session)
        assert makers and all(m.startswith(("apdu.psam.", "apdu.transit_psam.")) for m in makers)


def _forwards(function: ast.AST, call: ast.Call) -> bool:
    """Whether ``call`` hands on, unchanged, the bytes its enclosing ``transmit`` was given."""
    if not isinstance(function, ast.FunctionDef) or function.name != "transmit":
        return False
    params = [a.arg for a in function.args.args if a.arg != "self"]
    return (
        len(call.args) == 1
        and isinstance(call.args[0], ast.Name)
        and params[:1] == [call.args[0].id]
    )


def test_nothing_reaches_a_card_but_a_built_command() -> None:
    """Bytes reach a card only from the transport chain (a built command, the same command
    with another Le, or GET RESPONSE); any other ``transmit`` call is a connection wrapper that
    hands on what it was given (the PSAM's reconnecting connection, for one)."""
    crafted, scard, reparsed = set(), set(), set()
    for rel, source in sources().items():
        if rel.startswith(EMULATORS):
            continue
        units = [(f"{source.module}.<module>", source.tree, _module_level(source))]
        units += [(name, node, _own_nodes(node)) for name, node in _functions(source)]
        for function, owner, nodes in units:
            for node in nodes:
                if not isinstance(node, ast.Call):
                    continue
                called = _called(node)
                if called == "transmit" and rel not in TRANSMIT_CALLERS:
                    if not _forwards(owner, node):
                        crafted.add(f"{rel}:{node.lineno} ({function})")
                elif called == "SCardTransmit":
                    scard.add(rel)
                elif called in {"parse", "with_le"} and "CommandApdu" in ast.unparse(node.func):
                    reparsed.add(rel)
    assert not crafted, f"bytes sent outside the transport chain: {sorted(crafted)}"
    assert scard <= SCARD_TRANSMIT, scard
    assert reparsed <= TRANSMIT_CALLERS, reparsed


def test_no_reader_is_told_to_keep_a_card() -> None:
    """Motorised kiosk readers capture a card into their bin on a vendor escape command
    (``SCardControl``); PC/SC's own dispositions leave, reset, unpower or eject the card. The
    terminal sends no escape command and lets go of a card only in one of those ways."""
    dispositions = set()
    for rel, source in sources().items():
        if rel.startswith(EMULATORS):
            continue
        for function, nodes in _units(source):
            for node in nodes:
                if isinstance(node, ast.Call) and _called(node) == "SCardControl":
                    pytest.fail(f"{function} sends a reader escape command (SCardControl)")
                if isinstance(node, ast.Call) and _called(node) == "SCardDisconnect":
                    dispositions.add(ast.unparse(node.args[1]).rsplit(".", 1)[-1])
    assert dispositions and dispositions <= {
        "SCARD_LEAVE_CARD",
        "SCARD_RESET_CARD",
        "SCARD_UNPOWER_CARD",
        "SCARD_EJECT_CARD",
    }, dispositions


def test_the_e_card_flow_never_talks_to_a_card() -> None:
    """Electronic cards are decided from the code alone: the QR flow opens no reader, builds no
    card session and sends nothing, so there is no card for it to retain."""
    qr = [s for rel, s in sources().items() if rel.startswith(QR_SOURCES)]
    assert len(qr) > 3
    for source in qr:
        for function, nodes in _units(source):
            reached = _names(nodes) & CARD_ACCESS
            assert not reached, f"{function} reaches a card through {sorted(reached)}"
