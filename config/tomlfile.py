"""TOML files read strictly: every way a file can be unreadable is one error naming the file.

The settings, the scenario profiles, key files and the virtual devices' files all go through
:func:`read_toml`. What it guards against, beyond a syntax error:

* ``tomllib`` recurses once per nested array or inline table, so ``a = [[[[…`` 5,000 deep
  raises :class:`RecursionError` from inside the parser, naming nothing. It is caught here and
  said with the file's name.
* Dotted keys and ``[a.b.c…]`` headers nest without recursion in the parser, but leave a
  document 5,000 levels deep that every later walk (a schema, a ``repr`` in a message) recurses
  into. The parsed document's depth is bounded (:data:`MAX_DEPTH`), and the error names the
  dotted key where it goes too deep.
* A file that is not UTF-8 is named with the line of the first bad byte; a file far larger than
  any of these documents (:data:`MAX_BYTES`) is refused before it is read whole.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

#: the deepest level a table or array may sit at; ours need 3 (``[[items]]`` ``regions = […]``)
MAX_DEPTH = 16
#: the largest file read; the largest of our documents is a few kilobytes
MAX_BYTES = 1 << 20
#: dotted-key parts shown when a document nests too deeply
SHOWN_PARTS = 8

E = TypeVar("E", bound=Exception)


def read_toml(
    path: str | Path,
    error: type[E],
    *,
    what: str = "file",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> dict[str, Any]:
    """Read and parse a TOML file.

    :param path: the file
    :param error: the exception class raised, with one message naming the file
    :param what: what the file is, for "cannot read …" (``settings file``, ``profile``)
    :param max_bytes: refuse a file larger than this
    :param max_depth: refuse a document nested deeper than this
    :raises E: unreadable, too large, not UTF-8, not TOML, or nested too deeply
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    except ValueError:  # the C library cannot be given a name with a NUL in it
        raise error(f"cannot read {what} {str(path)!r}: a file name holds no NUL") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes} bytes; is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: not UTF-8 text (line {line}, byte {exc.start})") from None
    return parse_toml(text, str(path), error, max_depth=max_depth)


def parse_toml(
    text: str, source: str, error: type[E], *, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """Parse TOML text, bounding its nesting.

    :param text: the document
    :param source: where it came from, first in every message
    :param error: the exception class raised
    :param max_depth: refuse a document nested deeper than this
    :raises E: not TOML, or nested too deeply
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise error(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib recurses per nested array or inline table; the stack unwound on the way here
        raise error(
            f"{source}: not valid TOML: arrays or inline tables nested too deeply "
            f"(at most {max_depth} levels)"
        ) from None
    deep = too_deep(data, max_depth)
    if deep is not None:
        raise error(f"{source}: {deep}: nested deeper than {max_depth} levels")
    return data


def too_deep(document: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Find where a parsed document nests deeper than allowed, without recursing.

    :param document: a parsed TOML or JSON document (tables, arrays, scalars)
    :param max_depth: the deepest level a table or array may sit at; the document is level 0,
        ``a`` in ``a = []`` level 1
    :returns: the dotted key (array items as ``[i]``) of the first table or array too deep, or
        ``None``
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        value, where = stack.pop()
        if isinstance(value, Mapping):
            children: list[tuple[str, Any]] = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            children = [(f"[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        if len(where) > max_depth:
            return _dotted(where)
        stack.extend((child, (*where, key)) for key, child in children)
    return None


def _dotted(parts: tuple[str, ...]) -> str:
    shown = parts[:SHOWN_PARTS]
    text = ".".join(shown).replace(".[", "[")
    return text + ".…" if len(parts) > SHOWN_PARTS else text
