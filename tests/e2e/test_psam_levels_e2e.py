"""End to end: PSAMs whose keys sit at different numbers of levels, and a PSAM replaced in its
slot, through the real pcscd (vpcd slot 0: the card, slot 1: the PSAM).

The level mixes run the real ``sscard read --sam-reader`` in a child process, as a terminal
does: a genuine 3.0 card reads and a forged one is refused as not genuine (−21), whatever mix
of IRK and RKSSSE levels the PSAM holds. The replacement runs in this process with one PSAM
module for several reads, as a long-running terminal keeps it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from support import (
    KEYS,
    READER0,
    READER1,
    load_test_roots,
    persona,
    read_authenticated,
    run_sscard,
)

from apdu.atr import Atr
from apdu.psam import KEY_IRK, KEY_RKSSSE, KEY_TYPE_AUTH, PsamKey
from apdu.records import CardAlgorithm
from apdu.sam import CardIdentity, NoSecurityModule
from apdu.ssc import SscSession
from apdu.transport import t0_chain
from drivers.psam import PsamLost, open_psam
from drivers.virtual.card import Behaviour
from drivers.virtual.persona import PersonaKeys
from drivers.virtual.psam import VirtualPsam, load_psam
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.vpcd import VpcdBridge
from terminal.outcomes import national_code

pytestmark = pytest.mark.e2e

H = bytes.fromhex
V3 = persona("v3-sm4")  # Hangzhou 330100, SM4
V3_LINE = (
    "330100|310000197811203384|E55120706|330100D15600000504112233FFFFFFFF|李晓梅|"
    "00814A44468660330104112233|3.00|20240520|20340519|330100000042||"
)


def psam(tmp_path: Path, irk: int, rkssse: int) -> VirtualPsam:
    """A PSAM issued for Hangzhou with its IRK and RKSSSE at their own numbers of levels."""
    path = tmp_path / "psam.toml"
    path.write_text(
        'test_keys = true\nterminal_number = "330100000042"\n'
        f"levels = {{ irk = {irk}, rkssse = {rkssse}, purchase = 2 }}\n"
        'issued_for = "330100"\nalgorithms = ["des", "sm4"]\n'
        f'roots = "{KEYS / "test-roots.toml"}"\n'
    )
    return VirtualPsam(load_psam(path), Behaviour(t0=True))


def card(algorithm: str, forged: bool) -> VirtualSscCard:
    base = replace(V3, algorithm_id=0x01) if algorithm == "des" else V3
    if forged:
        base = replace(base, keys=PersonaKeys(forged=True))
    return VirtualSscCard(base, Behaviour(t0=True), load_test_roots())


def bf_de(device: VirtualPsam) -> list[tuple[int, int, str]]:
    return [(c[2], c[3], r[-2:].hex().upper()) for c, r in device.log if c[:2] == H("BFDE")]


@pytest.mark.parametrize(
    ("irk", "rkssse", "algorithm"),
    [(3, 2, "sm4"), (2, 3, "sm4"), (3, 2, "des"), (1, 3, "des")],
    ids=["irk3-rkssse2-sm4", "irk2-rkssse3-sm4", "irk3-rkssse2-des", "irk1-rkssse3-des"],
)
def test_a_genuine_3_0_card_reads_and_a_forged_one_is_21_with_mixed_levels(
    cards, tmp_path: Path, irk: int, rkssse: int, algorithm: str
) -> None:
    # a forged card first: not genuine (-21), not a PSAM status word (-27264 before the fix)
    cards.insert(psam(tmp_path, irk, rkssse), slot=1)
    cards.insert(card(algorithm, forged=True))
    done = run_sscard(
        "read", "--reader", READER0, "--sam-reader", READER1, "--format", "json",
        "--timeout", "10",
    )  # fmt: skip
    out = json.loads(done.stdout)
    assert (done.returncode, out["code"]) == (2, -21), done.stderr
    assert "card" not in out and "-21" in done.stderr
    cards.remove_all()
    device = cards.insert(psam(tmp_path, irk, rkssse), slot=1)
    cards.insert(card(algorithm, forged=False))
    done = run_sscard(
        "read", "--reader", READER0, "--sam-reader", READER1, "--format", "ireadcardbas",
        "--timeout", "10",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == V3_LINE
    # the IRK was tried on its own from 3 down, never at the count RKSSSE needed
    irk_usages = [usage >> 5 for usage, key, _ in bf_de(device) if key == KEY_IRK]
    assert irk_usages == list(range(3, irk - 1, -1))


def test_a_psam_replaced_in_its_slot_is_reconnected_and_its_levels_found_anew(cards) -> None:
    """One module for several reads: the PSAM is pulled (−2201 while the slot is empty), then
    another PSAM with other key levels and another terminal number goes in. The module renews
    its connection and forgets what it knew of the first PSAM."""
    first = VirtualPsam(load_psam(KEYS / "psam-national.toml"), Behaviour(t0=True))
    second = VirtualPsam(load_psam(KEYS / "psam-mixed-levels.toml"), Behaviour(t0=True))
    cards.insert(card("sm4", forged=False))
    bridge = VpcdBridge(first, slot=1)
    bridge.insert()
    module = None
    try:
        cards.readers.wait_for_card(5, reader=READER1).close()
        module = open_psam(cards.readers, READER1)
        assert module is not None

        def read():
            with cards.readers.wait_for_card(5, reader=READER0) as connection:
                historical = Atr.parse(connection.atr).historical
                return read_authenticated(t0_chain(connection), historical, module)

        assert read().terminal_number == "440100813475"
        sm4_keys = {PsamKey(CardAlgorithm.SM4, KEY_TYPE_AUTH, k) for k in (KEY_IRK, KEY_RKSSSE)}
        assert module.levels == dict.fromkeys(sm4_keys, 3)
        bridge.remove()
        assert cards.readers.wait_for_removal(READER1, timeout=5)
        with pytest.raises(NoSecurityModule) as info:
            read()
        assert info.value.code == -2201
        bridge = VpcdBridge(second, slot=1)
        bridge.insert()
        cards.readers.wait_for_card(5, reader=READER1).close()
        result = read()
        assert result.terminal_number == "330100520011"  # not the first PSAM's
        assert result.contents.holder is not None and result.contents.holder.name == "李晓梅"
        assert module.levels == {
            PsamKey(CardAlgorithm.SM4, KEY_TYPE_AUTH, KEY_RKSSSE): 2,
            PsamKey(CardAlgorithm.SM4, KEY_TYPE_AUTH, KEY_IRK): 3,
        }
        assert bf_de(second)[:2] == [(0x67, KEY_RKSSSE, "6A80"), (0x47, KEY_RKSSSE, "9000")]
        # swapped while idle, no read in between: the check is simply done on the new PSAM
        bridge.remove()
        assert cards.readers.wait_for_removal(READER1, timeout=5)
        bridge = VpcdBridge(first, slot=1)
        bridge.insert()
        cards.readers.wait_for_card(5, reader=READER1).close()
        assert read().terminal_number == "440100813475"
        assert module.levels == dict.fromkeys(sm4_keys, 3)
    finally:
        if module is not None:
            module.close()
        bridge.remove()
        cards.readers.wait_for_removal(READER1, timeout=5)


def test_a_psam_pulled_between_the_check_and_the_authentication_is_11_not_the_cards_4(
    cards, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The authentication needs what the check left in the PSAM: it is not redone on another
    connection, and the error names the security module, not the user card."""
    device = VirtualPsam(load_psam(KEYS / "psam-national.toml"), Behaviour(t0=True))
    cards.insert(card("sm4", forged=False))
    bridge = VpcdBridge(device, slot=1)
    bridge.insert()
    module = None
    try:
        cards.readers.wait_for_card(5, reader=READER1).close()
        module = open_psam(cards.readers, READER1)
        assert module is not None
        check = module.check

        def check_then_pull(identity: CardIdentity) -> None:
            check(identity)
            bridge.remove()
            assert cards.readers.wait_for_removal(READER1, timeout=5)

        monkeypatch.setattr(module, "check", check_then_pull)
        with cards.readers.wait_for_card(5, reader=READER0) as connection:
            session = SscSession(t0_chain(connection), V3.historical)
            with pytest.raises(PsamLost) as info:
                session.authenticate(module, holder=True)
        monkeypatch.undo()
        assert national_code(info.value) == -11 and READER1 in str(info.value)
        bridge = VpcdBridge(device, slot=1)
        bridge.insert()
        cards.readers.wait_for_card(5, reader=READER1).close()
        with cards.readers.wait_for_card(5, reader=READER0) as connection:
            result = read_authenticated(t0_chain(connection), V3.historical, module)
        assert result.terminal_number == "440100813475"
    finally:
        if module is not None:
            module.close()
        bridge.remove()
        cards.readers.wait_for_removal(READER1, timeout=5)
