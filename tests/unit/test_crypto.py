"""Unit tests for apdu.crypto: published known answers, the spec's examples, and properties
checked against compositions of the single-block primitives."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import crypto
from apdu.crypto import Algorithm, UnsupportedAlgorithm
from apdu.errors import SscardError

H = bytes.fromhex

# ISO/IEC 9797-1 Annex B messages and keys (also the FIPS 81 message)
NOW_ALL = b"Now is the time for all "  # 24 bytes, whole DES blocks
NOW_IT = b"Now is the time for it"  # 22 bytes
KEY_K = H("0123456789ABCDEF")
KEY_K_PRIME = H("FEDCBA9876543210")

KEY16 = H("0123456789ABCDEFFEDCBA9876543210")
SM4_KEY = H("0123456789abcdeffedcba9876543210")
FACTOR = H("3635303030307368")  # the spec's L1 example for 650100


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _invert(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


def _cbc_mac_by_hand(encrypt_block: Callable[[bytes], bytes], iv: bytes, data: bytes) -> bytes:
    chain = iv
    size = len(iv)
    for start in range(0, len(data), size):
        chain = encrypt_block(_xor(chain, data[start : start + size]))
    return chain


# --- Algorithm -------------------------------------------------------------------------------


def test_algorithm_ids_are_the_fci_tag_86_values() -> None:
    # spec §1: 9F0C → 86: 01 DES/3DES, 02 SSF33, 03 SM4
    assert Algorithm(0x01) is Algorithm.DES
    assert Algorithm(0x02) is Algorithm.SSF33
    assert Algorithm(0x03) is Algorithm.SM4


def test_algorithm_block_sizes() -> None:
    assert Algorithm.DES.block_size == 8
    assert Algorithm.SSF33.block_size == 16
    assert Algorithm.SM4.block_size == 16


# --- block ciphers: published vectors ---------------------------------------------------------


def test_sm4_encrypts_gbt32907_example_1() -> None:
    # GB/T 32907-2016 Appendix A, example 1: key = plaintext = 0123…3210
    assert crypto.sm4_encrypt(SM4_KEY, SM4_KEY) == H("681edf34d206965e86b3e94f536e4246")


def test_sm4_decrypts_gbt32907_example_1() -> None:
    # GB/T 32907-2016 Appendix A, example 1, backwards
    assert crypto.sm4_decrypt(SM4_KEY, H("681edf34d206965e86b3e94f536e4246")) == SM4_KEY


def test_des_encrypts_worked_example() -> None:
    # J. Orlin Grabbe, "The DES Algorithm Illustrated": K = 133457799BBCDFF1,
    # M = 0123456789ABCDEF → C = 85E813540F0AB405
    key = H("133457799BBCDFF1")
    assert crypto.des_encrypt(key, H("0123456789ABCDEF")) == H("85E813540F0AB405")
    assert crypto.des_decrypt(key, H("85E813540F0AB405")) == H("0123456789ABCDEF")


def test_des_ecb_matches_fips81_appendix_b() -> None:
    # FIPS PUB 81 (DES modes of operation), ECB example: key 0123456789ABCDEF,
    # plaintext "Now is the time for all "
    expected = H("3FA40E8A984D48156A271787AB8883F9893D51EC4B563B53")
    assert crypto.des_encrypt(KEY_K, NOW_ALL) == expected
    assert crypto.des_decrypt(KEY_K, expected) == NOW_ALL


def test_three_key_3des_matches_sp800_67_example() -> None:
    # NIST SP 800-67, TDEA example: keys 0123456789ABCDEF 23456789ABCDEF01 456789ABCDEF0123,
    # plaintext "The qufck brown fox jump" (the typo is in the publication)
    key = H("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123")
    expected = H("A826FD8CE53B855FCCE21C8112256FE668D5C05DD9B6B900")
    assert crypto.des_encrypt(key, b"The qufck brown fox jump") == expected
    assert crypto.des_decrypt(key, expected) == b"The qufck brown fox jump"


def test_two_key_3des_with_equal_halves_is_single_des() -> None:
    # K1 = K2 reduces E_K1(D_K2(E_K1(x))) to E_K1(x): Grabbe's vector again
    key = H("133457799BBCDFF1")
    assert crypto.des_encrypt(key * 2, H("0123456789ABCDEF")) == H("85E813540F0AB405")


def test_two_key_3des_is_ede_of_single_des() -> None:
    # Composition from the single-DES primitive (checked above against published vectors)
    left, right = KEY16[:8], KEY16[8:]
    block = H("0123456789ABCDEF")
    ede = crypto.des_encrypt(left, crypto.des_decrypt(right, crypto.des_encrypt(left, block)))
    assert crypto.des_encrypt(KEY16, block) == ede
    assert crypto.des_decrypt(KEY16, ede) == block


def test_dispatcher_routes_by_algorithm() -> None:
    assert crypto.encrypt(Algorithm.SM4, SM4_KEY, SM4_KEY) == crypto.sm4_encrypt(SM4_KEY, SM4_KEY)
    assert crypto.encrypt(Algorithm.DES, KEY_K, NOW_ALL) == crypto.des_encrypt(KEY_K, NOW_ALL)
    assert crypto.decrypt(Algorithm.DES, KEY_K, crypto.des_encrypt(KEY_K, NOW_ALL)) == NOW_ALL
    assert crypto.decrypt(Algorithm.SM4, SM4_KEY, crypto.sm4_encrypt(SM4_KEY, SM4_KEY)) == SM4_KEY


@given(
    key=st.sampled_from([8, 16, 24]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    blocks=st.integers(min_value=1, max_value=4).flatmap(
        lambda n: st.binary(min_size=8 * n, max_size=8 * n)
    ),
)
def test_des_decrypt_inverts_encrypt(key: bytes, blocks: bytes) -> None:
    assert crypto.des_decrypt(key, crypto.des_encrypt(key, blocks)) == blocks


@given(
    key=st.binary(min_size=16, max_size=16),
    blocks=st.integers(min_value=1, max_value=4).flatmap(
        lambda n: st.binary(min_size=16 * n, max_size=16 * n)
    ),
)
def test_sm4_decrypt_inverts_encrypt(key: bytes, blocks: bytes) -> None:
    assert crypto.sm4_decrypt(key, crypto.sm4_encrypt(key, blocks)) == blocks


@pytest.mark.parametrize("length", [0, 7, 9, 15, 17, 23, 25, 32])
def test_des_rejects_a_key_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="DES key is 8, 16 or 24 bytes"):
        crypto.des_encrypt(bytes(length), bytes(8))


@pytest.mark.parametrize("length", [0, 7, 9, 12])
def test_des_rejects_data_that_is_not_whole_blocks(length: int) -> None:
    with pytest.raises(ValueError, match="whole 8-byte blocks"):
        crypto.des_decrypt(KEY_K, bytes(length))


@pytest.mark.parametrize("length", [8, 15, 17, 24, 32])
def test_sm4_rejects_a_key_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="SM4 key is 16 bytes"):
        crypto.sm4_encrypt(bytes(length), bytes(16))


@pytest.mark.parametrize("length", [0, 8, 24])
def test_sm4_rejects_data_that_is_not_whole_blocks(length: int) -> None:
    with pytest.raises(ValueError, match="whole 16-byte blocks"):
        crypto.sm4_encrypt(SM4_KEY, bytes(length))


# --- SSF33 ----------------------------------------------------------------------------------

SSF33_CALLS: list[Callable[[], object]] = [
    lambda: crypto.encrypt(Algorithm.SSF33, bytes(16), bytes(16)),
    lambda: crypto.decrypt(Algorithm.SSF33, bytes(16), bytes(16)),
    lambda: crypto.diversify(Algorithm.SSF33, bytes(16), FACTOR),
    lambda: crypto.diversify_levels(Algorithm.SSF33, bytes(16), []),
    lambda: crypto.card_key(Algorithm.SSF33, bytes(16), "650100", bytes(13)),
    lambda: crypto.session_key(Algorithm.SSF33, bytes(16), bytes(8)),
    lambda: crypto.auth_data(Algorithm.SSF33, bytes(16), bytes(8)),
    lambda: crypto.mac(Algorithm.SSF33, bytes(16), b"data"),
]


@pytest.mark.parametrize("call", SSF33_CALLS)
def test_ssf33_is_refused_with_a_pointer_to_psam_or_hsm(call: Callable[[], object]) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="only be served by a PSAM or an HSM") as info:
        call()
    assert isinstance(info.value, SscardError)
    assert info.value.algorithm is Algorithm.SSF33


# --- diversification factors (spec §3.5) ------------------------------------------------------


def test_province_factor_matches_the_spec_example() -> None:
    # spec §3.5 L1: 650100 → 36 35 30 30 30 30 73 68
    assert crypto.province_factor("650100") == H("3635303030307368")


def test_city_factor_matches_the_spec_example() -> None:
    # spec §3.5 L2: 650100 → 36 35 30 31 30 30 73 78
    assert crypto.city_factor("650100") == H("3635303130307378")


def test_zhejiang_city_factor_uses_four_digits_and_00sx() -> None:
    # spec §3.5 L2 exception: 33… → ASCII(4 digits) + 30 30 73 78
    assert crypto.city_factor("330100") == b"3301" + H("30307378")
    assert crypto.city_factor("330782") == b"3307" + H("30307378")


def test_zhejiang_province_factor_follows_the_general_rule() -> None:
    assert crypto.province_factor("330100") == H("3333303030307368")


def test_card_factor_is_t6_to_t13_of_the_historical_bytes() -> None:
    # spec §3.5 L3: hist 00 81 4A 44 46 86 60 51 99 00 00 xx xx → 86 60 51 99 00 00 xx xx
    historical = H("00814A44468660519900001234")
    assert crypto.card_factor(historical) == H("8660519900001234")


def test_card_factor_refuses_short_historical_bytes() -> None:
    with pytest.raises(ValueError, match="T1…T13"):
        crypto.card_factor(H("00814A4446866051990000"))


@pytest.mark.parametrize("code", ["65010", "6501000", "65010a", "", "６５０１００"])
def test_factors_refuse_a_malformed_city_code(code: str) -> None:
    with pytest.raises(ValueError, match="6 ASCII digits"):
        crypto.province_factor(code)
    with pytest.raises(ValueError, match="6 ASCII digits"):
        crypto.city_factor(code)


# --- diversification (spec §3.5) ------------------------------------------------------------


def test_single_length_des_diversification_is_des_of_the_factor() -> None:
    assert crypto.diversify(Algorithm.DES, KEY_K, FACTOR) == crypto.des_encrypt(KEY_K, FACTOR)


def test_double_length_des_diversification_is_3des_of_f_and_not_f() -> None:
    expected = crypto.des_encrypt(KEY16, FACTOR) + crypto.des_encrypt(KEY16, _invert(FACTOR))
    assert crypto.diversify(Algorithm.DES, KEY16, FACTOR) == expected
    assert _invert(FACTOR) == H("C9CACFCFCFCF8C97")


def test_sm4_diversification_is_sm4_of_f_and_not_f() -> None:
    expected = crypto.sm4_encrypt(SM4_KEY, FACTOR + _invert(FACTOR))
    assert crypto.diversify(Algorithm.SM4, SM4_KEY, FACTOR) == expected
    assert len(expected) == 16


@pytest.mark.parametrize("length", [0, 4, 7, 9, 16])
def test_diversify_refuses_a_factor_that_is_not_8_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="factor is 8 bytes"):
        crypto.diversify(Algorithm.DES, KEY16, bytes(length))


def test_des_diversify_refuses_a_triple_length_key() -> None:
    with pytest.raises(ValueError, match="8- or 16-byte key"):
        crypto.diversify(Algorithm.DES, bytes(24), FACTOR)


@pytest.mark.parametrize(("alg", "root"), [(Algorithm.DES, KEY16), (Algorithm.SM4, SM4_KEY)])
def test_diversify_levels_applies_factors_root_first(alg: Algorithm, root: bytes) -> None:
    factors = [H("3635303030307368"), H("3635303130307378"), H("8660519900001234")]
    level1 = crypto.diversify(alg, root, factors[0])
    level2 = crypto.diversify(alg, level1, factors[1])
    level3 = crypto.diversify(alg, level2, factors[2])
    assert crypto.diversify_levels(alg, root, factors) == level3
    assert crypto.diversify_levels(alg, root, factors[:1]) == level1


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_card_key_uses_the_last_levels_of_province_city_card(levels: int) -> None:
    historical = H("00814A44468660519900001234")
    all_factors = [H("3635303030307368"), H("3635303130307378"), H("8660519900001234")]
    expected = crypto.diversify_levels(Algorithm.DES, KEY16, all_factors[3 - levels :])
    actual = crypto.card_key(Algorithm.DES, KEY16, "650100", historical, levels=levels)
    assert actual == expected


def test_card_key_defaults_to_three_levels() -> None:
    historical = H("00814A44468660519900001234")
    three = crypto.card_key(Algorithm.SM4, SM4_KEY, "650100", historical, levels=3)
    assert crypto.card_key(Algorithm.SM4, SM4_KEY, "650100", historical) == three


@pytest.mark.parametrize("levels", [0, 4, -1])
def test_card_key_refuses_a_level_count_outside_1_to_3(levels: int) -> None:
    with pytest.raises(ValueError, match="1, 2 or 3 levels"):
        crypto.card_key(Algorithm.DES, KEY16, "650100", bytes(13), levels=levels)


# --- session keys (spec §3.6) -----------------------------------------------------------------


def test_des_session_key_pads_a_4_byte_random_with_zeros() -> None:
    random4 = H("1A2B3C4D")
    padded = H("1A2B3C4D00000000")
    assert crypto.session_key(Algorithm.DES, KEY16, random4) == crypto.session_key(
        Algorithm.DES, KEY16, padded
    )


def test_single_length_des_session_key_is_des_of_the_random() -> None:
    random8 = H("0102030405060708")
    assert crypto.session_key(Algorithm.DES, KEY_K, random8) == crypto.des_encrypt(KEY_K, random8)


def test_double_length_des_session_key_is_e_l_d_r_e_l() -> None:
    # spec §3.6: E_L(D_R(E_L(in))), composed here from single DES
    random8 = H("0102030405060708")
    left, right = KEY16[:8], KEY16[8:]
    ede = crypto.des_encrypt(left, crypto.des_decrypt(right, crypto.des_encrypt(left, random8)))
    assert crypto.session_key(Algorithm.DES, KEY16, random8) == ede


@pytest.mark.parametrize("random", [H("1A2B3C4D"), H("1A2B3C4D5E6F7081"), bytes(range(16))])
def test_sm4_session_key_pads_the_random_to_16_bytes(random: bytes) -> None:
    expected = crypto.sm4_encrypt(SM4_KEY, random.ljust(16, b"\x00"))
    assert crypto.session_key(Algorithm.SM4, SM4_KEY, random) == expected


@pytest.mark.parametrize(
    ("alg", "key", "length"),
    [(Algorithm.DES, KEY16, 16), (Algorithm.DES, KEY16, 6), (Algorithm.SM4, SM4_KEY, 12)],
)
def test_session_key_refuses_a_random_of_the_wrong_length(
    alg: Algorithm, key: bytes, length: int
) -> None:
    with pytest.raises(ValueError, match="session random"):
        crypto.session_key(alg, key, bytes(length))


def test_des_session_key_refuses_a_triple_length_key() -> None:
    with pytest.raises(ValueError, match="8- or 16-byte key"):
        crypto.session_key(Algorithm.DES, bytes(24), bytes(8))


# --- authentication data (spec §3.6, S3-P9 §9.4) ----------------------------------------------


@pytest.mark.parametrize("key", [KEY_K, KEY16])
def test_des_auth_data_encrypts_the_original(key: bytes) -> None:
    original = H("0102030405060708")
    assert crypto.auth_data(Algorithm.DES, key, original) == crypto.des_encrypt(key, original)


def test_sm4_auth_data_folds_the_padded_encryption_into_8_bytes() -> None:
    original = H("0102030405060708")
    block = crypto.sm4_encrypt(SM4_KEY, original + bytes(8))
    assert crypto.auth_data(Algorithm.SM4, SM4_KEY, original) == _xor(block[:8], block[8:])


def test_sm4_session_key_is_16_bytes_and_auth_data_8() -> None:
    session = crypto.session_key(Algorithm.SM4, SM4_KEY, H("11223344"))
    assert len(session) == 16
    assert len(crypto.auth_data(Algorithm.SM4, session, H("A1A2A3A4A5A6A7A8"))) == 8


@pytest.mark.parametrize("length", [0, 4, 7, 9, 16])
def test_auth_data_refuses_original_data_that_is_not_8_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="original data is 8 bytes"):
        crypto.auth_data(Algorithm.SM4, SM4_KEY, bytes(length))


# --- padding and MAC (spec §3.6, ISO/IEC 9797-1) ---------------------------------------------


@pytest.mark.parametrize(
    ("data", "size", "padded"),
    [
        (b"", 8, H("8000000000000000")),
        (H("01020304050607"), 8, H("0102030405060780")),
        (H("0102030405060708"), 8, H("01020304050607088000000000000000")),
        (H("01"), 16, H("01800000000000000000000000000000")),
    ],
)
def test_iso9797_method_2_padding_always_appends_80(data: bytes, size: int, padded: bytes) -> None:
    assert crypto.iso9797_pad(data, size) == padded


@given(data=st.binary(max_size=64), size=st.sampled_from([8, 16]))
def test_iso9797_padding_is_80_then_zeros_to_a_whole_block(data: bytes, size: int) -> None:
    padded = crypto.iso9797_pad(data, size)
    assert len(padded) % size == 0
    assert len(data) < len(padded) <= len(data) + size
    assert padded[: len(data)] == data
    assert padded[len(data)] == 0x80
    assert not any(padded[len(data) + 1 :])


@pytest.mark.parametrize(
    ("data", "expected"),
    [(NOW_ALL, H("10E1F0F1")), (NOW_IT, H("A924C721"))],
)
def test_single_des_mac_matches_iso9797_1_algorithm_1_padding_2(
    data: bytes, expected: bytes
) -> None:
    # ISO/IEC 9797-1:1999 Annex B, MAC algorithm 1, padding method 2, K = 0123456789ABCDEF
    # (full MACs 10E1F0F108341B6D and A924C72136149211; the spec keeps the first 4 bytes)
    assert crypto.mac(Algorithm.DES, KEY_K, data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [(NOW_ALL, H("E9086230")), (NOW_IT, H("5A692CE6"))],
)
def test_double_length_des_mac_matches_iso9797_1_algorithm_3_padding_2(
    data: bytes, expected: bytes
) -> None:
    # ISO/IEC 9797-1:1999 Annex B, MAC algorithm 3 (retail MAC), padding method 2,
    # K = 0123456789ABCDEF, K' = FEDCBA9876543210 (full MACs E9086230CA3BE796 and
    # 5A692CE64F404145, the same values the RustCrypto retail-mac test suite uses)
    assert crypto.mac(Algorithm.DES, KEY_K + KEY_K_PRIME, data) == expected


def test_des_mac_with_iv_extends_the_fips81_cbc_example() -> None:
    # FIPS PUB 81 CBC example: key 0123456789ABCDEF, IV 1234567890ABCDEF,
    # "Now is the time for all " → last block 683788499A7C05F6. The padding adds one block.
    last = H("683788499A7C05F6")
    expected = crypto.des_encrypt(KEY_K, _xor(last, H("8000000000000000")))[:4]
    assert crypto.mac(Algorithm.DES, KEY_K, NOW_ALL, H("1234567890ABCDEF")) == expected


def test_retail_mac_is_single_des_cbc_then_decrypt_k2_encrypt_k1() -> None:
    # Composition from single DES: CBC under K1, then E_K1(D_K2(last))
    data = bytes(range(29))
    iv = H("0102030405060708")
    chain = _cbc_mac_by_hand(lambda b: crypto.des_encrypt(KEY_K, b), iv, data + H("800000"))
    expected = crypto.des_encrypt(KEY_K, crypto.des_decrypt(KEY_K_PRIME, chain))[:4]
    assert crypto.mac(Algorithm.DES, KEY_K + KEY_K_PRIME, data, iv) == expected


def test_full_3des_mac_option_chains_every_block_under_3des() -> None:
    data = bytes(range(29))
    chain = _cbc_mac_by_hand(lambda b: crypto.des_encrypt(KEY16, b), bytes(8), data + H("800000"))
    assert crypto.mac(Algorithm.DES, KEY16, data, retail=False) == chain[:4]
    assert crypto.mac(Algorithm.DES, KEY16, data, retail=True) != chain[:4]


def test_des_mac_pads_even_a_whole_block() -> None:
    block = H("0102030405060708")
    unpadded = crypto.des_encrypt(KEY_K, block)[:4]
    padded = _cbc_mac_by_hand(
        lambda b: crypto.des_encrypt(KEY_K, b), bytes(8), block + H("8000000000000000")
    )[:4]
    assert crypto.mac(Algorithm.DES, KEY_K, block) == padded
    assert padded != unpadded


def test_mac_pads_a_4_byte_iv_with_zeros() -> None:
    short = crypto.mac(Algorithm.DES, KEY16, NOW_IT, H("1A2B3C4D"))
    assert short == crypto.mac(Algorithm.DES, KEY16, NOW_IT, H("1A2B3C4D00000000"))
    short = crypto.mac(Algorithm.SM4, SM4_KEY, NOW_IT, H("1A2B3C4D"))
    assert short == crypto.mac(Algorithm.SM4, SM4_KEY, NOW_IT, H("1A2B3C4D").ljust(16, b"\x00"))


def test_sm4_mac_xors_the_halves_of_the_cbc_result_and_keeps_4_bytes() -> None:
    # The fold documented in apdu.crypto.mac: (left 8 XOR right 8)[:4]; composed from SM4-ECB
    data = NOW_IT
    iv = bytes(range(16))
    chain = _cbc_mac_by_hand(
        lambda b: crypto.sm4_encrypt(SM4_KEY, b), iv, data + H("80000000000000000000")
    )
    assert crypto.mac(Algorithm.SM4, SM4_KEY, data, iv) == _xor(chain[:8], chain[8:])[:4]


@pytest.mark.parametrize(
    ("alg", "key", "iv"),
    [
        (Algorithm.DES, KEY16, bytes(16)),
        (Algorithm.DES, KEY16, bytes(5)),
        (Algorithm.SM4, SM4_KEY, bytes(12)),
        (Algorithm.SM4, SM4_KEY, bytes(32)),
    ],
)
def test_mac_refuses_an_iv_of_the_wrong_length(alg: Algorithm, key: bytes, iv: bytes) -> None:
    with pytest.raises(ValueError, match="MAC IV"):
        crypto.mac(alg, key, b"data", iv)


@pytest.mark.parametrize("length", [7, 24])
def test_des_mac_refuses_keys_other_than_single_or_double_length(length: int) -> None:
    with pytest.raises(ValueError, match="8- or 16-byte key"):
        crypto.mac(Algorithm.DES, bytes(length), b"data")


def test_sm4_mac_refuses_a_short_key() -> None:
    with pytest.raises(ValueError, match="SM4 key is 16 bytes"):
        crypto.mac(Algorithm.SM4, bytes(8), b"data")
