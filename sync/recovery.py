"""Fetching the terminal's own journal rows back from the platform (``GET /v1/journal``,
docs/sync.md §5.8), page by page, for :func:`offline_store.recovery.plan_recovery` to check.

The platform's answer is trusted for its shape only: every row is checked against the chain
the store still vouches for before anything is kept.
"""

from __future__ import annotations

from typing import Any

from sync.answers import json_answer
from sync.errors import SyncProtocolError
from sync.transport import SignedTransport

__all__ = ["PATH_JOURNAL", "fetch_own_rows"]

PATH_JOURNAL = "/v1/journal"


def fetch_own_rows(
    transport: SignedTransport, after_seq: int, up_to_seq: int
) -> list[dict[str, Any]]:
    """The platform's rows of this terminal after ``after_seq``, up to ``up_to_seq`` (pages
    beyond it are not asked for), in the order received.

    :param transport: the terminal's signed transport
    :param after_seq: the last seq the store still vouches for
    :param up_to_seq: the last seq the terminal ever appended
    :raises SyncProtocolError: a page is not ``{"rows": [...], "more": bool}``, a row is not
        an object with a decimal ``seq`` above the page's ``after``, or a full page does not
        move on
    :raises SyncError: see :meth:`SignedTransport.request`
    """
    fetched: list[dict[str, Any]] = []
    after = after_seq
    while after < up_to_seq:
        _, page = transport.request(
            "GET", PATH_JOURNAL, query={"after": str(after)}, check=json_answer
        )
        rows, more = _page(page, after)
        fetched.extend(rows)
        if not more:
            break
        after = int(rows[-1]["seq"])
    return fetched


def _page(page: object, after: int) -> tuple[list[dict[str, Any]], bool]:
    """A page's rows and ``more``, its shape checked."""
    if not isinstance(page, dict) or set(page) != {"rows", "more"}:
        raise SyncProtocolError("the journal page must be an object with rows and more")
    rows, more = page["rows"], page["more"]
    if not isinstance(rows, list) or not isinstance(more, bool) or (more and not rows):
        raise SyncProtocolError("the journal page's rows must be a list and more a boolean")
    previous = after
    for row in rows:
        seq = row.get("seq") if isinstance(row, dict) else None
        if not (isinstance(seq, str) and seq.isascii() and seq.isdigit()) or int(seq) <= previous:
            raise SyncProtocolError(f"the journal page's rows must rise in seq after {after}")
        previous = int(seq)
    return rows, more
