"""Purchase MAC1/MAC2 (apdu.purse) against a reference written here from the spec text alone.

The reference uses the `cryptography` primitives directly (3DES ECB, single-DES CBC) and none
of apdu.crypto, so a slip in the project's diversification, session-key or MAC code shows up.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from apdu import purse
from apdu.errors import ProtocolError
from apdu.purse import PurchaseRequest

H = bytes.fromhex
ROOT = H(
    "AD470F6DD49BD6BCA8FFC433079B09AC"
)  # the TEST KEY purchase root of drivers/virtual/test_keys
WHEN = datetime(2026, 11, 29, 8, 15, 42)
REQUEST = PurchaseRequest(
    card_random=H("1A2B3C4D"),
    card_sequence=0x0012,
    amount=200,  # 2.00 yuan
    transaction_type=purse.TYPE_PURCHASE,
    when=WHEN,
    key_version=0x01,
    algorithm_id=purse.PURSE_ALG_DES,
    factors=(H("3101000012345678"), H("3101000000000000"), H("3100000000000000")),
)


def ecb_3des(key16: bytes, data: bytes) -> bytes:
    encryptor = Cipher(TripleDES(key16 + key16[:8]), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def reference_mac(key8: bytes, data: bytes) -> bytes:
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 8)
    encryptor = Cipher(TripleDES(key8 * 3), modes.CBC(bytes(8))).encryptor()
    return (encryptor.update(padded) + encryptor.finalize())[-8:][:4]


def reference(
    request: PurchaseRequest, sequence: int, terminal: str, key: bytes = ROOT
) -> tuple[bytes, bytes]:
    # the factors from the root down: region, issuer, card (the request lists the card first)
    for factor in reversed(request.factors):
        key = ecb_3des(key, factor) + ecb_3des(key, bytes(b ^ 0xFF for b in factor))
    seed = request.card_random + request.card_sequence.to_bytes(2, "big")
    sespk = ecb_3des(key, seed + (sequence & 0xFFFF).to_bytes(2, "big"))
    amount = request.amount.to_bytes(4, "big")
    stamp = bytes.fromhex(request.when.strftime("%Y%m%d%H%M%S"))
    mac1 = reference_mac(sespk, amount + bytes([request.transaction_type]) + H(terminal) + stamp)
    return mac1, reference_mac(sespk, amount)


def project(
    request: PurchaseRequest, sequence: int, terminal: str, key: bytes = ROOT
) -> tuple[bytes, bytes]:
    sespk = purse.session_key(purse.card_purchase_key(key, request), request, sequence)
    return purse.mac1(sespk, request, terminal), purse.mac2(sespk, request.amount)


def test_mac1_and_mac2_match_the_reference() -> None:
    assert project(REQUEST, 7, "440100813475") == reference(REQUEST, 7, "440100813475")


def test_only_the_low_two_bytes_of_the_terminal_sequence_enter_the_session_key() -> None:
    assert project(REQUEST, 0x00010007, "440100813475") == project(REQUEST, 7, "440100813475")
    assert project(REQUEST, 8, "440100813475") != project(REQUEST, 7, "440100813475")


@given(
    random=st.binary(min_size=4, max_size=4),
    card_sequence=st.integers(0, 0xFFFF),
    amount=st.integers(1, purse.AMOUNT_MAX),
    sequence=st.integers(0, 0xFFFFFFFF),
    serial=st.binary(min_size=8, max_size=8),
)
def test_any_purchase_matches_the_reference(random, card_sequence, amount, sequence, serial):
    request = PurchaseRequest(
        random,
        card_sequence,
        amount,
        purse.TYPE_COMPOUND,
        WHEN,
        2,
        0,
        (serial, *REQUEST.factors[1:]),
    )
    assert project(request, sequence, "330100000042") == reference(
        request, sequence, "330100000042"
    )
    assert purse.parse_mac1_data(request.mac1_data()) == request


def test_mac1_data_is_the_data_of_the_spec_in_order_with_as_many_factors_as_levels() -> None:
    fixed = H(
        "1A2B3C4D"  # card random
        "0012"  # card transaction sequence
        "000000C8"  # amount, fen
        "06"  # purchase
        "20261129"
        "081542"  # date, time
        "01"
        "00"  # key version, algorithm id
    )
    serial, issuer, region = H("3101000012345678"), H("3101000000000000"), H("3100000000000000")
    assert REQUEST.mac1_data() == fixed + serial + issuer + region  # Lc 2C
    assert REQUEST.mac1_data(2) == fixed + serial + issuer  # Lc 24: the layout of spec §7.2
    assert REQUEST.mac1_data(1) == fixed + serial  # Lc 1C
    assert [len(REQUEST.mac1_data(n)) for n in (1, 2, 3)] == [0x1C, 0x24, 0x2C]
    for levels in (0, 4):
        with pytest.raises(ProtocolError, match=f"{levels} diversification levels asked for"):
            REQUEST.mac1_data(levels)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_a_key_n_levels_above_the_card_computes_what_the_root_computes(levels: int) -> None:
    """What a PSAM holding the purchase key at ``levels`` levels computes from the factors it
    is sent equals what the card's DPK (3 levels from the root) gives."""
    above = list(reversed(REQUEST.factors))[: 3 - levels]  # region, then issuer
    held = ROOT
    for factor in above:
        held = ecb_3des(held, factor) + ecb_3des(held, bytes(b ^ 0xFF for b in factor))
    sent = purse.parse_mac1_data(REQUEST.mac1_data(levels))
    assert sent.factors == REQUEST.factors[:levels]
    assert project(sent, 9, "440100813475", held) == reference(REQUEST, 9, "440100813475")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"card_random": H("01")}, "random is 4 bytes"),
        ({"factors": (H("01"), H("3101000000000000"))}, "8 bytes each"),
        ({"factors": ()}, "1 to 3 diversification factors, got 0"),
        ({"factors": (H("3101000012345678"),) * 4}, "1 to 3 diversification factors, got 4"),
        ({"amount": 0}, "1 … 4294967295 fen"),
        ({"amount": 1 << 32}, "1 … 4294967295 fen"),
        ({"card_sequence": 0x10000}, "sequence is 2 bytes"),
        ({"transaction_type": 0x02}, "not a purchase"),
        ({"key_version": 256}, "one byte each"),
    ],
)
def test_malformed_requests_are_clear_errors(change: dict, needle: str) -> None:
    fields = {name: getattr(REQUEST, name) for name in PurchaseRequest.__dataclass_fields__}
    with pytest.raises(ProtocolError, match=needle):
        PurchaseRequest(**(fields | change))


def test_mac1_data_from_a_terminal_is_checked() -> None:
    for length in (0x1B, 0x1D, 0x2D, 0x34, 20):
        with pytest.raises(ProtocolError, match=rf"20 \+ 8·n bytes \(n = 1-3\), got {length}"):
            purse.parse_mac1_data(REQUEST.mac1_data()[:length].ljust(length, b"\x00"))
    bad_time = bytearray(REQUEST.mac1_data())
    bad_time[11:18] = H("20261399081542")  # month 13
    with pytest.raises(ProtocolError, match="BCD"):
        purse.parse_mac1_data(bytes(bad_time))
    with pytest.raises(ProtocolError, match="12 digits"):
        project(REQUEST, 1, "44010081347")
