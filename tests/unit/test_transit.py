"""The transit purse's wire structures and the PBOC TAC, against references written here from
the text alone (spec doc §7.2; the TAC as issuers' clearing code describes it: "DTK 左右 8 字节
异或" over amount ‖ type ‖ terminal ‖ terminal sequence ‖ date ‖ time), with cryptography's own
DES primitive and nothing of :mod:`apdu.crypto`."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from apdu import purse, transit
from apdu.errors import ApduError, ProtocolError, RecordFormatError
from apdu.payment import (
    Charge,
    CounterExhausted,
    DebitAnswer,
    DebitRequest,
    InsufficientBalance,
    KeyVersionUnsupported,
    Mac1Invalid,
    NoPurchasePending,
    ProofUnavailable,
    PurseLocked,
    payment_error,
    sequence_distance,
)

H = bytes.fromhex
WHEN = dt.datetime(2026, 11, 29, 7, 58, 3)


def des_cbc_mac(key8: bytes, data: bytes) -> bytes:
    """Single-DES CBC-MAC, zero IV, 80 00… padding, first 4 bytes (PBOC)."""
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 8)
    encryptor = Cipher(TripleDES(key8 * 3), modes.CBC(bytes(8))).encryptor()
    return (encryptor.update(padded) + encryptor.finalize())[-8:][:4]


def test_the_tac_is_a_des_mac_under_the_folded_dtk_over_the_pboc_fields() -> None:
    dtk = H("0123456789ABCDEFFEDCBA9876543210")
    folded = bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:], strict=True))
    assert folded == H("FFFFFFFFFFFFFFFF")
    data = purse.tac_data(200, 0x06, "440100900001", 7, WHEN)
    assert data == H("000000C8064401009000010000000720261129075803")
    assert purse.tac(dtk, data) == des_cbc_mac(folded, data)
    other = H("00112233445566778899AABBCCDDEEFF")
    assert purse.tac(other, data) == des_cbc_mac(H("8888888888888888"), data)


def test_tac_inputs_are_checked() -> None:
    with pytest.raises(ProtocolError, match="16 bytes"):
        purse.tac_key(bytes(8))
    with pytest.raises(ProtocolError, match="12 digits"):
        purse.tac_data(1, 6, "44010090000X", 1, WHEN)
    with pytest.raises(ProtocolError, match="4 bytes"):
        purse.tac_data(1, 6, "440100900001", 1 << 32, WHEN)


PUBLIC = (
    H("4401000000000000")  # issuer id
    + H("0202")  # type, version
    + H("31044010000000A1B2C3")  # serial
    + H("2021031520310314")
    + H("0000")
)


def test_public_data_parses_and_round_trips() -> None:
    public = transit.TransitPublicData.parse(PUBLIC)
    assert public.issuer_id == H("4401000000000000")
    assert public.card_serial == H("4010000000A1B2C3")  # the last 8 bytes of the serial
    assert public.factors() == (H("4010000000A1B2C3"), H("4401000000000000"))
    assert public.valid_from == dt.date(2021, 3, 15) and public.valid_until == dt.date(2031, 3, 14)
    assert public.to_bytes() == PUBLIC
    assert public.valid_on(dt.date(2026, 1, 1)) and not public.valid_on(dt.date(2031, 3, 15))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (PUBLIC[:-1], "30 bytes"),
        (PUBLIC + b"\x00", "30 bytes"),
        (PUBLIC[:20] + H("20211315") + PUBLIC[24:], "calendar date"),
        (PUBLIC[:20] + H("2021AA15") + PUBLIC[24:], "not BCD"),
    ],
)
def test_public_data_is_parsed_strictly(raw: bytes, match: str) -> None:
    with pytest.raises(RecordFormatError, match=match):
        transit.TransitPublicData.parse(raw)


def test_initialize_answer_fields_in_order() -> None:
    raw = H("0000138800290003E801005E6F7081")
    init = transit.parse_init(raw)
    assert (init.balance, init.sequence, init.overdraft_limit) == (5000, 41, 1000)
    assert (init.key_version, init.algorithm_id, init.random) == (1, 0, H("5E6F7081"))
    assert transit.init_bytes(init) == raw
    overdrawn = transit.parse_init(H("FFFFFF38") + raw[4:])
    assert overdrawn.balance == -200  # two's complement: an overdrawn purse
    for bad in (raw[:-1], raw + b"\x00"):
        with pytest.raises(ProtocolError, match="15 bytes"):
            transit.parse_init(bad)


def test_debit_answer_is_tac_then_mac2_and_the_proof_the_other_way() -> None:
    answer = DebitAnswer.parse(H("11223344AABBCCDD"))
    assert (answer.tac, answer.mac2) == (H("11223344"), H("AABBCCDD"))
    proof = DebitAnswer.parse_proof(H("AABBCCDD11223344"))
    assert proof == answer
    with pytest.raises(ProtocolError):
        DebitAnswer.parse(H("11223344"))
    with pytest.raises(ProtocolError):
        DebitAnswer.parse_proof(bytes(9))


def test_the_debit_request_is_sequence_time_mac1_and_parses_strictly() -> None:
    request = DebitRequest(0x131, WHEN, H("A1B2C3D4"))
    raw = H("00000131") + H("20261129075803") + H("A1B2C3D4")
    assert request.to_bytes() == raw
    assert DebitRequest.parse(raw) == request
    with pytest.raises(ProtocolError, match="4 bytes"):
        DebitRequest(0x131, WHEN, H("A1B2C3")).to_bytes()
    with pytest.raises(RecordFormatError, match="15 bytes"):
        DebitRequest.parse(raw[:-1])
    with pytest.raises(RecordFormatError, match="calendar"):
        DebitRequest.parse(raw[:4] + H("20261131075803") + raw[11:])


LOG = H("0029000000000000C80644010090000120261129075803")


def test_a_log_record_parses_round_trips_and_an_empty_one_is_none() -> None:
    record = transit.TransitLogRecord.parse(LOG)
    assert record is not None
    assert (record.sequence, record.amount, record.transaction_type) == (41, 200, 6)
    assert (record.terminal_number, record.when) == ("440100900001", WHEN)
    assert record.to_bytes() == LOG
    assert record.entry().purchase
    load = transit.TransitLogRecord.parse(LOG[:9] + H("02") + LOG[10:])
    assert load is not None and not load.entry().purchase  # a load's sequence is another counter
    assert transit.TransitLogRecord.parse(bytes(23)) is None
    for bad, match in ((LOG[:-1], "23 bytes"), (LOG[:10] + H("4401009000AA") + LOG[16:], "BCD")):
        with pytest.raises(RecordFormatError, match=match):
            transit.TransitLogRecord.parse(bad)
    with pytest.raises(RecordFormatError, match="calendar"):
        transit.TransitLogRecord.parse(LOG[:16] + H("20261131075803"))


@given(
    sequence=st.integers(0, 0xFFFF),
    amount=st.integers(0, 0xFFFFFFFF),
    kind=st.sampled_from([2, 6, 9]),
    terminal=st.from_regex(r"\A[0-9]{12}\Z"),
    when=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)),
)
def test_log_records_round_trip(sequence, amount, kind, terminal, when) -> None:
    record = transit.TransitLogRecord(
        sequence, 0, amount, kind, terminal, when.replace(microsecond=0)
    )
    assert transit.TransitLogRecord.parse(record.to_bytes()) == record


@pytest.mark.parametrize(
    ("sw", "error"),
    [
        (0x9401, InsufficientBalance),
        (0x9302, Mac1Invalid),
        (0x9303, PurseLocked),
        (0x9402, CounterExhausted),
        (0x9403, KeyVersionUnsupported),
        (0x9406, ProofUnavailable),
        (0x6901, NoPurchasePending),
        (0x6985, NoPurchasePending),
    ],
)
def test_each_payment_status_word_is_what_happened_to_the_rider(sw: int, error: type) -> None:
    refusal = payment_error(sw)
    assert isinstance(refusal, error) and refusal.sw == sw
    assert f"{sw:04X}" in str(refusal)


def test_an_unknown_status_word_stays_raw() -> None:
    assert payment_error(0x6F00) is None
    assert payment_error(0x6581) is None
    assert isinstance(ApduError(command=b"\x80\x54", sw=0x6F00), ApduError)


def test_charges_are_four_byte_amounts_in_fen() -> None:
    assert Charge(3000, 500, 6000).total == 9500
    for bad in (-1, 1 << 32, 1.5, True):
        with pytest.raises(ProtocolError):
            Charge(bad)  # type: ignore[arg-type]


def test_sequences_wrap_at_two_bytes() -> None:
    assert sequence_distance(0xFFFF, 0) == 1
    assert sequence_distance(41, 41) == 0
    assert sequence_distance(42, 41) == 0xFFFF
