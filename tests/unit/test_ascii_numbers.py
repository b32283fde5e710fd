"""Numbers and JSON that arrive from outside are read strictly everywhere, not only at the
platform's front door (issue 10, finding 6 and its siblings): ``str.isdigit()`` is true for
``"²"``, ``"٣"`` and ``"４"``, which ``int()`` refuses or reads as another number, and
``json.loads`` recurses once per nesting level."""

from __future__ import annotations

from datetime import datetime

import pytest

from apdu import purse
from apdu.errors import ProtocolError
from drivers.virtual.gate import _ms
from offline_store.denyfile import DenyHeader
from offline_store.errors import DenyListError
from sync.errors import SyncProtocolError
from sync.transport import Exchange, _refusal, _retry_after

OTHER_DIGITS = ["²", "٣", "４", "7²", "１２"]


@pytest.mark.parametrize("value", [*OTHER_DIGITS, "9" * 400, "-1", "1e3", "0x10"])
def test_a_retry_after_of_other_digits_or_too_many_is_ignored(value: str) -> None:
    """``Retry-After: ²`` raised ValueError; ``٣`` was read as 3 s; 400 nines were infinity."""
    assert _retry_after(value, 0.0) is None


def test_an_answer_nested_thousands_deep_is_a_protocol_error_not_a_crash() -> None:
    deep = Exchange(200, {}, b"[" * 60_000 + b"]" * 60_000, 0.0, 0.0, 1)
    with pytest.raises(SyncProtocolError, match="nests deeper"):
        deep.json()


def test_a_refusal_whose_problem_document_is_nested_deep_still_reads_as_a_refusal() -> None:
    deep = Exchange(503, {}, b"[" * 60_000 + b"]" * 60_000, 0.0, 0.0, 1)
    refused = _refusal("POST", "/v1/journal/batch", deep)
    assert refused.status == 503 and refused.code == ""


@pytest.mark.parametrize("text", [*OTHER_DIGITS, "9" * 5000, ""])
def test_the_virtual_gate_refuses_durations_in_other_digits(text: str) -> None:
    assert _ms(text, 1, 60_000) is None


def test_the_virtual_gate_reads_ascii_durations_within_range() -> None:
    assert _ms("250", 1, 60_000) == 250
    assert _ms("60001", 1, 60_000) is None


def test_a_purchase_terminal_number_in_full_width_digits_is_refused() -> None:
    request = purse.PurchaseRequest(
        card_random=bytes(4),
        card_sequence=1,
        amount=200,
        transaction_type=purse.TYPE_PURCHASE,
        when=datetime(2026, 12, 4, 12, 0, 0),
        key_version=0x01,
        algorithm_id=purse.PURSE_ALG_DES,
        factors=(bytes(8), bytes(8), bytes(8)),
    )
    with pytest.raises(ProtocolError, match="12 digits"):
        purse.mac1(bytes(8), request, "４４０１００１２３４５６")


def test_a_deny_file_line_nested_thousands_deep_is_a_line_error() -> None:
    with pytest.raises(DenyListError, match="nested too deep"):
        DenyHeader.parse(b"[" * 60_000 + b"]" * 60_000)
