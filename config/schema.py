"""The parts every TOML schema of the project is built from, and its one error format.

A schema is a tree of :class:`Table` models: unknown keys are refused, values are not coerced
(TOML has its own types: a quoted ``"5"`` is no number, ``1`` is no ``true``), floats are finite,
and nothing changes after validation. Each leaf says what it expects in words — numbers through
:func:`seconds` and :func:`whole`, which state their bounds; strings through validators that raise
:func:`expected` — so :func:`problems` can turn pydantic's :class:`~pydantic.ValidationError` into
lines a person can act on::

    /etc/sscard/terminal.toml: store.journal_cap_rows: expected a whole number from 1 to
    1000000000, got int 0
    /etc/sscard/terminal.toml: unknown key 'store.path'; expected one of ['database', …]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

#: problems listed in one error; the rest are counted
MAX_PROBLEMS = 10
#: characters of a wrong value quoted in a message
QUOTED_MAX = 60
#: ASCII control characters: NUL ends a C string (a path, a field of the national string), a
#: newline forges a log line; no setting or profile value needs one
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PATH_MAX = 4096  # Linux PATH_MAX, in bytes; counted here in characters
URL_MAX = 2048
URL_SCHEMES = ("http", "https")


class Table(BaseModel):
    """A TOML table: strict, closed, finite and frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def expected(what: str) -> PydanticCustomError:
    """The error a validator raises for a value it refuses.

    :param what: what the key takes, e.g. ``"a file path"``
    """
    return PydanticCustomError("expected", "expected {expected}", {"expected": what})


def seconds(default: float, most: float) -> Any:
    """A duration in seconds: finite, above 0, at most ``most``.

    :param default: the value when the key is absent
    :param most: the largest value taken
    """
    what = f"a number of seconds greater than 0 and at most {most:g}"
    return Field(default, gt=0, le=most, description=what)


def whole(default: int, least: int, most: int) -> Any:
    """A whole number from ``least`` to ``most``.

    :param default: the value when the key is absent
    :param least: the smallest value taken
    :param most: the largest value taken
    """
    return Field(default, ge=least, le=most, description=f"a whole number from {least} to {most}")


def flag(default: bool) -> Any:
    """``true`` or ``false``.

    :param default: the value when the key is absent
    """
    return Field(default, description="true or false")


def table(model: type[Table], name: str) -> Any:
    """A sub-table, empty when absent.

    :param model: its schema
    :param name: its key, for messages
    """
    return Field(default_factory=model, description=f"a table [{name}]")


def matching(pattern: re.Pattern[str], what: str) -> Callable[[object], str]:
    """A validator of strings the whole of which ``pattern`` matches, for ``PlainValidator``.

    :param pattern: the format
    :param what: what the key takes, in words (:func:`expected`)
    """

    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise expected(what)
        return value

    return check


def _path_text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > PATH_MAX or CONTROL.search(value):
        raise expected(f"a file path of at most {PATH_MAX} characters without control characters")
    return value


def _file_path(value: object, info: ValidationInfo) -> Path:
    path = Path(_path_text(value))
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not path.is_absolute():
        return Path(base_dir) / path
    return path


def _url(value: object) -> str:
    what = "an http:// or https:// URL with a host"
    if not isinstance(value, str) or len(value) > URL_MAX or CONTROL.search(value) or " " in value:
        raise expected(what)
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # .port raises above 65535
    except ValueError:
        raise expected(what) from None
    if parts.scheme not in URL_SCHEMES or not parts.hostname or not port_ok:
        raise expected(what)
    return value


#: a path kept as written (a serial device)
PathText = Annotated[str, PlainValidator(_path_text)]
#: a file path, taken from the document's folder when relative (validation context ``base_dir``)
FilePath = Annotated[Path, PlainValidator(_file_path)]
#: an http or https URL with a host (and a port from 1 to 65535, if any)
Url = Annotated[str, PlainValidator(_url)]


def dotted(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted key; a key holding a control character is quoted
    (an unknown key ``"a\\nb"`` must not start a new line in the message).

    :param loc: the location
    """
    parts = (str(part) for part in loc)
    return ".".join(repr(part) if CONTROL.search(part) else part for part in parts)


def problems(exc: ValidationError, source: str, root: type[BaseModel]) -> str:
    """Say what is wrong, one line per problem, each naming the file and the dotted key.

    :param exc: what pydantic found
    :param source: the file
    :param root: the schema the document was checked against
    """
    errors = exc.errors(include_url=False)
    lines = [f"{source}: {_problem(error, root)}" for error in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"{source}: … and {len(errors) - MAX_PROBLEMS} more")
    return "\n".join(lines)


def describe(value: object) -> str:
    """Name a value for a message: its TOML type and, for scalars, the value (shortened).

    :param value: what the file holds
    """
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    text = repr(value)
    if len(text) > QUOTED_MAX:
        text = text[: QUOTED_MAX - 1] + "…"
    return f"{type(value).__name__} {text}"


def _problem(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = dotted(error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        return f"unknown key {'.'.join(loc)!r}; expected one of {allowed}"  # repr escapes
    ctx = error.get("ctx") or {}
    what = ctx.get("expected") or _description(root, loc) or str(error["msg"])
    if error["type"] == "missing":  # its input is the table the key is missing from
        return f"{key}: missing; expected {what}"
    got = f", got {describe(error['input'])}" if "input" in error else ""
    return f"{key or '(document)'}: expected {what}{got}"


def _model_at(root: type[BaseModel], loc: tuple[str, ...]) -> type[BaseModel] | None:
    annotation: Any = root
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field is not None else None
        elif get_origin(annotation) in (list, tuple) and part.isdigit():
            annotation = get_args(annotation)[0]  # an array of tables: its item's schema
        else:
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _description(root: type[BaseModel], loc: tuple[str, ...]) -> str | None:
    if not loc or (loc[-1].isdigit() and _model_at(root, loc) is not None):
        return "a table"  # the document, or an item of an array of tables
    parent = _model_at(root, loc[:-1])
    field = parent.model_fields.get(loc[-1]) if parent is not None else None
    return field.description if field is not None else None
