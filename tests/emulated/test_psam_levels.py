"""Each PSAM key has its own number of diversification levels (S3-P9 §8, 附录B).

A PSAM may hold its IRK at 3 levels, RKSSSE at 2 and its purchase key at 1. The module must
find and remember the count of each key apart: a count found for one key is never tried on
another, and a ``6A80`` on one key never poisons another. Every mix of IRK × RKSSSE ×
purchase levels runs here in-process against the virtual PSAM, with genuine 3.0 cards of both
algorithms and a forged 3.0 card (−21, never a PSAM error). A remembered count is a hint: a
PSAM that refuses it (another PSAM in the slot) is probed again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from support import KEYS, load_test_roots, persona, read_authenticated

from apdu import purse
from apdu.errors import CardNotGenuine
from apdu.psam import (
    KEY_IRK,
    KEY_RKSSSE,
    KEY_TYPE_AUTH,
    KEY_TYPE_PURCHASE,
    PsamKey,
    PsamModule,
)
from apdu.purse import PurchaseRequest
from apdu.records import CardAlgorithm
from apdu.sam import KeyLevelInsufficient, SecurityModuleRefused
from apdu.transport import Connection, t0_chain
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.persona import PersonaKeys
from drivers.virtual.psam import KeyLevels, VirtualPsam, load_psam, purchase_factors
from drivers.virtual.ssc_card import VirtualSscCard
from terminal.outcomes import national_code

pytestmark = pytest.mark.emulated

H = bytes.fromhex
ROOTS = load_test_roots()
SM4, DES = CardAlgorithm.SM4, CardAlgorithm.DES
CITY = "330100"  # v3-sm4.toml: Hangzhou; the mixed PSAMs are issued for it
V3 = persona("v3-sm4")
V3_DES = replace(V3, algorithm_id=0x01)  # the same 3.0 card with DES keys
PURCHASE = PurchaseRequest(
    card_random=H("0A1B2C3D"),
    card_sequence=7,
    amount=250,
    transaction_type=purse.TYPE_PURCHASE,
    when=datetime(2026, 12, 1, 9, 30, 0),
    key_version=1,
    algorithm_id=purse.PURSE_ALG_DES,
    factors=purchase_factors(H("3301000004112233"), CITY),
)
LEVELS = [1, 2, 3]


def irk(algorithm: CardAlgorithm) -> PsamKey:
    return PsamKey(algorithm, KEY_TYPE_AUTH, KEY_IRK)


def rkssse(algorithm: CardAlgorithm) -> PsamKey:
    return PsamKey(algorithm, KEY_TYPE_AUTH, KEY_RKSSSE)


DPK_V1 = PsamKey(DES, KEY_TYPE_PURCHASE, 1)


def psam_file(tmp_path: Path, irk_levels: int, rkssse_levels: int, purchase_levels: int) -> Path:
    """A PSAM file with one count per key, through the TOML the emulator reads."""
    path = tmp_path / f"psam-{irk_levels}{rkssse_levels}{purchase_levels}.toml"
    path.write_text(
        'test_keys = true\nterminal_number = "330100000042"\n'
        f"levels = {{ irk = {irk_levels}, rkssse = {rkssse_levels}, "
        f"purchase = {purchase_levels} }}\n"
        f'issued_for = "{CITY}"\nalgorithms = ["des", "sm4"]\n'
        f'roots = "{KEYS / "test-roots.toml"}"\n'
    )
    return path


def card(base=V3, *, forged: bool = False) -> VirtualSscCard:
    if forged:
        base = replace(base, keys=PersonaKeys(forged=True))
    return VirtualSscCard(base, Behaviour(t0=True), ROOTS)


def connect(device: VirtualSscCard | VirtualPsam) -> Connection:
    return t0_chain(VirtualConnection(device))


def read(device: VirtualSscCard, module: PsamModule):
    return read_authenticated(connect(device), device.historical, module)


def purchase(module: PsamModule, request: PurchaseRequest = PURCHASE) -> None:
    """MAC1 through the module, the card's MAC2 (its DPK from the root, 3 levels), MAC2 check."""
    assert ROOTS.dpk is not None
    answer = module.purchase_mac1(request)
    dpk = purse.card_purchase_key(ROOTS.dpk, request)
    sespk = purse.session_key(dpk, request, answer.terminal_sequence)
    terminal = module.session.terminal_number()  # the PSAM in the slot now
    assert purse.mac1(sespk, request, terminal) == answer.mac1, "the card would refuse MAC1"
    module.check_mac2(purse.mac2(sespk, request.amount))


def bf_de(psam: VirtualPsam, since: int = 0) -> list[tuple[int, int, str]]:
    """(usage byte, key id, status word) of every BF DE the PSAM answered."""
    return [(c[2], c[3], r[-2:].hex().upper()) for c, r in psam.log[since:] if c[:2] == H("BFDE")]


def refused_levels(psam: VirtualPsam, since: int = 0) -> int:
    """How many commands the PSAM refused with 6A80 (wrong number of levels)."""
    return sum(1 for _, r in psam.log[since:] if r[-2:] == H("6A80"))


@pytest.mark.parametrize("purchase_levels", LEVELS)
@pytest.mark.parametrize("rkssse_levels", LEVELS)
@pytest.mark.parametrize("irk_levels", LEVELS)
def test_every_mix_of_key_levels_reads_refuses_forgeries_and_purchases(
    tmp_path: Path, irk_levels: int, rkssse_levels: int, purchase_levels: int
) -> None:
    config = load_psam(psam_file(tmp_path, irk_levels, rkssse_levels, purchase_levels))
    expected = {
        irk(SM4): irk_levels,
        rkssse(SM4): rkssse_levels,
        irk(DES): irk_levels,
        rkssse(DES): rkssse_levels,
        DPK_V1: purchase_levels,
    }
    # a fresh module whose first card is forged: not genuine (-21), never a PSAM error
    psam = VirtualPsam(config, Behaviour(t0=True))
    module = PsamModule(connect(psam))
    for base in (V3, V3_DES):
        with pytest.raises(CardNotGenuine) as info:
            read(card(base, forged=True), module)
        assert national_code(info.value) == -21
    # genuine cards of both algorithms read, the purchase goes through
    for base in (V3, V3_DES):
        result = read(card(base), module)
        assert result.contents.holder is not None and result.contents.holder.name == "李晓梅"
    purchase(module)
    assert module.levels == expected
    # every count is remembered per key: nothing is refused any more, one BF DE per key
    since = len(psam.log)
    read(card(), module)
    purchase(module)
    assert refused_levels(psam, since) == 0
    assert [(usage >> 5, key) for usage, key, _ in bf_de(psam, since)] == [
        (rkssse_levels, KEY_RKSSSE),  # the check
        (irk_levels, KEY_IRK),
        (rkssse_levels, KEY_RKSSSE),
    ]
    # the other order on a fresh module: the purchase key first, then the cards
    module = PsamModule(connect(VirtualPsam(config, Behaviour(t0=True))))
    purchase(module)
    read(card(V3_DES), module)
    with pytest.raises(CardNotGenuine):
        read(card(forged=True), module)
    read(card(), module)
    assert module.levels == expected


def test_rkssse_at_2_levels_does_not_poison_the_irk_at_3() -> None:
    """The finding: the RKSSSE probe of the check found 2 levels, and the IRK was then only
    tried at 2 and refused with 6A80 (-27264 for every 3.0 read)."""
    psam = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    module = PsamModule(connect(psam))
    assert read(card(), module).terminal_number == "330100520011"
    assert bf_de(psam) == [
        (0x67, KEY_RKSSSE, "6A80"),  # the check probes RKSSSE: 3 levels refused
        (0x47, KEY_RKSSSE, "9000"),  # 2 accepted
        (0x67, KEY_IRK, "9000"),  # the IRK is tried at 3 on its own: accepted
        (0x47, KEY_RKSSSE, "9000"),  # RKSSSE as remembered
    ]
    assert module.levels == {rkssse(SM4): 2, irk(SM4): 3}


def test_irk_at_2_and_rkssse_at_3_both_found() -> None:
    config = load_psam(KEYS / "psam-mixed-levels.toml")
    psam = VirtualPsam(replace(config, levels=KeyLevels(irk=2, rkssse=3, purchase=1)))
    module = PsamModule(connect(psam))
    read(card(), module)
    assert bf_de(psam) == [
        (0x67, KEY_RKSSSE, "9000"),
        (0x67, KEY_IRK, "6A80"),  # the RKSSSE count is not the IRK's
        (0x47, KEY_IRK, "9000"),
        (0x67, KEY_RKSSSE, "9000"),
    ]


def test_the_purchase_key_finds_its_own_level_by_the_factor_count() -> None:
    psam = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    module = PsamModule(connect(psam))
    read(card(V3_DES), module)  # IRK 3 and RKSSSE 2 are known now; the purchase key is not
    since = len(psam.log)
    purchase(module)
    purchase(module)
    mac1 = [(c[4], r[-2:].hex().upper()) for c, r in psam.log[since:] if c[:2] == H("8070")]
    # Lc 2C (3 factors) and 24 (2) refused, 1C (1) accepted; the second purchase goes straight
    assert mac1 == [(0x2C, "6A80"), (0x24, "6A80"), (0x1C, "6108"), (0x1C, "6108")]
    assert module.levels[DPK_V1] == 1 and module.levels[irk(DES)] == 3


class AnswersWrongLengthForLevels:
    """A PSAM brand that refuses a factor count its purchase key does not take with ``6700``."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw = self.inner.transmit(apdu)
        if apdu[:2] == H("8070") and sw == 0x6A80:
            return data, 0x6700
        return data, sw

    def close(self) -> None:
        """Nothing to release."""


def test_a_psam_answering_6700_for_the_wrong_factor_count_is_retried_too() -> None:
    psam = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    module = PsamModule(AnswersWrongLengthForLevels(connect(psam)))
    purchase(module)
    assert module.levels == {DPK_V1: 1}


def test_a_purchase_with_fewer_factors_than_the_key_needs_is_24() -> None:
    psam = VirtualPsam(load_psam(KEYS / "psam-national.toml"), Behaviour(t0=True))
    module = PsamModule(connect(psam))
    short = replace(PURCHASE, factors=PURCHASE.factors[:2])  # no region: 3 levels impossible
    with pytest.raises(KeyLevelInsufficient, match="DPK v1") as info:
        module.purchase_mac1(short)
    assert info.value.code == -24
    assert [c[4] for c, _ in psam.log if c[:2] == H("8070")] == [0x24, 0x1C]


class Slot:
    """A PSAM slot whose PSAM can be replaced: what the module talks to is whatever is in it."""

    def __init__(self, psam: VirtualPsam) -> None:
        self.connection = connect(psam)

    def insert(self, psam: VirtualPsam) -> None:
        self.connection = connect(psam)

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return self.connection.transmit(apdu)

    def close(self) -> None:
        """Nothing to release."""


def test_a_remembered_count_the_psam_refuses_is_probed_again() -> None:
    """Another PSAM in the slot (or another key set): the remembered count is only a hint."""
    national = VirtualPsam(load_psam(KEYS / "psam-national.toml"), Behaviour(t0=True))
    slot = Slot(national)
    module = PsamModule(slot)
    read(card(), module)
    purchase(module)
    assert set(module.levels.values()) == {3}
    mixed = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    slot.insert(mixed)
    read(card(), module)
    purchase(module)
    assert module.levels == {irk(SM4): 3, rkssse(SM4): 2, DPK_V1: 1}
    assert bf_de(mixed)[:2] == [(0x67, KEY_RKSSSE, "6A80"), (0x47, KEY_RKSSSE, "9000")]


class RefusesEveryLevel:
    """A PSAM whose IRK takes no number of levels at all (``6A80`` to every BF DE for it)."""

    def __init__(self, inner: Connection) -> None:
        self.inner = inner

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if apdu[:2] == H("BFDE") and apdu[3] == KEY_IRK:
            return b"", 0x6A80
        return self.inner.transmit(apdu)

    def close(self) -> None:
        """Nothing to release."""


def test_no_count_accepted_is_24_and_names_the_key() -> None:
    psam = VirtualPsam(load_psam(KEYS / "psam-national.toml"), Behaviour(t0=True))
    module = PsamModule(RefusesEveryLevel(connect(psam)))
    with pytest.raises(KeyLevelInsufficient, match="for its IRK") as info:
        read(card(), module)
    assert info.value.code == -24
    assert module.levels == {rkssse(SM4): 3}  # RKSSSE was found; the IRK's failure left it be


def test_forget_drops_what_was_learnt_about_the_psam() -> None:
    psam = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    module = PsamModule(connect(psam))
    read(card(), module)
    assert module.levels and module.terminal_number() == "330100520011"
    module.forget()
    assert module.levels == {}
    reads = sum(1 for c, _ in psam.log if c[:2] == H("00B0"))
    assert module.terminal_number() == "330100520011"
    assert sum(1 for c, _ in psam.log if c[:2] == H("00B0")) == reads + 1  # read again


def test_another_status_word_at_a_remembered_count_is_not_a_level_retry() -> None:
    psam = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    module = PsamModule(connect(psam))
    read(card(), module)
    psam.keys.pop((SM4, KEY_IRK))  # the IRK is gone: 6A88, not a level problem
    with pytest.raises(SecurityModuleRefused) as info:
        read(card(), module)
    assert info.value.code == -27272
    assert module.levels[irk(SM4)] == 3
