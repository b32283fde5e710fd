"""The card-status answer (``POST /v1/cards/status``, docs/sync.md §11) is parsed strictly on
both ends: sync/status.py is the one definition of the wire structure."""

from __future__ import annotations

import datetime as dt

import pytest

from sync.errors import SyncProtocolError
from sync.status import CardStatus, parse_card_hash

HASH = "5490d353fb3c81ec1e7cd95af4251a356c8b47b2bf0906b6900021adae19597f"
LISTED = {
    "card_hash": HASH,
    "listed": True,
    "reason": "lost",
    "effective": "2026-11-20",
    "version": 7,
}
UNLISTED = {"card_hash": HASH, "listed": False, "reason": None, "effective": None, "version": 7}


def test_answers_round_trip_and_dates_decide() -> None:
    listed = CardStatus.parse(LISTED, HASH)
    assert listed == CardStatus(HASH, True, "lost", dt.date(2026, 11, 20), 7)
    assert listed.to_json() == LISTED
    assert listed.refuses_on(dt.date(2026, 11, 20)) and not listed.refuses_on(dt.date(2026, 11, 19))
    unlisted = CardStatus.parse(UNLISTED, HASH)
    assert unlisted.to_json() == UNLISTED and not unlisted.refuses_on(dt.date(2099, 1, 1))


@pytest.mark.parametrize(
    "answer",
    [
        [],
        LISTED | {"extra": 1},
        {k: v for k, v in LISTED.items() if k != "version"},
        LISTED | {"card_hash": "0" * 64},
        LISTED | {"listed": "yes"},
        LISTED | {"version": True},
        LISTED | {"version": -1},
        LISTED | {"reason": "stolen"},
        LISTED | {"effective": "2026-02-30"},
        LISTED | {"effective": "20261120"},
        UNLISTED | {"reason": "lost"},
    ],
)
def test_an_answer_off_the_contract_is_a_protocol_error(answer: object) -> None:
    with pytest.raises(SyncProtocolError):
        CardStatus.parse(answer, HASH)


@pytest.mark.parametrize(
    "body", [{"card_hash": HASH.upper()}, {"card_hash": HASH, "x": 1}, {"hash": HASH}, [HASH]]
)
def test_a_request_off_the_contract_is_refused_without_repeating_the_hash(body: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_card_hash(body)
    assert HASH not in str(info.value) and HASH.upper() not in str(info.value)
    assert parse_card_hash({"card_hash": HASH}) == HASH
