"""Card authentication in-process: the virtual card with real (test) keys, the virtual PSAM and
apdu.ssc.SscSession / apdu.psam.PsamModule over VirtualConnections; the card's
INTERNAL / EXTERNAL AUTHENTICATE, RKSSSE and PIN try counters byte by byte; persona [keys]
and [pin] tables.

Expected cryptograms are composed from apdu.crypto primitives and the test roots of
drivers/virtual/test_keys/test-roots.toml, without any security module (spec doc §3.4–§3.6).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from support import KEYS, load_test_roots, make_card, make_psam, persona, read_authenticated

from apdu import crypto
from apdu.command import CommandApdu, ResponseApdu
from apdu.errors import (
    ApduError,
    ApplicationLocked,
    CardBlocked,
    CardNotGenuine,
    ExternalAuthFailed,
    PinBlocked,
    SecurityNotSatisfied,
    SscardError,
    WrongPin,
)
from apdu.files import AID_SSSE
from apdu.psam import KEY_IRK, KEY_RKSSSE, KEY_TYPE_AUTH, PsamKey, PsamModule
from apdu.records import CardAlgorithm, Generation
from apdu.sam import (
    AlgorithmNotSupported,
    RkssseMissing,
    SecurityModuleRefused,
)
from apdu.ssc import SscSession
from apdu.transport import Connection, t0_chain
from config.settings import Settings
from drivers.keyfile import crypto_algorithm
from drivers.soft_sam import SoftSam
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.persona import PersonaError, PersonaKeys, parse_persona
from drivers.virtual.psam import VirtualPsam, load_psam
from drivers.virtual.ssc_card import VirtualSscCard

pytestmark = pytest.mark.emulated

H = bytes.fromhex
SELECT_SSSE = H("00A404000F") + AID_SSSE
ROOTS = load_test_roots()
PIN = "123456"  # drivers/virtual/personas/ordinary-2.0.toml and v3-sm4.toml [pin]


def irk(algorithm: CardAlgorithm) -> PsamKey:
    return PsamKey(algorithm, KEY_TYPE_AUTH, KEY_IRK)


def rkssse(algorithm: CardAlgorithm) -> PsamKey:
    return PsamKey(algorithm, KEY_TYPE_AUTH, KEY_RKSSSE)


def connect(card: VirtualSscCard | VirtualPsam) -> Connection:
    return t0_chain(VirtualConnection(card))


def psam_module(name: str = "psam-national") -> tuple[VirtualPsam, PsamModule]:
    psam = make_psam(name)
    return psam, PsamModule(connect(psam))


def read(card: VirtualSscCard, module: PsamModule):
    return read_authenticated(connect(card), card.historical, module)


def sent(card: VirtualSscCard | VirtualPsam, prefix: str) -> list[bytes]:
    return [cmd for cmd, _ in card.log if cmd.startswith(H(prefix))]


def card_key(card: VirtualSscCard, kind: str) -> bytes:
    key = ROOTS.card_key(kind, card.algorithm, card.persona.city_code, card.historical, 3)
    assert key is not None
    return key


def expected_auth(card: VirtualSscCard, kind: str, factor: bytes, original: bytes) -> bytes:
    alg = crypto_algorithm(card.algorithm)
    return crypto.auth_data(alg, crypto.session_key(alg, card_key(card, kind), factor), original)


def in_ssse(card: VirtualSscCard) -> SscSession:
    return SscSession(connect(card), card.historical)


# -- the full flow with the virtual PSAM -------------------------------------------------------


@pytest.mark.parametrize("t0", [False, True])
def test_full_3_0_read_with_the_national_psam_opens_ef06(t0: bool) -> None:
    card = make_card("v3-sm4", t0=t0)
    _, module = psam_module()
    result = read(card, module)
    assert result.terminal_number == "440100813475" and result.module == "psam"
    holder = result.contents.holder
    assert holder is not None and holder.name == "李晓梅" and holder.ssn == "310000197811203384"
    assert [cmd[3] for cmd in sent(card, "0082")] == [0x0A]
    assert card.rkssse_authenticated and card.rkssse_tries == 3
    assert module.levels == {irk(CardAlgorithm.SM4): 3, rkssse(CardAlgorithm.SM4): 3}


def test_2_0_read_checks_the_card_is_genuine_and_needs_no_external_auth() -> None:
    card = make_card("ordinary-2.0", t0=True)
    psam, module = psam_module()
    result = read(card, module)
    assert result.contents.holder is not None and result.contents.holder.name == "陈静怡"
    assert len(sent(card, "00880000")) == 1 and not sent(card, "0082")
    assert [cmd[3] for cmd in sent(psam, "BFDE")] == [0x08]  # IRK only


def test_forged_card_is_not_genuine() -> None:
    card = make_card("forged", t0=True)
    _, module = psam_module()
    with pytest.raises(CardNotGenuine):
        read(card, module)
    assert not sent(card, "0082")


def test_forged_card_answers_internal_authenticate_with_keys_not_from_the_roots() -> None:
    card = make_card("forged")
    ssc = in_ssse(card)
    factor, original = ssc.get_challenge(), ssc.get_challenge()
    answer = ssc.internal_authenticate(factor, original)
    assert answer != expected_auth(card, "irk", factor, original)
    # keys of its own even without roots, and new ones for every forged card
    assert make_card("forged", keys=False).irk not in (None, card.irk)


def test_3_0_card_and_a_psam_without_rkssse_is_2203() -> None:
    card = make_card("v3-sm4", t0=True)
    _, module = psam_module("psam-no-rkssse")
    with pytest.raises(RkssseMissing) as info:
        read(card, module)
    assert info.value.code == -2203
    assert not sent(card, "0088")  # refused before the card was challenged


def test_sm4_card_and_a_des_only_psam_is_2202() -> None:
    card = make_card("v3-sm4", t0=True)
    _, module = psam_module("psam-des-only")
    with pytest.raises(AlgorithmNotSupported) as info:
        read(card, module)
    assert info.value.code == -2202


def test_two_level_psam_is_found_by_the_retry_and_remembered() -> None:
    psam, module = psam_module("psam-city-2level")
    first = read(make_card("ordinary-2.0", t0=True), module)
    assert first.terminal_number == "440100520008"
    assert [cmd[2] for cmd in sent(psam, "BFDE")] == [0x67, 0x47]  # 6A80, then accepted
    assert [resp for cmd, resp in psam.log if cmd[:2] == H("BFDE")] == [H("6A80"), H("9000")]
    assert module.levels == {irk(CardAlgorithm.DES): 2}
    before = len(psam.log)
    # another Guangdong card: the province key serves every city of the province
    second = read(make_card("hk-resident", t0=True), module)
    assert second.contents.holder is not None and second.contents.holder.name == "何嘉欣"
    again = [cmd for cmd, _ in psam.log[before:] if cmd[:2] == H("BFDE")]
    assert [(cmd[2], cmd[3]) for cmd in again] == [(0x47, 0x08)]  # once per key


def test_two_level_psam_refuses_a_card_of_another_province() -> None:
    _, module = psam_module("psam-city-2level")
    with pytest.raises(CardNotGenuine):
        read(make_card("expired", t0=True), module)  # Chengdu, 510100


def test_one_level_psam_serves_only_its_own_city(tmp_path: Path) -> None:
    path = tmp_path / "psam-1level.toml"
    path.write_text(
        'test_keys = true\nterminal_number = "440100000009"\nlevels = 1\n'
        f'issued_for = "440100"\nalgorithms = ["des"]\nroots = "{KEYS / "test-roots.toml"}"\n'
    )
    module = PsamModule(connect(VirtualPsam(load_psam(path))))
    assert read(make_card("ordinary-2.0"), module).terminal_number == "440100000009"
    assert module.levels == {irk(CardAlgorithm.DES): 1}
    with pytest.raises(CardNotGenuine):
        read(make_card("hk-resident"), module)  # Shenzhen, 440300: another city key


class WithoutIrk:
    """A PSAM connection whose card answers ``6A88`` (key not found) to BF DE for the IRK."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if apdu[:2] == H("BFDE") and apdu[3] == 0x08:
            return b"", 0x6A88
        return self.inner.transmit(apdu)


def test_a_psam_without_the_irk_reports_its_status_word_not_a_reader_error() -> None:
    psam = make_psam("psam-national")
    module = PsamModule(WithoutIrk(connect(psam)))
    with pytest.raises(SecurityModuleRefused) as info:
        read(make_card("ordinary-2.0"), module)
    assert info.value.code == -27272 and "BF DE" in str(info.value)


def test_ssf33_card_is_refused_by_the_psam_before_the_card_is_asked() -> None:
    card = make_card("v1-legacy", t0=True)  # no algorithm in the FCI, region 11: SSF33
    _, module = psam_module()
    with pytest.raises(AlgorithmNotSupported):
        read(card, module)
    assert not sent(card, "0088")


# -- SscSession.authenticate: the genuineness proof, once, with the software SAM ---------------


def soft_sam() -> SoftSam:
    return SoftSam(ROOTS, Settings())


def authenticated(name: str, *, holder: bool) -> tuple[VirtualSscCard, SscSession]:
    card = make_card(name)  # T=1: no GET RESPONSE in the count
    session = in_ssse(card)
    session.read_issuer()
    session.authenticate(soft_sam(), holder=holder)
    return card, session


def test_a_3_0_card_read_without_ef06_is_ef05_and_one_internal_authenticate() -> None:
    # SELECT SSSE, SELECT EF05, 7 × READ RECORD, INTERNAL AUTHENTICATE: the terminal sends
    # its own process factor and original data, so no GET CHALLENGE
    card, session = authenticated("v3-sm4", holder=False)
    assert [cmd[1] for cmd, _ in card.log] == [0xA4, 0xA4, *[0xB2] * 7, 0x88]
    assert all(answer[-2:] == H("9000") for _, answer in card.log)
    assert not card.rkssse_authenticated  # no EXTERNAL AUTHENTICATE: EF06 stays closed
    with pytest.raises(SecurityNotSatisfied):
        session.read_holder(["name"])


def test_a_3_0_card_whose_ef06_is_read_gets_rkssse_once_after_the_internal_proof() -> None:
    card, session = authenticated("v3-sm4", holder=True)
    # one GET CHALLENGE, right before EXTERNAL AUTHENTICATE: the card keys it on that random
    assert [cmd[1] for cmd, _ in card.log][9:] == [0x88, 0x84, 0x82]
    assert len(sent(card, "0088")) == 1 and len(sent(card, "0082000A")) == 1
    assert session.read_holder(["name"]).name == "李晓梅"


def test_a_2_0_card_needs_no_rkssse_even_when_ef06_is_read() -> None:
    card, session = authenticated("ordinary-2.0", holder=True)
    assert len(card.log) == 10 and not sent(card, "0082") and not sent(card, "0084")
    assert session.read_holder(["ssn"]).ssn is not None


def test_authenticate_reads_ef05_itself_when_it_was_not_read() -> None:
    card = make_card("ordinary-2.0")
    session = in_ssse(card)
    session.authenticate(soft_sam(), holder=False)
    assert session.issuer is not None and len(card.log) == 10


def test_the_internal_proof_is_over_the_terminals_own_random_so_a_recorded_answer_fails() -> None:
    # a clone that recorded a genuine card's INTERNAL AUTHENTICATE answers the same bytes
    # again; with card-chosen challenges it could also repeat the challenge, and pass
    genuine = make_card("ordinary-2.0")
    session = in_ssse(genuine)
    session.authenticate(soft_sam(), holder=False)
    [recorded] = [answer for command, answer in genuine.log if command[1] == 0x88]

    class Clone(VirtualSscCard):
        def _internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
            return ResponseApdu(recorded[:-2], 0x9000)

    clone = Clone(persona("ordinary-2.0"), Behaviour(), ROOTS)
    with pytest.raises(CardNotGenuine):
        in_ssse(clone).authenticate(soft_sam(), holder=False)
    first, again = (
        [command[5:21] for command, _ in card.log if command[1] == 0x88]
        for card in (genuine, clone)
    )
    assert first != again  # factor and original differ from one proof to the next


def test_a_card_that_wants_its_own_random_as_the_factor_gets_one_get_challenge() -> None:
    card = VirtualSscCard(persona("ordinary-2.0"), Behaviour(factor_from_challenge=True), ROOTS)
    session = in_ssse(card)
    session.authenticate(soft_sam(), holder=False)
    assert [cmd[1] for cmd, _ in card.log][-3:] == [0x88, 0x84, 0x88]
    refused, challenge, accepted = card.log[-3:]
    assert refused[1] == H("6984") and accepted[1][-2:] == H("9000")
    assert accepted[0][5:13] == challenge[1][:8]  # the factor is the card's random
    assert accepted[0][13:21] == refused[0][13:21]  # the original data stays the terminal's


def test_an_internal_authenticate_refusal_other_than_the_random_is_not_retried() -> None:
    card = make_card("ordinary-2.0")
    card.irk = None  # 6A88: no IRK
    with pytest.raises(ApduError) as refused:
        in_ssse(card).authenticate(soft_sam(), holder=False)
    assert refused.value.sw == 0x6A88 and not sent(card, "0084")


def test_a_forged_3_0_card_fails_the_session_proof_before_any_rkssse() -> None:
    forged = replace(persona("v3-sm4"), keys=PersonaKeys(forged=True))
    card = VirtualSscCard(forged, Behaviour(), ROOTS)
    session = in_ssse(card)
    with pytest.raises(CardNotGenuine):
        session.authenticate(soft_sam(), holder=True)
    assert len(sent(card, "0088")) == 1 and not sent(card, "0082")


# -- INTERNAL AUTHENTICATE ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ordinary-2.0", "v3-sm4"])
def test_internal_authenticate_answers_with_the_irk_from_the_roots(name: str) -> None:
    card = make_card(name, t0=True)
    ssc = in_ssse(card)
    original, factor = ssc.get_challenge(), ssc.get_challenge()
    answer = ssc.internal_authenticate(factor, original)
    assert answer == expected_auth(card, "irk", factor, original)
    assert [resp for cmd, resp in card.log if cmd[:2] == H("0088")] == [H("6108")]


def test_internal_authenticate_byte_level_refusals() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    data = H("11223344556677880102030405060708")
    assert card.process(H("0088000010") + data + H("00")) == H("6985")  # SSSE not selected
    card.process(SELECT_SSSE)
    assert card.process(H("008800000F") + data[:15]) == H("6700")
    assert card.process(H("0088000110") + data + H("00")) == H("6A88")  # key 01: none
    assert card.process(H("0088010010") + data + H("00")) == H("6A86")
    with_version = card.process(H("0088000011") + data + H("01") + H("00"))
    assert with_version[-2:] == H("9000") and len(with_version) == 10
    assert with_version[:8] == expected_auth(card, "irk", data[:8], data[8:])


def test_card_without_roots_has_no_keys_and_ssf33_is_not_supported() -> None:
    data = H("0088000010") + bytes(16) + H("00")
    keyless = make_card("ordinary-2.0", keys=False)
    keyless.power_on()
    keyless.process(SELECT_SSSE)
    assert keyless.process(data) == H("6A88")
    ssf33 = make_card("v1-legacy")
    ssf33.power_on()
    ssf33.process(SELECT_SSSE)
    assert ssf33.process(data) == H("6A81")
    ssf33.process(H("0084000008"))
    assert ssf33.process(H("0082000A10") + bytes(16)) == H("6A81")


# -- EXTERNAL AUTHENTICATE ---------------------------------------------------------------------


def test_external_authenticate_without_a_challenge_is_6984() -> None:
    card = make_card("v3-sm4")
    card.power_on()
    card.process(SELECT_SSSE)
    ext = H("0082000A10") + bytes(16)
    assert card.process(ext) == H("6984")
    card.process(H("0084000008"))
    assert card.process(ext) == H("63C2")  # a wrong cryptogram consumes the challenge
    assert card.process(ext) == H("6984")
    card.process(H("0084000008"))
    card.power_on()  # power-off forgets the challenge
    card.process(SELECT_SSSE)
    assert card.process(ext) == H("6984")
    assert card.rkssse_tries == 2


def test_external_authenticate_refusals() -> None:
    card = make_card("v3-sm4")
    card.power_on()
    assert card.process(H("0082000A10") + bytes(16)) == H("6A88")  # outside SSSE
    card.process(SELECT_SSSE)
    assert card.process(H("0082000610") + bytes(16)) == H("6A88")  # PUK: not emulated
    assert card.process(H("0082000A08") + bytes(8)) == H("6700")
    keyless = make_card("v3-sm4", keys=False)
    keyless.power_on()
    keyless.process(SELECT_SSSE)
    keyless.process(H("0084000008"))
    assert keyless.process(H("0082000A10") + bytes(16)) == H("6A88")


def test_challenges_in_the_wrong_order_fail_external_authenticate() -> None:
    card = make_card("v3-sm4", t0=True)
    ssc = in_ssse(card)
    # wrong: the process factor first, then the original, so the card's LAST challenge is
    # the original and its session key differs from the terminal's
    factor = ssc.get_challenge()
    original = ssc.get_challenge()
    cryptogram = expected_auth(card, "rkssse", factor, original)
    with pytest.raises(ExternalAuthFailed) as info:
        ssc.external_authenticate(0x0A, cryptogram, original)
    assert info.value.sw == 0x63C2
    assert card.log[-1][1] == H("63C2") and not card.rkssse_authenticated
    # the spec's order: the original first, the factor last
    original = ssc.get_challenge()
    factor = ssc.get_challenge()
    ssc.external_authenticate(0x0A, expected_auth(card, "rkssse", factor, original), original)
    assert card.rkssse_authenticated and card.rkssse_tries == 3  # success resets the counter
    session = SscSession(ssc.connection)  # a new SELECT of SSSE closes EF06 again
    assert not card.rkssse_authenticated
    with pytest.raises(SscardError):
        session.read_holder()


def test_external_authenticate_opens_ef06_until_power_off() -> None:
    card = make_card("v3-sm4")
    session = in_ssse(card)
    assert session.identity().generation == Generation.V3
    original, factor = session.get_challenge(), session.get_challenge()
    session.external_authenticate(0x0A, expected_auth(card, "rkssse", factor, original), original)
    assert session.read_holder().name == "李晓梅"
    card.power_on()
    session = in_ssse(card)
    with pytest.raises(SscardError, match="security status not satisfied"):
        session.read_holder()


def test_a_four_byte_challenge_is_padded_with_zeros() -> None:
    card = make_card("ordinary-2.0")
    ssc = in_ssse(card)
    original = ssc.get_challenge()
    factor = ssc.get_challenge(4)
    cryptogram = expected_auth(card, "rkssse", factor + bytes(4), original)
    ssc.external_authenticate(0x0A, cryptogram, original)
    assert card.rkssse_authenticated


def test_rkssse_try_counter_runs_down_to_6983_and_survives_power_off() -> None:
    card = make_card("v3-sm4", t0=True)
    ssc = in_ssse(card)
    tries = []
    for _ in range(3):
        ssc.get_challenge()
        with pytest.raises(ExternalAuthFailed) as info:
            ssc.external_authenticate(0x0A, bytes(8), bytes(8))
        tries.append(info.value.tries_left)
    assert tries == [2, 1, 0]
    ssc = in_ssse(card)  # power-on again: the counter is in EEPROM
    original, factor = ssc.get_challenge(), ssc.get_challenge()
    with pytest.raises(ExternalAuthFailed):  # blocked: even the right cryptogram is refused
        ssc.external_authenticate(0x0A, expected_auth(card, "rkssse", factor, original), original)
    assert card.log[-1][1] == H("6983") and not card.rkssse_authenticated


def test_rkssse_tries_come_from_the_persona() -> None:
    data = {
        "card": {
            "spec_version": "3.00",
            "algorithm": "sm4",
            "city_code": "330100",
            "serial": "01020304",
        },
        "keys": {"rkssse_tries": 5},
    }
    card = VirtualSscCard(parse_persona(data, "five"), Behaviour(), ROOTS)
    ssc = in_ssse(card)
    ssc.get_challenge()
    with pytest.raises(ExternalAuthFailed) as info:
        ssc.external_authenticate(0x0A, bytes(8), bytes(8))
    assert info.value.tries_left == 4


# -- PIN ---------------------------------------------------------------------------------------


def test_verify_right_pin_and_the_counter() -> None:
    ssc = in_ssse(make_card("ordinary-2.0", t0=True))
    assert ssc.pin_tries_left() == 3
    ssc.verify_pin(PIN)
    assert ssc.pin_tries_left() == 3


def test_wrong_pins_count_down_then_block_even_the_right_pin() -> None:
    card = make_card("ordinary-2.0")
    ssc = in_ssse(card)
    left = []
    for _ in range(3):
        with pytest.raises(WrongPin) as info:
            ssc.verify_pin("000000")
        left.append(info.value.tries_left)
    assert left == [2, 1, 0]
    with pytest.raises(PinBlocked):
        ssc.verify_pin(PIN)
    with pytest.raises(PinBlocked):
        ssc.pin_tries_left()
    with pytest.raises(PinBlocked):
        ssc.change_pin(PIN, "654321")
    assert card.process(H("00200000")) == H("6983")


def test_right_pin_resets_the_counter_and_the_counter_survives_power_off() -> None:
    card = make_card("v3-sm4")
    ssc = in_ssse(card)
    with pytest.raises(WrongPin):
        ssc.verify_pin("999999")
    ssc = in_ssse(card)  # power cycle: the counter is in EEPROM
    assert ssc.pin_tries_left() == 2
    ssc.verify_pin(PIN)
    assert ssc.pin_tries_left() == 3


def test_change_pin_replaces_it_and_resets_the_counter() -> None:
    ssc = in_ssse(make_card("ordinary-2.0"))
    with pytest.raises(WrongPin) as info:
        ssc.change_pin("111111", "24680")
    assert info.value.tries_left == 2
    ssc.change_pin(PIN, "24680")  # odd length: the last nibble is padded with F
    assert ssc.pin_tries_left() == 3
    ssc.verify_pin("24680")
    with pytest.raises(WrongPin):
        ssc.verify_pin(PIN)


def test_pin_never_appears_in_an_exception() -> None:
    secrets = ("987654", "135790")
    caught: list[BaseException] = []
    ssc = in_ssse(make_card("ordinary-2.0"))
    for call in (
        lambda: ssc.verify_pin(secrets[0]),
        lambda: ssc.change_pin(secrets[0], secrets[1]),
        lambda: in_ssse(make_card("absent-fields")).verify_pin(secrets[0]),  # no PIN: 6A88
    ):
        with pytest.raises(SscardError) as info:
            call()
        caught.append(info.value)
    assert isinstance(caught[-1], ApduError) and caught[-1].sw == 0x6A88
    for exc in caught:
        chain = [exc, exc.__cause__, exc.__context__]
        text = " ".join(f"{e!s} {e!r} {getattr(e, 'command', b'').hex()}" for e in chain if e)
        for secret in secrets:
            assert secret not in text
    assert PIN not in repr(persona("ordinary-2.0"))


def test_pin_byte_level_answers() -> None:
    card = make_card("ordinary-2.0")
    card.power_on()
    assert card.process(H("00200000")) == H("63C3")  # case 1: the count, nothing spent
    assert card.process(H("0020000000")) == H("63C3")  # Lc = 0 form
    assert card.process(H("00200000091234561234561234FF")) == H("6700")
    assert card.process(H("0020000001" + "12")) == H("6700")
    assert card.process(H("00200000031234AB")) == H("6A80")  # not BCD: no try spent
    assert card.process(H("0020000100")) == H("6A86")
    assert card.process(H("00200000")) == H("63C3")
    assert card.process(H("805E010002" + "1234")) == H("6700")
    assert card.process(H("805E010004" + "12345612")) == H("6A80")  # no separator
    assert card.process(H("805E010005" + "123456FF12")) == H("6A80")  # new PIN too short
    assert card.process(H("805E000006" + "123456FF1234")) == H("6A86")
    assert card.process(H("805E010006" + "123456FF6543")) == H("9000")
    assert card.process(H("0020000002" + "6543")) == H("9000")


def test_pin_commands_on_locked_cards_and_cards_without_a_pin() -> None:
    locked = make_card("ordinary-2.0", app_locked=True)
    with pytest.raises(ApplicationLocked):
        SscSession(connect(locked)).verify_pin(PIN)
    blocked = make_card("ordinary-2.0", card_blocked=True)
    with pytest.raises(CardBlocked):
        SscSession(connect(blocked)).verify_pin(PIN)
    no_pin = make_card("expired")
    no_pin.power_on()
    assert no_pin.process(H("00200000")) == H("6A88")
    assert no_pin.process(H("805E010006123456FF6543")) == H("6A88")


# -- persona [keys] and [pin] ------------------------------------------------------------------

BASE = {"card": {"city_code": "440100", "serial": "00000001"}}


def test_persona_keys_and_pin_are_typed_fields() -> None:
    p = persona("ordinary-2.0")
    assert p.pin is not None and p.pin.tries == 3 and p.pin.value == PIN
    assert not p.keys.forged and p.keys.rkssse_tries == 3
    assert persona("forged").keys.forged and persona("forged").pin is None
    assert persona("expired").pin is None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"keys": {"forged": "yes"}}, r"\[keys\]: forged must be true or false, got str"),
        ({"keys": {"rkssse_tries": 0}}, r"\[keys\]: rkssse_tries must be 1-15, got 0"),
        ({"keys": {"rkssse_tries": 16}}, "rkssse_tries must be 1-15"),
        ({"keys": {"rkssse_tries": "3"}}, "rkssse_tries must be an integer, got str"),
        ({"keys": {"rkssse_tries": True}}, "rkssse_tries must be an integer, got bool"),
        ({"keys": {"irk": "00"}}, r"\[keys\]: unknown keys \['irk'\]"),
        ({"keys": 3}, r"\[keys\]: must be a table"),
        ({"pin": {"tries": 3}}, r"\[pin\]: missing required key 'value'"),
        ({"pin": {"value": 123456}}, r"\[pin\]: value must be a quoted string"),
        ({"pin": {"value": "123"}}, r"\[pin\]: value must be 4-16 digits"),
        ({"pin": {"value": "12345678901234567"}}, "value must be 4-16 digits"),
        ({"pin": {"value": "12a456"}}, "value must be 4-16 digits"),
        ({"pin": {"value": "123456", "tries": 20}}, r"\[pin\]: tries must be 1-15, got 20"),
        ({"pin": {"value": "123456", "puk": "1"}}, r"\[pin\]: unknown keys \['puk'\]"),
    ],
)
def test_bad_keys_and_pin_tables_are_clear_errors(change, needle) -> None:
    with pytest.raises(PersonaError, match=needle) as info:
        parse_persona(BASE | change, "bad")
    pin = change.get("pin", {})
    if isinstance(pin, dict) and isinstance(pin.get("value"), str):
        assert pin["value"] not in str(info.value)
