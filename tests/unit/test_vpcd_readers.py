"""A pcscd with more than two vpcd readers (the daemon-kills campaign): each pair of slots is a
reader.conf entry with a name, a port pair and a copy of the driver library of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.virtual import pcscd
from drivers.virtual.pcscd import reader_name, write_reader_conf
from drivers.virtual.vpcd import vpcd_port


def test_the_first_two_slots_keep_the_system_entry_names() -> None:
    assert [reader_name(slot) for slot in range(4)] == [
        "Virtual PCD 00 00",
        "Virtual PCD 00 01",
        "Virtual PCD 1 00 00",
        "Virtual PCD 1 00 01",
    ]
    assert reader_name(7) == "Virtual PCD 3 00 01"


def test_each_entry_has_its_own_name_port_and_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "libifdvpcd.so"
    library.write_bytes(b"\x7fELF not really")
    monkeypatch.setattr(pcscd, "VPCD_LIBRARY", library)
    conf = write_reader_conf(tmp_path / "vpcd", 6)
    assert [p.name for p in conf.iterdir()] == ["vpcd"]  # pcscd reads every file there
    entries = (conf / "vpcd").read_text(encoding="utf-8").split("\n\n")
    fields = [dict(line.split(None, 1) for line in entry.splitlines()) for entry in entries]
    assert [f["FRIENDLYNAME"] for f in fields] == [
        '"Virtual PCD"',
        '"Virtual PCD 1"',
        '"Virtual PCD 2"',
    ]
    assert [int(f["CHANNELID"], 16) for f in fields] == [vpcd_port(slot) for slot in (0, 2, 4)]
    libraries = [Path(f["LIBPATH"].strip()) for f in fields]
    assert libraries[0] == library and len(set(libraries)) == 3
    assert all(copy.read_bytes() == library.read_bytes() for copy in libraries[1:])


@pytest.mark.parametrize("count", [1, 9])
def test_a_count_outside_two_to_eight_is_refused(tmp_path: Path, count: int) -> None:
    with pytest.raises(ValueError, match="2 to 8"):
        write_reader_conf(tmp_path, count)
