"""Helpers for the fare tests: a bus validator (the transit profile's pipeline with its purse
step) over the pipeline's test world, and what its journal says was charged."""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline_support import World

from apdu.transport import t0_chain
from drivers.virtual.card import VirtualConnection
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.card_read import ScenarioRead
from terminal.fares import PurseRules
from terminal.payments import TransitPayments
from terminal.pipeline import Decision, Pipeline
from terminal.profiles import Profile, load_profile


@dataclasses.dataclass
class Validator:
    """A bus validator: the pipeline of the transit profile with its purse step."""

    world: World
    payments: TransitPayments
    profile: Profile

    def pipeline(self) -> Pipeline:
        pipeline = self.world.pipeline(self.profile)
        pipeline.purse = self.payments
        return pipeline

    def tap(self, card: VirtualSscCard, **tear: int) -> Decision:
        card.return_to_field()
        for key, value in tear.items():
            setattr(card.behaviour, key, value)
        read = ScenarioRead(t0_chain(VirtualConnection(card)), card.historical, self.profile, None)
        return self.pipeline().process(read)

    def payments_journaled(self, after: int = 0) -> list[dict[str, Any]]:
        rows = self.world.store.journal.rows(after)
        return [r.payment for r in rows if r.payment is not None]

    def mark(self) -> int:
        last = self.world.store.journal.last()
        return 0 if last is None else last.seq

    def charged(self, after: int = 0) -> int:
        """Fen the journal says were debited (after a row): the latest state of each purchase,
        as the platform counts them, done."""
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for p in self.payments_journaled(after):
            latest[(p["card_serial"], p["card_sequence"])] = p
        return sum(p["amount_fen"] for p in latest.values() if p["state"] == "done")


def transit_profile(**purse: int) -> Profile:
    profile = load_profile("transit")
    assert profile.transit is not None
    rules = profile.transit.model_copy(update={"purse": PurseRules(**purse)})
    return profile.model_copy(update={"require_genuine": False, "transit": rules})
