"""MAC1/MAC2 through the security-module interface: the virtual PSAM over the T=0 chain, the
software SAM, and the back-ends that have none. The test plays the card: it derives the card's
purchase key from the TEST KEY root itself and answers MAC2 as a card would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from support import KEYS, load_test_roots, make_psam

from apdu import purse
from apdu.errors import ProtocolError
from apdu.psam import PsamModule
from apdu.purse import PurchaseRequest
from apdu.sam import AlgorithmNotSupported, Mac2Invalid, PurchaseNotSupported, SecurityModuleRefused
from apdu.transport import t0_chain
from config.settings import Settings
from drivers.hsm import HsmModule
from drivers.soft_sam import SoftSam
from drivers.virtual.card import VirtualConnection
from drivers.virtual.psam import VirtualPsam, load_psam, purchase_factors

pytestmark = pytest.mark.emulated

H = bytes.fromhex
ROOTS = load_test_roots()
REQUEST = PurchaseRequest(
    card_random=H("5E6F7081"),
    card_sequence=41,
    amount=350,
    transaction_type=purse.TYPE_PURCHASE,
    when=datetime(2026, 11, 29, 7, 58, 3),
    key_version=1,
    algorithm_id=purse.PURSE_ALG_DES,
    # card serial, issuer 4401000000000000, region 4400000000000000
    factors=purchase_factors(H("4401000000A1B2C3"), "440100"),
)


def card_mac2(request: PurchaseRequest, sequence: int, mac1: bytes, terminal: str) -> bytes:
    """The card's side: check MAC1 with its own DPK (3 levels from the root), then MAC2."""
    assert ROOTS.dpk is not None and len(request.factors) == 3
    sespk = purse.session_key(purse.card_purchase_key(ROOTS.dpk, request), request, sequence)
    assert purse.mac1(sespk, request, terminal) == mac1, "the card would answer 9302"
    return purse.mac2(sespk, request.amount)


def psam_module(psam: VirtualPsam) -> PsamModule:
    return PsamModule(t0_chain(VirtualConnection(psam)))


def test_a_purchase_with_the_virtual_psam_over_t0() -> None:
    psam = make_psam("psam-national")  # T=0: 80 70 answers 61 08, then GET RESPONSE
    module = psam_module(psam)
    first = module.purchase_mac1(REQUEST)
    assert first.terminal_sequence == 1
    module.check_mac2(card_mac2(REQUEST, 1, first.mac1, "440100813475"))
    assert [r for c, r in psam.log if c[:2] == H("8070")] == [H("6108")]
    assert [r for c, r in psam.log if c[:2] == H("8072")] == [H("9000")]
    second = module.purchase_mac1(replace(REQUEST, card_sequence=42))
    assert second.terminal_sequence == 2  # counts up per MAC1, in EF 0019
    psam.power_on()
    assert psam_module(psam).purchase_mac1(REQUEST).terminal_sequence == 3  # survives power-off


def test_a_wrong_mac2_is_refused_and_the_purchase_is_over() -> None:
    psam = make_psam("psam-national", t0=False)
    module = psam_module(psam)
    answer = module.purchase_mac1(REQUEST)
    right = card_mac2(REQUEST, answer.terminal_sequence, answer.mac1, "440100813475")
    with pytest.raises(Mac2Invalid, match="does not match") as info:
        module.check_mac2(bytes(b ^ 1 for b in right))
    assert info.value.code == -37634
    with pytest.raises(Mac2Invalid, match="no purchase pending"):
        module.check_mac2(right)  # 6985: the PSAM forgot the purchase
    with pytest.raises(ProtocolError, match="4 bytes"):
        module.check_mac2(right[:3])


def test_a_psam_without_a_des_environment_or_purchase_key(tmp_path: Path) -> None:
    path = tmp_path / "psam-sm4.toml"
    path.write_text(
        'test_keys = true\nterminal_number = "330100000077"\nlevels = 3\n'
        f'algorithms = ["sm4"]\nroots = "{KEYS / "test-roots.toml"}"\n'
    )
    with pytest.raises(AlgorithmNotSupported, match="no DES environment"):
        psam_module(VirtualPsam(load_psam(path))).purchase_mac1(REQUEST)
    with pytest.raises(SecurityModuleRefused) as info:  # an algorithm id it holds no key for
        psam_module(make_psam("psam-national")).purchase_mac1(replace(REQUEST, algorithm_id=4))
    assert info.value.code == -27272 and "80 70" in str(info.value)


def test_the_software_sam_computes_what_the_card_expects() -> None:
    sam = SoftSam(ROOTS, Settings())
    answer = sam.purchase_mac1(REQUEST)
    assert answer.terminal_sequence == 1
    sam.check_mac2(card_mac2(REQUEST, 1, answer.mac1, ROOTS.terminal_number))
    with pytest.raises(Mac2Invalid, match="no purchase is pending"):
        sam.check_mac2(bytes(4))
    answer = sam.purchase_mac1(REQUEST)
    with pytest.raises(Mac2Invalid, match="does not match"):
        sam.check_mac2(bytes(4))
    assert answer.terminal_sequence == 2


def test_the_software_sam_holds_the_national_root_and_needs_all_three_factors() -> None:
    sam = SoftSam(ROOTS, Settings())
    with pytest.raises(ProtocolError, match=r"needs all 3 factors .* got 2"):
        sam.purchase_mac1(replace(REQUEST, factors=REQUEST.factors[:2]))


def test_the_software_sam_needs_a_purchase_root() -> None:
    sam = SoftSam(replace(ROOTS, dpk=None, source="no-dpk.toml"), Settings())
    with pytest.raises(AlgorithmNotSupported, match=r"no-dpk.toml has no \[des\] dpk"):
        sam.purchase_mac1(REQUEST)


def test_the_hsm_back_end_says_it_computes_no_purchase_macs() -> None:
    module = HsmModule("http://127.0.0.1:9")  # never contacted
    with pytest.raises(PurchaseNotSupported) as info:
        module.purchase_mac1(REQUEST)
    assert info.value.code == -13 and "hsm" in str(info.value)
