"""Values that arrive from a client, read strictly and shown safely: the one bounded JSON
parser of every request body (the platform's and the HSM service's), ASCII-only decimal
numbers, and the quoting of any request-derived value in a log line.

Why each rule exists (issue 10, findings 6 and 7):

* ``json.loads`` recurses once per nesting level: a 60 KB body of ``[`` raised
  ``RecursionError`` inside a handler (a 500). :func:`load_json` measures the nesting on the
  bytes first — escapes and strings dropped, brackets counted, all in C loops, no recursion —
  and refuses a body deeper than :data:`MAX_JSON_DEPTH`, over its size limit, not UTF-8,
  holding ``NaN``/``Infinity``/a number out of float range, or a lone UTF-16 surrogate (which
  no database driver can store).
* ``str.isdigit()`` is true for ``"²"``, ``"٣"`` and ``"４"``, which ``int()`` then refuses
  (or accepts as another number); a 5000-digit string passes ``isdigit()`` and ``int()``
  raises. :func:`ascii_uint` takes 1 to :data:`MAX_DIGITS` ASCII digits and nothing else.
* A decoded path may hold ``\\n`` (``%0a``) and a header may hold ESC: logged as received they
  forge log lines or drive the operator's terminal. :func:`quote` renders any value on one
  line, in double quotes, with every character that is not printable escaped and the length
  capped.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate, repeat
from operator import sub
from typing import Any

from apdu.errors import SscardError

__all__ = [
    "CATEGORY",
    "CONTROL",
    "HEX64",
    "ISO_DATE",
    "MAX_DIGITS",
    "MAX_JSON_DEPTH",
    "QUOTE_LIMIT",
    "REGION",
    "SCENARIO",
    "TERMINAL_ID",
    "MalformedBody",
    "ascii_uint",
    "json_depth",
    "load_json",
    "quote",
]

MAX_JSON_DEPTH = 32  # the deepest document of either contract nests 4 levels (a batch row's list)
MAX_DIGITS = 18  # every such number fits in a signed 64-bit integer
QUOTE_LIMIT = 120  # characters of a value shown in a log line

BAD_JSON = "bad_json"
TOO_LARGE = "too_large"

# the field formats of both contracts (docs/sync.md), read with fullmatch (CONTROL: search)
HEX64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 in lowercase hex: row hashes, tokens
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # YYYY-MM-DD
REGION = re.compile(r"[0-9]{6}")  # a six-digit region code (行政区划代码)
SCENARIO = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # a scenario's name (gate, bus …)
TERMINAL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # a terminal id (docs/sync.md §3), a key id
CATEGORY = re.compile(r"[1-4]")  # an e-card's category digit
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a control character: refused in free text

_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))  # deleted: all but these
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # minus 1: +1 open, -1 close
# a \uD800-\uDFFF escape: only then can the parsed document hold a lone surrogate
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


class MalformedBody(SscardError):
    """A request body refused before any handler looks at it.

    :param status: the HTTP status to answer (400, or 413 for a body over its limit)
    :param code: the reason code (``bad_json`` or ``too_large``)
    :param message: one line naming what is wrong (never the body's content)
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects, without parsing it (no recursion).

    Brackets inside strings do not count. For a text that is not JSON, this count and a
    parser agree on where strings start and end up to the parser's first error, so the parser
    never nests deeper than the answer before it fails.

    :param body: the UTF-8 bytes
    :raises: nothing
    """
    # Inside a string every backslash starts a two-byte escape: drop escaped backslashes, then
    # escaped quotes, and every quote left delimits a string (UTF-8 never uses these bytes
    # inside a multi-byte character). Every step is a C loop over the bytes.
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _STRUCTURE)
    outside = b"".join(plain.split(b'"')[::2]).translate(_BRACKET_STEP)
    return max(0, max(accumulate(map(sub, outside, repeat(1))), default=0))


def load_json(body: bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a request body as JSON, within bounds; the only way a body becomes a document.

    :param body: the body bytes
    :param max_bytes: the largest body accepted
    :param max_depth: the deepest nesting accepted
    :returns: the document
    :raises MalformedBody: 413 ``too_large`` over ``max_bytes``; 400 ``bad_json`` for a body
        that is not UTF-8, nests deeper than ``max_depth``, is not JSON, holds ``NaN``,
        ``Infinity`` or a number out of range, or a lone surrogate
    """
    if len(body) > max_bytes:
        raise MalformedBody(413, TOO_LARGE, f"the body is over {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(400, BAD_JSON, f"the body is not UTF-8 (byte {exc.start})") from None
    depth = json_depth(body)
    if depth > max_depth:
        raise MalformedBody(400, BAD_JSON, f"the body nests deeper than {max_depth} levels")
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen below the depth
        raise MalformedBody(400, BAD_JSON, f"the body is not JSON: {_one_line(exc)}") from None
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedBody(400, BAD_JSON, "the body holds a lone UTF-16 surrogate") from None
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of the range of a double")
    return value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:100]


def ascii_uint(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """A non-negative decimal integer written in 1 to ``max_digits`` ASCII digits.

    :param text: the text (a header, a query value …)
    :param max_digits: the most digits taken
    :returns: the number, or ``None`` for anything else (signs, spaces, other digits such as
        ``"²"`` or ``"٣"``, too many digits)
    :raises: nothing
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """Render a request-derived value for a ``key=value`` log line: in double quotes, one line,
    every character that is not printable escaped (``\\n``, ``\\x1b``, ``\\u202e``), cut at
    ``limit`` characters with ``…`` after the closing quote.

    Bytes are shown as Latin-1 (as HTTP headers are decoded); other objects by ``str()``.

    :param value: the value
    :param limit: the most characters shown
    :raises: nothing
    """
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("latin-1")
    else:
        text = value if isinstance(value, str) else str(value)
    shown = "".join(_escape(char) for char in text[:limit])
    return f'"{shown}"' + ("…" if len(text) > limit else "")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
