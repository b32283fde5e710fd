"""Unit tests for drivers.soft_sam: answers checked against compositions of apdu.crypto
primitives, the production refusal, the warning, SSF33, missing keys and key-file permissions.

The expected values build the three diversification factors by hand from spec §3.5 (L1 =
ASCII of 2 province digits + ``0000sh``, L2 = ASCII of the city code + ``sx`` or, in Zhejiang,
4 digits + ``00sx``, L3 = historical bytes T6…T13) and chain :func:`apdu.crypto.diversify`,
:func:`~apdu.crypto.session_key` and :func:`~apdu.crypto.auth_data`; they do not go through
:meth:`RootKeys.card_key` or :func:`apdu.crypto.card_key`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import GZ_CARD, HZ_CARD, SSF33_CARD

from apdu import crypto
from apdu.errors import ProtocolError
from apdu.national import NationalCode
from apdu.records import CardAlgorithm, Generation
from apdu.sam import (
    AlgorithmNotSupported,
    AuthRequest,
    AuthResponse,
    CardIdentity,
    RkssseMissing,
    SecurityModule,
)
from config.settings import Settings
from drivers.keyfile import (
    KeyFileError,
    RootKeys,
    load_root_keys,
    parse_root_keys,
    private_copy,
    read_secret,
)
from drivers.soft_sam import SoftSam, SoftSamRefused, compute_auth, open_soft_sam
from drivers.virtual import TEST_KEYS

H = bytes.fromhex
TEST_ROOTS = TEST_KEYS / "test-roots.toml"
KEYS = load_root_keys(TEST_ROOTS, require_private=False)  # git keeps no modes; tested below
DEV = Settings()

# the test roots of drivers/virtual/test_keys/test-roots.toml, written out again
DES_IRK = H("DEE24E50EF02A14BE9BF852D0C481B75")
DES_RKSSSE = H("BAFDE5708157FF982396727236F41ACB")
SM4_IRK = H("2984BB6AFD4A4A28D769EB529B9A987C")
SM4_RKSSSE = H("E04B3B4DC7329326F7495534762AAE9B")


I_FACTOR = H("1122334455667788")
I_ORIGINAL = H("0102030405060708")
E_FACTOR = H("A1A2A3A4A5A6A7A8")
E_ORIGINAL = H("B1B2B3B4B5B6B7B8")


def expected_auth(
    alg: crypto.Algorithm,
    root: bytes,
    factors: tuple[bytes, bytes, bytes],
    random: bytes,
    original: bytes,
) -> bytes:
    key = root
    for factor in factors:  # root → L1 → L2 → L3 (spec §3.5, S3-P9 figure 12)
        key = crypto.diversify(alg, key, factor)
    return crypto.auth_data(alg, crypto.session_key(alg, key, random), original)


GZ_FACTORS = (b"440000sh", b"440100sx", H("8697440100A1B2C3"))
HZ_FACTORS = (b"330000sh", b"330100sx", H("8697330104112233"))


def test_a_2_0_des_card_gets_the_internal_answer_only() -> None:
    sam = SoftSam(KEYS, DEV)
    response = sam.authenticate(AuthRequest(GZ_CARD, I_FACTOR, I_ORIGINAL))
    des = crypto.Algorithm.DES
    assert response == AuthResponse(
        expected_auth(des, DES_IRK, GZ_FACTORS, I_FACTOR, I_ORIGINAL), None
    )


def test_a_3_0_sm4_card_gets_both_answers_from_irk_and_rkssse() -> None:
    sam = SoftSam(KEYS, DEV)
    request = AuthRequest(HZ_CARD, I_FACTOR, I_ORIGINAL, E_FACTOR, E_ORIGINAL)
    response = sam.authenticate(request)
    sm4 = crypto.Algorithm.SM4
    assert response.internal_expected == expected_auth(
        sm4, SM4_IRK, HZ_FACTORS, I_FACTOR, I_ORIGINAL
    )
    assert response.external_cryptogram == expected_auth(
        sm4, SM4_RKSSSE, HZ_FACTORS, E_FACTOR, E_ORIGINAL
    )
    assert len(response.internal_expected) == len(response.external_cryptogram or b"") == 8
    assert response.internal_expected != response.external_cryptogram


def test_a_3_0_des_card_uses_the_des_rkssse_root() -> None:
    card = replace(GZ_CARD, generation=Generation.V3)
    response = compute_auth(KEYS, AuthRequest(card, I_FACTOR, I_ORIGINAL, E_FACTOR, E_ORIGINAL))
    assert response.external_cryptogram == expected_auth(
        crypto.Algorithm.DES, DES_RKSSSE, GZ_FACTORS, E_FACTOR, E_ORIGINAL
    )


@given(
    st.sampled_from([GZ_CARD, HZ_CARD]),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=8, max_size=8),
)
def test_any_challenge_gives_the_composition_of_the_primitives(
    card: CardIdentity, factor: bytes, original: bytes
) -> None:
    alg = crypto.Algorithm.DES if card.algorithm == CardAlgorithm.DES else crypto.Algorithm.SM4
    root, factors = (DES_IRK, GZ_FACTORS) if card is GZ_CARD else (SM4_IRK, HZ_FACTORS)
    response = compute_auth(KEYS, AuthRequest(card, factor, original))
    assert response.internal_expected == expected_auth(alg, root, factors, factor, original)


def test_the_software_sam_is_a_security_module_named_soft_sam() -> None:
    sam = SoftSam(KEYS, DEV)
    assert isinstance(sam, SecurityModule)
    assert sam.kind == "soft-sam"
    assert sam.terminal_number() == "440100000001"
    sam.close()


def test_check_passes_cards_the_keys_serve() -> None:
    sam = SoftSam(KEYS, DEV)
    sam.check(GZ_CARD)
    sam.check(HZ_CARD)


def test_ssf33_is_refused_as_not_public() -> None:
    sam = SoftSam(KEYS, DEV)
    with pytest.raises(AlgorithmNotSupported) as caught:
        sam.check(SSF33_CARD)
    message = str(caught.value)
    assert "SSF33" in message and "not a public algorithm" in message
    assert "PSAM or an HSM" in message
    assert caught.value.code == NationalCode.PSAM_ALGORITHM_MISSING == -2202
    with pytest.raises(AlgorithmNotSupported, match="PSAM or an HSM"):
        sam.authenticate(AuthRequest(SSF33_CARD, I_FACTOR, I_ORIGINAL))


def test_an_algorithm_without_an_irk_root_is_not_supported() -> None:
    des_only = RootKeys({CardAlgorithm.DES: DES_IRK}, source="des-only.toml")
    sam = SoftSam(des_only, DEV)
    with pytest.raises(AlgorithmNotSupported, match="no SM4 IRK root") as caught:
        sam.check(HZ_CARD)
    assert "des-only.toml" in str(caught.value)
    with pytest.raises(AlgorithmNotSupported):
        sam.authenticate(AuthRequest(HZ_CARD, I_FACTOR, I_ORIGINAL, E_FACTOR, E_ORIGINAL))


def test_a_3_0_card_without_an_rkssse_root_is_refused_and_a_2_0_card_is_not() -> None:
    no_rkssse = RootKeys({CardAlgorithm.DES: DES_IRK, CardAlgorithm.SM4: SM4_IRK})
    sam = SoftSam(no_rkssse, DEV)
    with pytest.raises(RkssseMissing) as caught:
        sam.check(HZ_CARD)
    assert caught.value.code == NationalCode.PSAM_RKSSSE_MISSING == -2203
    with pytest.raises(RkssseMissing):
        sam.authenticate(AuthRequest(HZ_CARD, I_FACTOR, I_ORIGINAL, E_FACTOR, E_ORIGINAL))
    sam.check(GZ_CARD)
    assert sam.authenticate(AuthRequest(GZ_CARD, I_FACTOR, I_ORIGINAL)).external_cryptogram is None


def test_half_an_external_pair_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="both a factor and an original"):
        compute_auth(KEYS, AuthRequest(HZ_CARD, I_FACTOR, I_ORIGINAL, E_FACTOR, None))


def test_a_card_whose_keys_cannot_be_derived_is_a_protocol_error() -> None:
    short = replace(GZ_CARD, historical=H("00814E4323"))
    with pytest.raises(ProtocolError, match="historical bytes"):
        compute_auth(KEYS, AuthRequest(short, I_FACTOR, I_ORIGINAL))
    with pytest.raises(ProtocolError, match="8 bytes each"):
        AuthRequest(GZ_CARD, I_FACTOR[:7], I_ORIGINAL)


def test_production_refuses_the_software_sam() -> None:
    with pytest.raises(SoftSamRefused) as caught:
        SoftSam(KEYS, Settings(production=True, source="/etc/sscard/terminal.toml"))
    message = str(caught.value)
    assert (
        "the software SAM is for development and tests; production terminals use a PSAM or an "
        "HSM" in message
    )
    assert "/etc/sscard/terminal.toml" in message


def test_production_refuses_before_reading_the_key_file(tmp_path: Path) -> None:
    with pytest.raises(SoftSamRefused):
        open_soft_sam(tmp_path / "absent.toml", Settings(production=True))


def test_every_construction_warns_that_the_keys_are_software_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="drivers.soft_sam"):
        SoftSam(KEYS, DEV)
        SoftSam(KEYS, DEV)
    records = [r for r in caplog.records if r.name == "drivers.soft_sam"]
    assert len(records) == 2
    for record in records:
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert "software keys, not for production" in message
        assert f"key_file={TEST_ROOTS}" in message
        assert "event=soft_sam_open" in message


def test_a_key_file_others_can_read_is_refused_and_a_private_one_is_accepted(
    tmp_path: Path,
) -> None:
    path = private_copy(TEST_ROOTS, tmp_path / "roots.toml")
    assert open_soft_sam(path, DEV).terminal_number() == "440100000001"
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="0600"):
        open_soft_sam(path, DEV)
    os.chmod(path, 0o600)
    sam = open_soft_sam(path, DEV)
    assert sam.authenticate(AuthRequest(GZ_CARD, I_FACTOR, I_ORIGINAL)) == compute_auth(
        KEYS, AuthRequest(GZ_CARD, I_FACTOR, I_ORIGINAL)
    )


def test_a_secret_file_must_be_private_and_hold_one_token(tmp_path: Path) -> None:
    path = tmp_path / "hsm.token"
    path.write_text("  test-token-1\n")
    path.chmod(0o600)
    assert read_secret(path, "HSM token") == "test-token-1"
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match=r"HSM token file .* must be 0600"):
        read_secret(path, "HSM token")
    for bad in ("", "two words\n", "a\nb\n"):
        path.write_text(bad)
        path.chmod(0o600)
        with pytest.raises(KeyFileError, match="one token on one line"):
            read_secret(path, "HSM token")
    with pytest.raises(KeyFileError, match="cannot read HSM token file"):
        read_secret(tmp_path / "missing", "HSM token")


GOOD_KEYS = {"test_keys": True, "des": {"irk": "00" * 16, "dpk": "11" * 16}}


def test_a_key_file_may_carry_a_des_purchase_root() -> None:
    keys = parse_root_keys(GOOD_KEYS, "k.toml")
    assert keys.dpk == H("11" * 16) and keys.irk == {CardAlgorithm.DES: bytes(16)}
    assert parse_root_keys({"des": {"irk": "00" * 16}}).dpk is None


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"sm4": {"irk": "00" * 16, "dpk": "11" * 16}}, r"\[sm4\] holds irk and optionally rkssse"),
        ({"des": {"irk": "00" * 16, "mac": "11" * 16}}, r"not \['mac'\]"),
        ({"des": {"rkssse": "00" * 16}}, r"\[des\] holds irk"),
        ({"des": {"irk": "00" * 15}}, "must be 16 bytes, got 15"),
        ({"des": {"irk": "zz" * 16}}, "not hexadecimal"),
        ({"des": "irk"}, r"must be a table \[des\]"),
        ({"sm2": {}}, r"unknown keys \['sm2'\]"),
        ({}, r"no \[des\] or \[sm4\] keys"),
        ({"des": {"irk": "00" * 16}, "terminal_number": "12345"}, "12 digits"),
        ({"des": {"irk": "00" * 16}, "terminal_number": "４４０１０００００００１"}, "12 digits"),
        ({"des": {"irk": "00" * 16}, "test_keys": "false"}, "test_keys must be true or false"),
    ],
)
def test_malformed_key_files_are_clear_errors(data: dict, needle: str) -> None:
    with pytest.raises(KeyFileError, match=needle):
        parse_root_keys(data, "k.toml")


# --- issue 10 finding 9, the key files' parsing layer ---


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"test_keys = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
        (b"[des]\n" + b".".join([b"irk"] * 5000) + b' = "00"\n', "nested deeper than 16"),
        (b'[des]\nirk = "\xff"\n', r"not UTF-8 text \(line 2, byte 13\)"),
        (b"[des]\nirk = \n", r"not valid TOML: .*line 2"),
    ],
)
def test_a_key_file_that_does_not_parse_is_an_error_naming_it(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    path = tmp_path / "roots.toml"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=needle) as caught:
        load_root_keys(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_key_and_secret_file_names_with_a_nul_are_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"cannot read key file .*holds no NUL"):
        load_root_keys(tmp_path / "roots\x00.toml")
    with pytest.raises(KeyFileError, match=r"cannot read key file .*holds no NUL"):
        load_root_keys(tmp_path / "roots\x00.toml", require_private=False)
    with pytest.raises(KeyFileError, match=r"cannot read HSM token file .*holds no NUL"):
        read_secret(tmp_path / "hsm\x00.token", "HSM token")


def test_a_token_with_a_control_character_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hsm.token"
    for bad in ("tok\x00en\n", "tok\x1ben", "tok\x7fen"):
        path.write_text(bad)
        path.chmod(0o600)
        with pytest.raises(KeyFileError, match="one token on one line"):
            read_secret(path, "HSM token")
