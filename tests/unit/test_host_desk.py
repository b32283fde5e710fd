"""The desk between the daemon's taps and the host API (terminal/host/desk.py), in threads."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from apdu.errors import SscardError
from apdu.sam import NoSecurityModule
from terminal.daemon.host import DaemonHostService
from terminal.host.desk import CHECKIN, Desk, DeskAction, DeskBusy, Presentation
from terminal.host.service import EventHub
from terminal.pipeline import ACCEPT, Decision
from terminal.reasons import Reason

READER = "Virtual PCD 00 00"
ACCEPTED = Decision(ACCEPT, Reason.OK, seq=7)


def test_a_card_on_the_reader_is_answered_at_once_and_a_removed_one_is_not() -> None:
    desk = Desk()
    assert desk.current(None, 0) is None
    desk.inserted(READER)
    desk.decided(READER, ACCEPTED, {"region_code": "360100"}, None, action=None)
    shown = desk.current("PCD 00 00", 0)
    assert shown is not None and shown.number == 1 and shown.present
    assert desk.current("another reader", 0) is None
    desk.removed(READER)
    assert desk.current(None, 0.05) is None  # decided before the client asked, and gone


def test_a_client_waiting_gets_the_next_decision() -> None:
    desk = Desk()
    got: list[Presentation | None] = []
    waiter = threading.Thread(target=lambda: got.append(desk.current(None, 30)))
    waiter.start()
    desk.inserted(READER)
    desk.decided(READER, ACCEPTED, {}, None, action=None)
    waiter.join(30)
    assert got and got[0] is not None and got[0].decision == ACCEPTED


def test_an_action_is_claimed_once_by_the_reader_it_names_and_answered() -> None:
    desk = Desk()
    action = DeskAction(CHECKIN, "PCD 00 00", room="0801")
    answers: list[Presentation | None] = []
    asking = threading.Thread(target=lambda: answers.append(desk.act(action, 30)))
    asking.start()
    while not desk.wanted(READER):
        threading.Event().wait(0.01)
    assert not desk.wanted("Other Reader 01")
    assert desk.claim("Other Reader 01") is None
    with pytest.raises(DeskBusy):
        desk.act(DeskAction(CHECKIN, room="2"), 0)
    assert desk.claim(READER) is action
    assert desk.claim(READER) is None and not desk.wanted(READER)
    desk.decided(READER, ACCEPTED, {}, None, action=action)
    asking.join(30)
    assert answers and answers[0] is not None and answers[0].decision == ACCEPTED
    assert desk.act(DeskAction(CHECKIN, room="3"), 0) is None  # the desk is free again


def test_an_action_no_card_came_for_is_withdrawn() -> None:
    desk = Desk()
    assert desk.act(DeskAction(CHECKIN, room="0801"), 0.05) is None
    assert not desk.wanted(READER) and desk.claim(READER) is None


def test_hang_up_ends_the_streams_open_now_and_only_those() -> None:
    hub = EventHub(depth=2)
    old = hub.subscribe()
    hub.publish("card.inserted")
    hub.publish("card.removed")  # the queue is full: the hang-up still gets in
    hub.hang_up()
    late = hub.subscribe()
    hub.publish("decision")
    got = [old.get_nowait() for _ in range(old.qsize())]
    assert got[-1] is None and len(got) == 2
    event = late.get_nowait()
    assert event is not None and event["type"] == "decision"


@pytest.mark.parametrize(
    ("scenario", "refusal"),
    [("transit", "decides for transit, not hospital"), ("hospital", "needs the SSC PSAM")],
)
def test_the_daemon_refuses_a_settlement_it_cannot_make_before_asking_for_a_card(
    scenario: str, refusal: str
) -> None:
    terminal = SimpleNamespace(profile=SimpleNamespace(name=scenario), module=None)
    desk = Desk()
    service = DaemonHostService(SimpleNamespace(terminal=terminal), desk)  # type: ignore[arg-type]
    with pytest.raises(SscardError, match=refusal) as raised:
        service.hospital_settle("123456", "95.00|30.00+60.00|20261129101500|", None, 0, "t")
    assert isinstance(raised.value, NoSecurityModule) == (scenario == "hospital")
    assert desk.act(DeskAction(CHECKIN, room="1"), 0) is None  # nothing was queued


def test_a_settlement_the_worker_failed_on_is_no_missing_psam() -> None:
    # the worker answers an action it failed on (an error it logged) with nothing settled; a
    # missing PSAM is said only when the module went away while the card came
    terminal = SimpleNamespace(profile=SimpleNamespace(name="hospital"), module=object())
    desk = Desk()
    service = DaemonHostService(SimpleNamespace(terminal=terminal), desk)  # type: ignore[arg-type]

    def worker(module_goes: bool) -> None:
        while (action := desk.claim(READER)) is None:
            threading.Event().wait(0.01)
        if module_goes:
            terminal.module = None
        desk.decided(READER, None, {}, None, action=action)

    for module_goes, refusal in ((False, "could not settle on the card"), (True, "SSC PSAM")):
        thread = threading.Thread(target=worker, args=(module_goes,))
        thread.start()
        with pytest.raises(SscardError, match=refusal) as raised:
            service.hospital_settle("123456", "95.00|30.00+60.00|20261129101500|", None, 5, "t")
        thread.join()
        assert isinstance(raised.value, NoSecurityModule) == module_goes
