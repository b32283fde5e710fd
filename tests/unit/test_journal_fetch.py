"""The shape checks of :func:`sync.recovery.fetch_own_rows` on answers a platform should not
give: nothing is taken from a page that is not a page."""

from __future__ import annotations

from typing import Any

import pytest

from sync.errors import SyncProtocolError
from sync.recovery import fetch_own_rows


class PagesTransport:
    """Answers each GET with the next of ``pages``; records the queries."""

    def __init__(self, *pages: Any) -> None:
        self.pages = list(pages)
        self.queries: list[dict[str, str]] = []

    def request(self, method: str, path: str, **options: Any) -> tuple[None, Any]:
        assert (method, path) == ("GET", "/v1/journal")
        self.queries.append(options["query"])
        return None, self.pages.pop(0)


def _rows(*seqs: int) -> list[dict[str, str]]:
    return [{"seq": str(seq)} for seq in seqs]


def test_a_full_page_asks_again_after_its_last_seq() -> None:
    transport = PagesTransport(
        {"rows": _rows(4, 5), "more": True}, {"rows": _rows(6), "more": False}
    )
    assert fetch_own_rows(transport, 3, 9) == _rows(4, 5, 6)  # type: ignore[arg-type]
    assert transport.queries == [{"after": "3"}, {"after": "5"}]


@pytest.mark.parametrize(
    "page",
    [
        [],
        {"rows": _rows(4)},
        {"rows": _rows(4), "more": "no"},
        {"rows": [], "more": True},
        {"rows": _rows(3), "more": False},  # not after `after`
        {"rows": _rows(5, 4), "more": False},
        {"rows": [{"seq": 4}], "more": False},
        {"rows": [{"seq": "٤"}], "more": False},
        {"rows": ["4"], "more": False},
    ],
)
def test_a_page_of_the_wrong_shape_is_a_protocol_error(page: Any) -> None:
    with pytest.raises(SyncProtocolError):
        fetch_own_rows(PagesTransport(page), 3, 9)  # type: ignore[arg-type]
