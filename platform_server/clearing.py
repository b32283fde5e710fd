"""A day's clearing (清分): the purchases of one day, per terminal and per card issuer
(docs/clearing.md).

Each purchase counts once (:mod:`platform_server.payments`: one ``payment`` row per card,
card sequence and kind, in its latest state), on the day of its transaction time. Per group:

* ``count`` and ``sum_fen``: the purchases ``done`` (the card debited) and their amounts — for
  a medical payment the personal account's part, the part that left the card;
* ``tac_ok``; ``tac_failed`` (``mismatch``: counted in the sum and reported, since the card
  says it paid; the issuer decides); ``tac_unchecked`` (``no_key`` or ``incomplete``);
* ``unresolved``: purchases still ``torn`` or ``pending`` (the card has not come back);
  ``void``: purchases nothing was debited for.

A terminal is the registered terminal that uploaded the rows and the PSAM terminal number the
purchases carried; an issuer is the transit issuer id, or a medical card's city code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from platform_server.db import payment
from platform_server.errors import InvalidInput
from sync.wire import ISO_DATE

__all__ = ["ClearingReport", "Group", "clearing_day", "parse_day"]


@dataclass(slots=True)
class Group:
    """The figures of one terminal, one issuer or the whole day (see the module docstring)."""

    count: int = 0
    sum_fen: int = 0
    tac_ok: int = 0
    tac_failed: int = 0
    tac_unchecked: int = 0
    unresolved: int = 0
    void: int = 0

    def add(self, state: str, tac_status: str, purchases: int, amount: int) -> None:
        """Count ``purchases`` of one state and TAC status, ``amount`` fen in all.

        :raises: nothing
        """
        if state == "done":
            self.count += purchases
            self.sum_fen += amount
            if tac_status == "ok":
                self.tac_ok += purchases
            elif tac_status == "mismatch":
                self.tac_failed += purchases
            else:
                self.tac_unchecked += purchases
        elif state == "void":
            self.void += purchases
        else:
            self.unresolved += purchases


@dataclass(slots=True)
class ClearingReport:
    """One day's clearing.

    :param day: ``YYYY-MM-DD``
    :param total: the whole day
    :param terminals: ``(terminal id, PSAM terminal number)`` → figures
    :param issuers: ``(kind, issuer)`` → figures
    """

    day: str
    total: Group = field(default_factory=Group)
    terminals: dict[tuple[str, str], Group] = field(default_factory=dict)
    issuers: dict[tuple[str, str], Group] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as ``GET /v1/clearing`` and ``--format json`` give it.

        :raises: nothing
        """
        return {
            "day": self.day,
            "total": asdict(self.total),
            "terminals": [
                {"terminal_id": tid, "terminal_number": number, **asdict(group)}
                for (tid, number), group in sorted(self.terminals.items())
            ],
            "issuers": [
                {"kind": kind, "issuer": issuer, **asdict(group)}
                for (kind, issuer), group in sorted(self.issuers.items())
            ],
        }

    def lines(self) -> Iterable[str]:
        """The report as text, one line per terminal and per issuer, sums in yuan.

        :raises: nothing
        """
        yield f"clearing {self.day}: {_figures(self.total)}"
        for (tid, number), group in sorted(self.terminals.items()):
            yield f"terminal {tid} psam {number}: {_figures(group)}"
        for (kind, issuer), group in sorted(self.issuers.items()):
            yield f"issuer {kind} {issuer}: {_figures(group)}"


def _figures(group: Group) -> str:
    return (
        f"{group.count} purchases {group.sum_fen // 100}.{group.sum_fen % 100:02d} yuan, "
        f"TAC ok {group.tac_ok} failed {group.tac_failed} unchecked {group.tac_unchecked}, "
        f"unresolved {group.unresolved}, void {group.void}"
    )


def parse_day(text: str) -> str:
    """A clearing day, checked: ``YYYY-MM-DD``.

    :param text: the operator's or the query's value
    :raises InvalidInput: not a date of that form
    """
    if ISO_DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise InvalidInput("the clearing day is a date YYYY-MM-DD")


def clearing_day(conn: Connection, day: str) -> ClearingReport:
    """The clearing of ``day`` from the stored purchases (grouped in the database).

    :param conn: a connection in a transaction
    :param day: ``YYYY-MM-DD`` (:func:`parse_day`)
    :raises: nothing beyond the database's own errors
    """
    report = ClearingReport(day)
    keys = (
        payment.c.terminal_id,
        payment.c.terminal_number,
        payment.c.kind,
        payment.c.issuer,
        payment.c.state,
        payment.c.tac_status,
    )
    query = (
        select(*keys, func.count(), func.coalesce(func.sum(payment.c.amount_fen), 0))
        .where(payment.c.day == day)
        .group_by(*keys)
    )
    for tid, number, kind, issuer, state, status, purchases, amount in conn.execute(query):
        for group in (
            report.total,
            report.terminals.setdefault((tid, number), Group()),
            report.issuers.setdefault((kind, issuer), Group()),
        ):
            group.add(state, status, int(purchases), int(amount))
    return report
