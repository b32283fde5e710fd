"""The transit profile's purse rules (``[transit.purse]``, issue 15): a daily cap and a
transfer discount, applied to the fare the scenario rules gave (concessions first).

Example::

    [transit]
    fare_fen = 200

    [transit.purse]
    daily_cap_fen = 600          # a card pays at most this much a day here; 0: no cap
    transfer_discount_fen = 100  # off the fare of a ride within the window after a paid one
    transfer_window_s = 5400     # 90 minutes

Both count only what the card paid **on this terminal** today (:class:`DaySpend`, kept by the
store in the purchase's own transaction): a validator has no view of the others' journals
offline. A network-wide cap belongs to the platform's clearing. The transfer discount comes
first, then the cap; a fare that falls to 0 is journaled without a debit, like a concession.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from config.schema import Table
from offline_store.payment import DaySpend

__all__ = ["Fare", "PurseRules", "purse_fare"]


class PurseRules(Table):
    """``[transit.purse]``.

    :param daily_cap_fen: the most a card pays here in a (local) day, ``0`` for no cap
    :param transfer_discount_fen: taken off the fare of a ride that follows a paid one within
        ``transfer_window_s``
    :param transfer_window_s: the transfer window, seconds
    """

    daily_cap_fen: int = Field(default=0, ge=0, le=10_000_000)
    transfer_discount_fen: int = Field(default=0, ge=0, le=100_000)
    transfer_window_s: int = Field(default=5400, ge=0, le=86_400)


@dataclass(frozen=True, slots=True)
class Fare:
    """The fare a card pays now.

    :param fen: what the purse is debited (0: nothing)
    :param base_fen: the profile's fare for this card (concessions applied)
    :param transfer: the transfer discount applied
    :param capped: the daily cap lowered it
    """

    fen: int
    base_fen: int
    transfer: bool = False
    capped: bool = False

    def detail(self) -> dict[str, object]:
        """The decision's detail: the fare, and the rules that changed it."""
        out: dict[str, object] = {"fare_fen": self.fen}
        if self.fen != self.base_fen:
            out["base_fare_fen"] = self.base_fen
        if self.transfer:
            out["transfer"] = True
        if self.capped:
            out["daily_cap"] = True
        return out


def purse_fare(rules: PurseRules, base_fen: int, spend: DaySpend, now_us: int) -> Fare:
    """The fare after the transfer discount and the daily cap.

    :param rules: the profile's ``[transit.purse]``
    :param base_fen: the fare the scenario rules gave
    :param spend: what the card paid here today
    :param now_us: now, microseconds since the epoch
    """
    fen, transfer, capped = base_fen, False, False
    window_us = rules.transfer_window_s * 1_000_000
    if (
        rules.transfer_discount_fen
        and fen > 0
        and spend.rides > 0
        and 0 <= now_us - spend.last_us <= window_us
    ):
        fen, transfer = max(0, fen - rules.transfer_discount_fen), True
    if rules.daily_cap_fen:
        room = max(0, rules.daily_cap_fen - spend.spent_fen)
        if fen > room:
            fen, capped = room, True
    return Fare(fen, base_fen, transfer, capped)
