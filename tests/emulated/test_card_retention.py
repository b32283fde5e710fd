"""Never retain a card (Jiangxi §16), watched at the card: the terminal's flows run against
emulated cards through a connection that records every command the card receives (below the
T=0 chain, so GET RESPONSE and re-issued commands are seen too), and every one of them must be
in :data:`apdu.card_commands.READ_ONLY`; CHANGE PIN appears in ``sscard pin change`` alone.

The flows: ``sscard read`` (no module, the software SAM, a PSAM), a tap for every scenario
(transit, gate, hotel, hospital with PIN and DF04) and for the refusals a card can cause
(forged, expired, deny listed, application locked, card blocked, PIN missing, wrong or blocked),
``sscard pin verify`` and the PIN-state query, and ``sscard pin change``. The e-card (QR) flow
has no card to send anything to; ``tests/unit/test_card_commands.py`` checks that.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_support import World
from support import all_persona_names, load_test_roots, make_card, make_psam

from apdu.card_commands import HOLDER_INITIATED, READ_ONLY, allowed, forbidden
from apdu.command import CommandApdu
from apdu.errors import SscardError
from apdu.psam import PsamModule
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from config.settings import Settings
from drivers.soft_sam import SoftSam
from drivers.virtual.card import VirtualConnection
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.card_read import ScenarioRead
from terminal.pin import pin_operation
from terminal.profiles import load_profile
from terminal.reading import read_and_classify
from terminal.reasons import Reason

pytestmark = pytest.mark.emulated

READ_ONLY_SET = frozenset((c.cla, c.ins) for c in READ_ONLY)
CHANGE_PIN = next((h.cla, h.ins) for h in HOLDER_INITIATED if h.command == ("pin", "change"))
#: the reads only payments send (the purse's public data, balances, proofs)
PAYMENT_READS = frozenset({(0x00, 0xB0), (0x80, 0x5C), (0x80, 0x5A), (0xB0, 0x26), (0xB0, 0x2E)})
PAYMENTS = frozenset((h.cla, h.ins) for h in HOLDER_INITIATED if h.through)
PINS = {"ordinary-2.0": "123456", "v3-sm4": "123456", "hk-resident": "654321"}


class RecordingConnection:
    """Between the terminal and an emulated card: passes every command on and keeps it.

    :param inner: the card's connection
    """

    def __init__(self, inner: VirtualConnection) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        """The card's ATR."""
        return self.inner.atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Record the command, then send it to the card.

        :param apdu: the command bytes
        """
        self.sent.append(bytes(apdu))
        return self.inner.transmit(apdu)

    def close(self) -> None:
        """Close the card's connection."""
        self.inner.close()

    def commands(self) -> set[tuple[int, int]]:
        """The (CLA, INS) of everything the card received."""
        parsed = (CommandApdu.parse(raw) for raw in self.sent)
        return {(c.cla, c.ins) for c in parsed}


class Recorder:
    """Every recording connection of a test, and the commands they saw together."""

    def __init__(self) -> None:
        self.connections: list[RecordingConnection] = []

    def connect(self, card: VirtualSscCard) -> RecordingConnection:
        connection = RecordingConnection(VirtualConnection(card))
        self.connections.append(connection)
        return connection

    def commands(self) -> set[tuple[int, int]]:
        return set().union(*(c.commands() for c in self.connections))


def _named(commands: set[tuple[int, int]]) -> list[str]:
    out = []
    for cla, ins in sorted(commands):
        entry = forbidden(cla, ins) or allowed(cla, ins)
        out.append(f"{cla:02X} {ins:02X} {entry.name if entry else '(unlisted)'}")
    return out


def assert_read_only(recorder: Recorder) -> None:
    sent = recorder.commands()
    assert sent, "no command reached a card: the flow did not run"
    assert sent <= READ_ONLY_SET, f"beyond READ_ONLY: {_named(sent - READ_ONLY_SET)}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield Recorder()


def _soft_sam() -> SoftSam:
    return SoftSam(load_test_roots(), Settings())


def _psam() -> PsamModule:
    return PsamModule(t0_chain(VirtualConnection(make_psam("psam-national"))))


def test_reading_any_card_with_or_without_a_module_only_reads(recorder: Recorder) -> None:
    for name in all_persona_names():
        for t0 in (False, True):
            card = make_card(name, t0=t0)
            read_and_classify(recorder.connect(card), card.atr)
            for module in (None, _soft_sam(), _psam()):
                card = make_card(name, t0=t0)
                read_and_classify(
                    recorder.connect(card), card.atr, authenticate=True, module=module
                )
    for behaviour in ({"app_locked": True}, {"card_blocked": True}):
        card = make_card("ordinary-2.0", **behaviour)
        result = read_and_classify(
            recorder.connect(card), card.atr, authenticate=True, module=_psam()
        )
        assert not result.ok
    assert_read_only(recorder)
    # the 3.0 card was opened with RKSSSE and a forged card was caught: the flows ran in full
    assert {(0x00, 0x82), (0x00, 0x88), (0x00, 0xC0)} <= recorder.commands()


def _tap(
    world: World,
    recorder: Recorder,
    scenario: str,
    persona: str,
    *,
    pin: str | None = None,
    room: str | None = None,
    **behaviour: object,
) -> Reason:
    profile = load_profile(scenario)
    card = make_card(persona, **behaviour)
    read = ScenarioRead(t0_chain(recorder.connect(card)), card.historical, profile, _soft_sam())
    return world.pipeline(profile).process(read, pin=pin, room=room).reason


def test_every_scenario_and_every_refusal_a_card_can_cause_only_reads(
    world: World, recorder: Recorder
) -> None:
    seen = {
        _tap(world, recorder, "transit", "ordinary-2.0"),
        _tap(world, recorder, "transit", "elderly", t0=True),
        _tap(world, recorder, "gate", "student"),
        _tap(world, recorder, "hotel", "v3-sm4", room="1208"),
        _tap(world, recorder, "hotel", "hk-resident", room="301"),
        _tap(world, recorder, "hospital", "ordinary-2.0", pin=PINS["ordinary-2.0"]),
        _tap(world, recorder, "hospital", "v3-sm4", pin=PINS["v3-sm4"], t0=True),
        _tap(world, recorder, "hospital", "hk-resident"),  # no PIN given
        _tap(world, recorder, "hospital", "hk-resident", pin="000000"),
        _tap(world, recorder, "transit", "forged"),
        _tap(world, recorder, "transit", "expired"),
        _tap(world, recorder, "gate", "ordinary-2.0", app_locked=True),
        _tap(world, recorder, "hotel", "ordinary-2.0", room="12", card_blocked=True),
    }
    card = make_card("ordinary-2.0")
    for attempt in range(4):  # three wrong PINs, then a blocked PIN: the holder's own tries
        read = ScenarioRead(
            t0_chain(recorder.connect(card)),
            card.historical,
            load_profile("hospital"),
            _soft_sam(),
        )
        decision = world.pipeline("hospital").process(read, pin=f"00000{attempt}")
        seen.add(decision.reason)
    lost = {"op": "add", "hash": world.card_hash("student"), "reason": "lost"}
    world.deny("delta", 2, [{**lost, "effective": "2026-11-20"}], base=1)
    seen.add(_tap(world, recorder, "transit", "student"))
    assert {
        Reason.OK,
        Reason.NOT_GENUINE,
        Reason.EXPIRED,
        Reason.DENY_LOST,
        Reason.APP_LOCKED,
        Reason.CARD_BLOCKED,
        Reason.PIN_MISSING,
        Reason.PIN_WRONG,
        Reason.PIN_BLOCKED,
    } <= seen
    assert_read_only(recorder)
    # between them the flows sent every read-only command but the payments' own reads
    # (exercised below): none of the list is unexercised
    assert recorder.commands() == READ_ONLY_SET - PAYMENT_READS


def test_pin_verify_and_the_pin_state_only_read(recorder: Recorder) -> None:
    card = make_card("ordinary-2.0")
    pin_operation(t0_chain(recorder.connect(card)), "verify", [PINS["ordinary-2.0"]])
    assert SscSession(t0_chain(recorder.connect(card))).pin_tries_left() == 3
    with pytest.raises(SscardError):
        pin_operation(t0_chain(recorder.connect(card)), "verify", ["999999"])
    assert_read_only(recorder)
    assert (0x00, 0x20) in recorder.commands()


def test_change_pin_is_sent_by_the_holders_pin_change_and_by_nothing_else(
    recorder: Recorder,
) -> None:
    card = make_card("ordinary-2.0")
    pin_operation(t0_chain(recorder.connect(card)), "change", ["123456", "654321"])
    sent = recorder.commands()
    assert CHANGE_PIN in sent
    assert sent - {CHANGE_PIN} <= READ_ONLY_SET, _named(sent)
    # the new PIN works: the holder changed it, nothing else did
    pin_operation(t0_chain(recorder.connect(card)), "verify", ["654321"])


def test_payments_send_reads_and_their_own_holder_commands_only(recorder: Recorder) -> None:
    """A transit purchase, a torn one and its recovery, a medical settlement and its records:
    nothing but reads and the four payment commands, which reach the card only in a payment."""
    from payment_support import medical_settlement, transit_purchase_with_recovery

    transit_purchase_with_recovery(recorder.connect)
    medical_settlement(recorder.connect)
    sent = recorder.commands()
    assert sent >= PAYMENT_READS and sent >= PAYMENTS, _named(sent)
    assert sent - PAYMENTS <= READ_ONLY_SET, _named(sent - PAYMENTS - READ_ONLY_SET)
    assert not any(forbidden(cla, ins) for cla, ins in sent)
