"""The pipeline's test world: a real store file, the catalogue, a signed deny list, a clock the
test moves, and taps of in-process emulated cards with the software SAM."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from store_support import header, public_pem, write_list
from support import CATALOGUE, load_test_roots, make_card

from apdu.transport import t0_chain
from config.settings import Settings
from drivers.indicators import ConsoleIndicator
from drivers.soft_sam import SoftSam
from drivers.virtual.card import VirtualConnection
from drivers.virtual.ssc_card import VirtualSscCard
from offline_store import Store, canonical_card_id, ed25519_verifier
from terminal.card_read import ScenarioRead
from terminal.pipeline import Decision, Pipeline
from terminal.profiles import Profile, load_profile

CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 29, 10, 0, tzinfo=CST)
PEPPER = b"TEST PEPPER for the pipeline tests only"
CARDS = {  # persona → (region code, card number)
    "ordinary-2.0": ("440100", "A01023450"),
    "hk-resident": ("440300", "F33091278"),
    "elderly": ("440100", "A07603317"),
    "student": ("440100", "A05514724"),
    "v3-sm4": ("330100", "E55120706"),
    "jiangxi-nanchang": ("360100", "J36007413"),
    "hunan-changsha": ("430100", "K43005827"),
    "absent-fields": ("440300", "C77104526"),
}


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    store: Store
    clock: Clock
    signer: Ed25519PrivateKey
    folder: Path
    console: io.StringIO

    def card_hash(self, persona: str) -> str:
        return self.store.card_hash(canonical_card_id(*CARDS[persona]))

    def deny(self, kind: str, version: int, lines: list[dict], base: int | None = None) -> None:
        created = dt.datetime.fromtimestamp(self.clock.now, CST).isoformat()
        head = header(kind, version, len(lines), base, created=created)
        path = write_list(self.folder / f"deny-{version}.jsonl", head, lines, self.signer)
        self.store.deny.import_file(path, ed25519_verifier(public_pem(self.signer)))

    def pipeline(self, profile: Profile | str) -> Pipeline:
        if isinstance(profile, str):
            profile = load_profile(profile)
        return Pipeline(
            profile,
            self.store,
            terminal_id="T-TEST-01",
            indicator=ConsoleIndicator(self.console),
            clock=self.clock,
            profile_dir=self.folder,
        )

    def tap(
        self,
        profile: Profile | str,
        persona: str | VirtualSscCard,
        *,
        module: bool = True,
        pin: str | None = None,
        room: str | None = None,
        service: str | None = None,
        **behaviour: object,
    ) -> tuple[Decision, VirtualSscCard]:
        if isinstance(profile, str):
            profile = load_profile(profile)
        card = persona if isinstance(persona, VirtualSscCard) else make_card(persona, **behaviour)
        sam = SoftSam(load_test_roots(), Settings()) if module else None
        read = ScenarioRead(t0_chain(VirtualConnection(card)), card.historical, profile, sam)
        decision = self.pipeline(profile).process(read, pin=pin, room=room, service=service)
        return decision, card


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    store = Store.open(
        tmp_path / "store.db", journal_key=os.urandom(32), pepper=PEPPER, clock=clock
    )
    store.catalogue.load_file(CATALOGUE)
    world = World(store, clock, Ed25519PrivateKey.generate(), tmp_path, io.StringIO())
    world.deny("snapshot", 1, [])
    yield world
    store.close()
