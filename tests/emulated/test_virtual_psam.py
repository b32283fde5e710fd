"""The virtual PSAM byte by byte (spec doc §3.5): SELECT, BF EC, BF DE, 80 FA, READ BINARY, T=0
shaping, and PSAM files that do not describe a PSAM.

Expected cryptograms are composed here from apdu.crypto block primitives with the
diversification factors written out by hand (spec doc §3.5: L1 = 2 province digits + ``0000sh``,
L2 = city code + ``sx``, L3 = historical bytes T6…T13).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import KEYS, make_psam

from apdu import crypto, purse
from apdu.psam import AID_ENV_DES, AID_ENV_SM4, AID_ENV_SSF33, AID_PSAM_ADF, PsamSession
from apdu.records import CardAlgorithm
from apdu.transport import t0_chain
from drivers.keyfile import KeyFileError
from drivers.virtual.card import VirtualConnection
from drivers.virtual.psam import PsamFileError, VirtualPsam, load_psam, purchase_factors

pytestmark = pytest.mark.emulated

H = bytes.fromhex
DES_IRK_ROOT = H("DEE24E50EF02A14BE9BF852D0C481B75")  # drivers/virtual/test_keys/test-roots.toml
DES_RKSSSE_ROOT = H("BAFDE5708157FF982396727236F41ACB")
DES_DPK_ROOT = H("AD470F6DD49BD6BCA8FFC433079B09AC")
SM4_RKSSSE_ROOT = H("E04B3B4DC7329326F7495534762AAE9B")
# Guangzhou card of drivers/virtual/personas/ordinary-2.0.toml
L1_GZ = b"440000sh"
L2_GZ = b"440100sx"
L3_GZ = H("8660440100A1B2C3")  # historical 00814A4446 8660 4401 00A1B2C3: T6…T13
# Hangzhou (Zhejiang: 4 digits + "00sx") card of drivers/virtual/personas/v3-sm4.toml
L1_HZ = b"330000sh"
L2_HZ = b"330100sx"
L3_HZ = H("8660330104112233")
SESSION_FACTOR = H("1122334455667788")
ORIGINAL = H("0102030405060708")


def answer(psam: VirtualPsam, apdu: str | bytes) -> str:
    raw = H(apdu) if isinstance(apdu, str) else apdu
    return psam.process(raw).hex().upper()


def select(aid: bytes) -> bytes:
    return bytes((0x00, 0xA4, 0x04, 0x00, len(aid))) + aid + b"\x00"


def bf_de(usage: int, key_id: int, data: bytes) -> bytes:
    return bytes((0xBF, 0xDE, usage, key_id, len(data))) + data


def cipher(data: bytes) -> bytes:
    return bytes((0x80, 0xFA, 0x00, 0x00, len(data))) + data + bytes((len(data),))


def ready(name: str = "psam-national", aid: bytes = AID_ENV_DES, **behaviour) -> VirtualPsam:
    """A PSAM with an environment and the ADF selected, as PsamModule leaves it."""
    psam = make_psam(name, **behaviour)
    psam.power_on()
    assert answer(psam, select(aid))[:2] in ("61", "6F")
    assert answer(psam, "BFEC00000144") == "9000"
    assert answer(psam, select(AID_PSAM_ADF))[:2] in ("61", "6F")
    return psam


def des_expected(factors_root_first: list[bytes], root: bytes = DES_IRK_ROOT) -> bytes:
    key = root
    for factor in factors_root_first:
        key = crypto.des_encrypt(key, factor + bytes(b ^ 0xFF for b in factor))
    session = crypto.des_encrypt(key, SESSION_FACTOR)  # 8-byte session key
    return crypto.des_encrypt(session, ORIGINAL)


# -- SELECT, T=0 -------------------------------------------------------------------------------


def test_select_environment_answers_61xx_then_the_fci_on_t0() -> None:
    psam = make_psam("psam-national")
    psam.power_on()
    assert answer(psam, select(AID_ENV_DES)) == "6113"
    assert answer(psam, "00C0000013") == "6F11840F" + AID_ENV_DES.hex().upper() + "9000"
    assert answer(psam, select(AID_ENV_SM4)) == "6113"


def test_select_on_t1_answers_the_fci_directly() -> None:
    psam = make_psam("psam-national", t0=False)
    psam.power_on()
    assert answer(psam, select(AID_ENV_DES)).endswith("9000")
    assert answer(psam, select(AID_PSAM_ADF)) == "6F088406D156000005909000"


def test_psam_atr_announces_t0_and_carries_the_terminal_number() -> None:
    psam = make_psam("psam-national")
    assert psam.atr[:2] == H("3B6C")  # T=0 only, 12 historical bytes
    assert psam.atr.endswith(H("440100813475"))


def test_absent_environments_and_unknown_aids_are_not_found() -> None:
    psam = make_psam("psam-des-only")
    psam.power_on()
    assert answer(psam, select(AID_ENV_SM4)) == "6A82"
    assert answer(psam, select(AID_ENV_SSF33)) == "6A82"  # never present
    assert answer(psam, select(H("A000000333010101"))) == "6A82"
    assert answer(psam, "00A4000002" + "3F00") == "6A86"  # only selection by name


def test_adf_needs_an_environment_first() -> None:
    psam = make_psam("psam-national")
    psam.power_on()
    assert answer(psam, select(AID_PSAM_ADF)) == "6A82"
    answer(psam, select(AID_ENV_DES))
    assert answer(psam, select(AID_PSAM_ADF)) == "610A"


def test_init_environment_needs_an_environment_and_one_byte() -> None:
    psam = make_psam("psam-national")
    psam.power_on()
    assert answer(psam, "BFEC00000144") == "6985"
    answer(psam, select(AID_ENV_DES))
    assert answer(psam, "BFEC0000024401") == "6700"
    assert answer(psam, "BFEC01000144") == "6A86"
    assert answer(psam, "BFEC00000144") == "9000"


def test_wrong_class_and_unknown_instruction() -> None:
    psam = make_psam("psam-national")
    psam.power_on()
    assert answer(psam, "80EC00000144") == "6E00"
    assert answer(psam, "00B2010400") == "6D00"


# -- BF DE -------------------------------------------------------------------------------------


def test_deliver_session_key_needs_the_adf() -> None:
    psam = make_psam("psam-national")
    psam.power_on()
    answer(psam, select(AID_ENV_DES))
    data = L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR
    assert answer(psam, bf_de(0x67, 0x08, data)) == "6985"


def test_wrong_number_of_levels_is_6a80() -> None:
    psam = ready()
    assert answer(psam, bf_de(0x47, 0x08, L3_GZ + L2_GZ + SESSION_FACTOR)) == "6A80"
    assert answer(psam, bf_de(0x27, 0x08, L3_GZ + SESSION_FACTOR)) == "6A80"
    two = ready("psam-city-2level")
    assert answer(two, bf_de(0x67, 0x08, L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR)) == "6A80"


def test_absent_keys_are_6a88() -> None:
    psam = ready()
    data = L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR
    assert answer(psam, bf_de(0x67, 0x09, data)) == "6A88"  # no such key id
    assert answer(psam, bf_de(0x66, 0x08, data)) == "6A88"  # type 06 (MAC): not held
    no_rkssse = ready("psam-no-rkssse")
    assert answer(no_rkssse, bf_de(0x67, 0x0A, data)) == "6A88"
    assert answer(no_rkssse, bf_de(0x67, 0x08, data)) == "9000"


def test_wrong_lc_is_6700() -> None:
    psam = ready()
    factors = L3_GZ + L2_GZ + L1_GZ
    assert answer(psam, bf_de(0x67, 0x08, factors + SESSION_FACTOR + bytes(8))) == "6700"
    assert answer(psam, bf_de(0x67, 0x08, factors + SESSION_FACTOR[:4])) == "6700"
    sm4 = ready(aid=AID_ENV_SM4)
    assert answer(sm4, bf_de(0x67, 0x08, factors + SESSION_FACTOR)) == "6700"  # M = 16 in SM4
    assert answer(sm4, bf_de(0x67, 0x08, factors + SESSION_FACTOR + bytes(8))) == "9000"


def test_cipher_without_a_session_key_is_6985() -> None:
    psam = ready()
    assert answer(psam, cipher(ORIGINAL)) == "6985"
    # a refused BF DE forgets the previous session key too
    assert answer(psam, bf_de(0x67, 0x08, L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR)) == "9000"
    assert answer(psam, bf_de(0x47, 0x08, L3_GZ + L2_GZ + SESSION_FACTOR)) == "6A80"
    assert answer(psam, cipher(ORIGINAL)) == "6985"


def test_reselecting_the_environment_forgets_the_session_key() -> None:
    psam = ready()
    assert answer(psam, bf_de(0x67, 0x08, L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR)) == "9000"
    answer(psam, select(AID_ENV_DES))
    assert answer(psam, cipher(ORIGINAL)) == "6985"


def test_three_level_psam_applies_the_factors_from_the_end_of_the_data() -> None:
    psam = ready()
    assert answer(psam, bf_de(0x67, 0x08, L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR)) == "9000"
    assert answer(psam, cipher(ORIGINAL)) == "6108"  # T=0: the result waits for 00 C0
    expected = des_expected([L1_GZ, L2_GZ, L3_GZ])
    assert answer(psam, "00C0000008") == expected.hex().upper() + "9000"


def test_two_level_psam_holds_the_province_key_of_its_city() -> None:
    psam = ready("psam-city-2level")
    assert answer(psam, bf_de(0x47, 0x08, L3_GZ + L2_GZ + SESSION_FACTOR)) == "9000"
    assert answer(psam, cipher(ORIGINAL)) == "6108"
    assert answer(psam, "00C0000008") == des_expected([L1_GZ, L2_GZ, L3_GZ]).hex().upper() + "9000"


def test_one_level_psam_holds_the_city_key(tmp_path: Path) -> None:
    path = tmp_path / "psam-1level.toml"
    path.write_text(
        'test_keys = true\nterminal_number = "440100000009"\nlevels = 1\n'
        f'issued_for = "440100"\nalgorithms = ["des"]\nroots = "{KEYS / "test-roots.toml"}"\n'
    )
    psam = VirtualPsam(load_psam(path))
    psam.power_on()
    answer(psam, select(AID_ENV_DES))
    answer(psam, select(AID_PSAM_ADF))
    assert answer(psam, bf_de(0x27, 0x08, L3_GZ + SESSION_FACTOR)) == "9000"
    assert answer(psam, cipher(ORIGINAL)) == "6108"
    assert answer(psam, "00C0000008") == des_expected([L1_GZ, L2_GZ, L3_GZ]).hex().upper() + "9000"


def test_each_key_answers_only_its_own_number_of_levels() -> None:
    psam = ready("psam-mixed-levels")  # Hangzhou: IRK 3 levels, RKSSSE 2, purchase 1
    three, two = L3_HZ + L2_HZ + L1_HZ + SESSION_FACTOR, L3_HZ + L2_HZ + SESSION_FACTOR
    assert answer(psam, bf_de(0x47, 0x08, two)) == "6A80"
    assert answer(psam, bf_de(0x67, 0x0A, three)) == "6A80"
    assert answer(psam, bf_de(0x27, 0x0A, L3_HZ + SESSION_FACTOR)) == "6A80"
    assert answer(psam, bf_de(0x67, 0x08, three)) == "9000"
    assert answer(psam, cipher(ORIGINAL)) == "6108"
    assert answer(psam, "00C0000008") == des_expected([L1_HZ, L2_HZ, L3_HZ]).hex().upper() + "9000"
    # RKSSSE is the Zhejiang province key: the city and card factors finish it
    assert answer(psam, bf_de(0x47, 0x0A, two)) == "9000"
    assert answer(psam, cipher(ORIGINAL)) == "6108"
    expected = des_expected([L1_HZ, L2_HZ, L3_HZ], DES_RKSSSE_ROOT)
    assert answer(psam, "00C0000008") == expected.hex().upper() + "9000"


def test_init_for_purchase_takes_as_many_factors_as_its_key_has_levels() -> None:
    psam = ready("psam-mixed-levels")  # the purchase key: the Hangzhou issuer key, 1 level
    serial, issuer, region = purchase_factors(H("3301000004112233"), "330100")
    assert (issuer, region) == (H("3301000000000000"), H("3300000000000000"))
    fixed = H("0A1B2C3D0007000000FA06202612010930000100")

    def init(factors: bytes, lc: int | None = None) -> str:
        data = fixed + factors
        return answer(psam, bytes((0x80, 0x70, 0, 0, lc or len(data))) + data + H("08"))

    assert init(serial + issuer + region) == "6A80"  # Lc 2C: 3 levels
    assert init(serial + issuer) == "6A80"  # Lc 24: 2 levels
    assert init(serial + issuer[:4]) == "6700"  # Lc 20: no whole factor
    assert init(serial) == "6108"  # Lc 1C: 1 level
    out = H(answer(psam, "00C0000008"))
    request = purse.parse_mac1_data(fixed + serial + issuer + region)
    dpk = purse.card_purchase_key(DES_DPK_ROOT, request)  # the card's: 3 levels from the root
    sespk = purse.session_key(dpk, request, int.from_bytes(out[:4], "big"))
    assert out[4:8] == purse.mac1(sespk, request, "330100520011") and out[8:] == H("9000")


def test_sm4_environment_computes_16_byte_blocks() -> None:
    psam = ready(aid=AID_ENV_SM4)
    session_factor = SESSION_FACTOR + bytes(8)  # right-padded to 16 by the terminal
    assert answer(psam, bf_de(0x67, 0x0A, L3_HZ + L2_HZ + L1_HZ + session_factor)) == "9000"
    assert answer(psam, cipher(ORIGINAL)) == "6700"  # not a whole 16-byte block
    block = ORIGINAL + bytes(8)
    assert answer(psam, cipher(block)) == "6110"
    key = SM4_RKSSSE_ROOT
    for factor in (L1_HZ, L2_HZ, L3_HZ):
        key = crypto.sm4_encrypt(key, factor + bytes(b ^ 0xFF for b in factor))
    expected = crypto.sm4_encrypt(crypto.sm4_encrypt(key, session_factor), block)
    assert answer(psam, "00C0000010") == expected.hex().upper() + "9000"


def test_cipher_checks_its_parameters_and_block_length() -> None:
    psam = ready()
    assert answer(psam, bf_de(0x67, 0x08, L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR)) == "9000"
    assert answer(psam, "80FA000007" + "01020304050607" + "07") == "6700"
    assert answer(psam, "80FA050008" + ORIGINAL.hex() + "08") == "6A86"
    assert answer(psam, "80FA000010" + (ORIGINAL * 2).hex() + "10") == "6110"


def test_cipher_on_t1_answers_directly() -> None:
    psam = ready(t0=False)
    assert answer(psam, bf_de(0x67, 0x08, L3_GZ + L2_GZ + L1_GZ + SESSION_FACTOR)) == "9000"
    expected = des_expected([L1_GZ, L2_GZ, L3_GZ])
    assert answer(psam, cipher(ORIGINAL)) == expected.hex().upper() + "9000"


# -- terminal number ---------------------------------------------------------------------------


def test_terminal_number_is_six_bytes_of_bcd_by_sfi() -> None:
    psam = make_psam("psam-national")
    psam.power_on()
    assert answer(psam, "00B0960006") == "4401008134759000"
    assert answer(psam, "00B0960002") == "6C06"  # T=0: exact Le only
    assert answer(psam, "00B0960300") == "6C03"  # offset 3
    assert answer(psam, "00B0960600") == "6B00"
    assert answer(psam, "00B0950006") == "6A82"  # another SFI
    assert answer(psam, "00B0000006") == "6986"  # no current EF


def test_psam_session_reads_the_terminal_number_through_the_t0_chain() -> None:
    session = PsamSession(t0_chain(VirtualConnection(make_psam("psam-national"))))
    assert session.terminal_number() == "440100813475"
    session = PsamSession(t0_chain(VirtualConnection(make_psam("psam-city-2level"))))
    assert session.terminal_number() == "440100520008"


def test_psam_session_cipher_fetches_the_result_with_get_response() -> None:
    psam = make_psam("psam-national")
    session = PsamSession(t0_chain(VirtualConnection(psam)))
    assert session.select_environment(CardAlgorithm.DES)
    assert not session.select_environment(CardAlgorithm.SSF33)
    assert session.select_environment(CardAlgorithm.DES)
    session.init_environment(H("440100"))
    session.select_application()
    session.deliver_session_key(0x08, [L3_GZ, L2_GZ, L1_GZ], SESSION_FACTOR)
    assert session.cipher(ORIGINAL) == des_expected([L1_GZ, L2_GZ, L3_GZ])
    sent = [cmd.hex().upper() for cmd, _ in psam.log]
    assert sent[-2:] == ["80FA000008" + ORIGINAL.hex().upper() + "08", "00C0000008"]


# -- PSAM files --------------------------------------------------------------------------------

GOOD = {
    "test_keys": "true",
    "terminal_number": '"440100813475"',
    "levels": "3",
    "algorithms": '["des", "sm4"]',
    "roots": f'"{KEYS / "test-roots.toml"}"',
}


def write(tmp_path: Path, change: dict[str, str | None], name: str = "psam.toml") -> Path:
    values = {k: v for k, v in (GOOD | change).items() if v is not None}
    path = tmp_path / name
    path.write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


def test_every_committed_psam_file_loads() -> None:
    for path in sorted(KEYS.glob("psam-*.toml")):
        config = load_psam(path)
        assert "TEST KEYS" in path.read_text().splitlines()[0], path
        assert config.roots.test_keys


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": '"red"'}, r"unknown keys \['colour'\]"),
        ({"test_keys": None}, "test keys only"),
        ({"test_keys": "false"}, "test keys only"),
        ({"terminal_number": None}, r"missing required keys \['terminal_number'\]"),
        ({"terminal_number": '"4401"'}, "terminal_number must be a quoted string of 12 digits"),
        ({"terminal_number": "440100813475"}, "terminal_number must be a quoted string"),
        ({"levels": "4"}, "levels must be 1, 2 or 3"),
        ({"levels": "true"}, "levels must be 1, 2 or 3"),
        ({"levels": "2"}, "needs issued_for"),
        ({"levels": "2", "issued_for": '"4401"'}, "issued_for must be a quoted string of 6"),
        ({"levels": "3.0"}, "levels must be 1, 2 or 3, got 3.0"),
        ({"levels": '"3"'}, "levels must be 1, 2 or 3, got '3'"),
        ({"levels": "{ irk = 3, rkssse = 2 }"}, "levels.purchase is missing"),
        ({"levels": "{ irk = 3, rkssse = 3, purchase = 3, dpk = 1 }"}, r"unknown keys \['dpk'\]"),
        ({"levels": "{ irk = 4, rkssse = 3, purchase = 3 }"}, "levels.irk must be 1, 2 or 3"),
        ({"levels": "{ irk = 3, rkssse = true, purchase = 3 }"}, "levels.rkssse must be 1, 2"),
        (
            {"levels": "{ irk = 3, rkssse = 3, purchase = 1 }"},
            "fewer than 3 levels needs issued_for",
        ),
        (
            {"levels": "{ irk = 3, rkssse = 3, purchase = 3 }", "rkssse": "false"},
            r"levels.rkssse: the PSAM holds no rkssse key \(rkssse = false\)",
        ),
        (
            {"levels": "{ irk = 3, rkssse = 3, purchase = 3 }", "algorithms": '["sm4"]'},
            "levels.purchase: the PSAM holds no purchase key",
        ),
        ({"algorithms": '"des"'}, "algorithms must be a non-empty list"),
        ({"algorithms": "[]"}, "algorithms must be a non-empty list"),
        ({"algorithms": '["ssf33"]'}, "SSF33 is not public"),
        ({"algorithms": '["des", "rot13"]'}, r"unknown algorithms \['rot13'\]"),
        ({"rkssse": '"yes"'}, "rkssse must be true or false"),
        ({"roots": "7"}, "roots must be the path"),
        (
            {"terminal_number": '"４４０１００８１３４７５"'},
            "terminal_number must be a quoted string",
        ),
        ({"issued_for": '"４４０１００"', "levels": "2"}, "issued_for must be a quoted string"),
        ({"levels": "3.0"}, "levels must be 1, 2 or 3"),
        ({"roots": '"test-roots.toml\\u0000"'}, "roots must be the path"),
        ({"roots": '""'}, "roots must be the path"),
    ],
)
def test_bad_psam_files_are_clear_errors(tmp_path: Path, change, needle) -> None:
    with pytest.raises(PsamFileError, match=needle):
        load_psam(write(tmp_path, change))


def test_roots_are_relative_to_the_psam_file(tmp_path: Path) -> None:
    (tmp_path / "roots.toml").write_text((KEYS / "test-roots.toml").read_text())
    config = load_psam(write(tmp_path, {"roots": '"roots.toml"'}))
    assert config.roots.source == str(tmp_path / "roots.toml")


def test_missing_root_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"cannot read key file .*nowhere\.toml"):
        load_psam(write(tmp_path, {"roots": '"nowhere.toml"'}))


def test_roots_without_the_keys_the_psam_claims_are_refused(tmp_path: Path) -> None:
    irk = '"DEE24E50EF02A14BE9BF852D0C481B75"'
    (tmp_path / "des-irk.toml").write_text(f"test_keys = true\n[des]\nirk = {irk}\n")
    with pytest.raises(PsamFileError, match="has no SM4 irk"):
        load_psam(write(tmp_path, {"roots": '"des-irk.toml"', "rkssse": "false"}))
    with pytest.raises(PsamFileError, match="has no DES rkssse; set rkssse = false"):
        load_psam(write(tmp_path, {"roots": '"des-irk.toml"', "algorithms": '["des"]'}))
    config = load_psam(
        write(tmp_path, {"roots": '"des-irk.toml"', "algorithms": '["des"]', "rkssse": "false"})
    )
    assert not config.rkssse


def test_roots_that_are_not_test_keys_are_refused(tmp_path: Path) -> None:
    text = (KEYS / "test-roots.toml").read_text().replace("test_keys = true", "test_keys = false")
    (tmp_path / "real.toml").write_text(text)
    with pytest.raises(PsamFileError, match="does not say test_keys = true"):
        load_psam(write(tmp_path, {"roots": '"real.toml"'}))


def test_unreadable_or_malformed_psam_file(tmp_path: Path) -> None:
    with pytest.raises(PsamFileError, match="cannot read PSAM file"):
        load_psam(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("levels = = 3\n")
    with pytest.raises(PsamFileError, match=r"bad\.toml"):
        load_psam(bad)


def test_a_psam_file_nested_5000_deep_or_not_utf8_names_the_file(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("levels = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PsamFileError, match=rf"^{deep}: not valid TOML: .*nested too deeply"):
        load_psam(deep)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'issued_for = "\xe9"\n')
    with pytest.raises(PsamFileError, match=rf"^{latin1}: not UTF-8 text \(line 1"):
        load_psam(latin1)
    with pytest.raises(PsamFileError, match=r"cannot read PSAM file .*holds no NUL"):
        load_psam(tmp_path / "psam\x00.toml")
