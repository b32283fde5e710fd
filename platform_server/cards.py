"""``POST /v1/cards/status``: one card's entry on the platform's current deny list, for a
terminal whose own list is stale or missing (docs/sync.md §11).

The terminal sends the card's keyed hash and nothing else; the platform answers from the same
table its signed lists are made from, so the answer agrees with the next list the terminal will
download. The wire structure is :class:`sync.status.CardStatus`.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Connection, select

from platform_server.db import deny_entry
from platform_server.denylist import current_version
from platform_server.errors import InvalidInput
from sync.status import CardStatus, parse_card_hash

__all__ = ["parse_request", "status"]

log = logging.getLogger(__name__)


def parse_request(body: object) -> str:
    """The card hash of a request body.

    :param body: the parsed JSON body
    :raises InvalidInput: ``invalid_body``, naming what is wrong (never the value)
    """
    try:
        return parse_card_hash(body)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def status(conn: Connection, card_hash: str) -> CardStatus:
    """The card's entry on the current list.

    :param conn: a connection in a transaction
    :param card_hash: the keyed hash (64 lowercase hex)
    :raises: nothing beyond the database's own errors
    """
    version = current_version(conn)
    row = conn.execute(
        select(deny_entry.c.reason, deny_entry.c.effective).where(
            deny_entry.c.card_hash == card_hash
        )
    ).one_or_none()
    if row is None:
        return CardStatus(card_hash, False, None, None, version)
    return CardStatus(card_hash, True, row.reason, dt.date.fromisoformat(row.effective), version)
