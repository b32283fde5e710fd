"""config.tomlfile: one reader for every TOML file, whose every failure names the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from apdu.errors import SscardError
from config.tomlfile import MAX_DEPTH, parse_toml, read_toml, too_deep


class DocError(SscardError):
    """The error class a caller passes in."""


def test_depth_is_counted_through_tables_and_arrays() -> None:
    assert too_deep({"a": {"b": [1, [2]]}}, 3) is None
    assert too_deep({"a": {"b": [1, [2]]}}, 2) == "a.b[1]"
    assert too_deep({"a": {"b": []}}, 1) == "a.b"
    assert too_deep({"a": 1}, 0) is None and too_deep({"a": {}}, 0) == "a"


def test_the_deepest_document_allowed_parses_and_one_more_level_does_not() -> None:
    allowed = "a = " + "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_toml(allowed, "f.toml", DocError)
    deeper = "a = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(DocError, match=r"^f\.toml: a\[0\]\[0\]\[0\].*: nested deeper than 16"):
        parse_toml(deeper, "f.toml", DocError)


@pytest.mark.parametrize("depth", [300, 5000, 100_000])
def test_nesting_the_parser_cannot_follow_is_an_error_naming_the_file(depth: int) -> None:
    with pytest.raises(DocError, match=r"^f\.toml: ") as caught:
        parse_toml("a = " + "[" * depth + "]" * depth, "f.toml", DocError)
    assert "nested" in str(caught.value)


def test_read_names_the_file_for_each_failure(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_bytes(b"a = 1\nb = \xc3\n")
    with pytest.raises(DocError, match=rf"^{path}: not UTF-8 text \(line 2, byte 10\)$"):
        read_toml(path, DocError)
    path.write_bytes(b"a = 1\nb = \n")
    with pytest.raises(DocError, match=rf"^{path}: not valid TOML: .*\(at line 2, column 5\)$"):
        read_toml(path, DocError)
    path.write_bytes(b"# padding\n" * 6)
    with pytest.raises(DocError, match=rf"^{path}: larger than 59 bytes"):
        read_toml(path, DocError, max_bytes=59)
    assert read_toml(path, DocError, max_bytes=60) == {}


def test_read_says_what_it_could_not_read(tmp_path: Path) -> None:
    with pytest.raises(DocError, match=rf"^cannot read widget {tmp_path}/x\.toml: No such file"):
        read_toml(tmp_path / "x.toml", DocError, what="widget")
    with pytest.raises(DocError, match=r"^cannot read widget '.*x\\x00\.toml': .*no NUL"):
        read_toml(tmp_path / "x\x00.toml", DocError, what="widget")
