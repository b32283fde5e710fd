"""The two halves of issue 15 meet: fares the terminal's own pipeline took from an emulated
purse (some torn and recovered), journaled by the real store (payment objects encrypted at rest,
hashed by their digest), uploaded by the real sync client to the reference platform on
loopback. The platform's clearing equals the purse's drop to the fen, every TAC checks, nothing
is left unresolved, and the stored chain verifies.

The fare campaign (``test_fare_campaign.py``) and the clearing campaign
(``test_platform_clearing.py``) each check one side with rows of their own making; this is the
test that would catch the two sides disagreeing on the payment object or on its hashing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fare_support import Validator, transit_profile
from payment_support import transit_module
from pipeline_support import World, world  # noqa: F401 (the fixture)
from platform_support import LivePlatform, live_platform
from support import make_card

from sync.client import SyncClient
from sync.config import SyncConfig
from sync.transport import Credentials
from terminal.fares import PurseRules
from terminal.payments import TransitPayments
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

TERMINAL = "T-TEST-01"  # the pipeline test world's terminal id
TAPS = 40


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LivePlatform]:
    with live_platform(tmp_path / "platform", {TERMINAL: ("transit",)}) as running:
        yield running


def test_the_terminals_fares_clear_at_the_platform_to_the_fen(
    world: World,  # noqa: F811
    live: LivePlatform,
) -> None:
    payments = TransitPayments(
        world.store, transit_module(), PurseRules(), tear_window_s=300, clock=world.clock
    )
    validator = Validator(world, payments, transit_profile())
    card = make_card("ordinary-2.0")
    assert card.transit is not None
    card.transit.balance = before = 100_000  # fen: enough for every fare below
    assert validator.tap(card).reason == Reason.OK
    debit = card.commands_seen  # a paid tap's card commands; the DEBIT is the last
    reasons = []
    for index in range(TAPS):
        world.clock.now += 7
        # every third tap torn: the card leaves after the DEBIT, before its answer arrives
        tear = {"tear_before_answer": debit} if index % 3 == 1 else {}
        reasons.append(validator.tap(card, **tear).reason)
    assert Reason.PURSE_TORN in reasons and reasons[-1] == Reason.OK  # torn, then recovered
    drop = before - card.transit.balance
    assert drop == validator.charged() > 0  # the terminal's own account

    credentials = live.terminals[TERMINAL]
    config = SyncConfig(
        url=live.url,
        credentials=Credentials(TERMINAL, credentials.key_id, credentials.key),
        prune=False,
    )
    report = SyncClient(config, world.store, clock=live.clock).upload()
    assert report.acked_seq == world.store.journal.backlog().last_seq

    days = {p["time"][:8] for p in validator.payments_journaled()}
    assert len(days) == 1
    day = dt.datetime.strptime(days.pop(), "%Y%m%d").date().isoformat()
    total = live.platform.clearing(day).to_json()["total"]
    done = {
        (p["card_serial"], p["card_sequence"])
        for p in validator.payments_journaled()
        if p["state"] == "done"
    }
    assert (total["count"], total["sum_fen"]) == (len(done), drop)
    assert total["tac_ok"] == total["count"], "every TAC the terminal took checks at the platform"
    assert total["tac_failed"] == total["tac_unchecked"] == total["unresolved"] == 0
    [chain] = live.platform.verify_chains(TERMINAL)
    assert chain.ok and chain.rows == world.store.journal.backlog().last_seq
