"""The parts around a payment: the software transit SAM and its TAC check, the transit roots of
the key file, the persona tables of the purse and the medical account, the transit PSAM's
persisted sequence and its refusals."""

from __future__ import annotations

import dataclasses

import pytest
from payment_support import TRANSIT_PSAM, WHEN, session, transit_module
from support import GZ_CARD, load_test_roots, make_card, make_psam

from apdu import purse
from apdu.errors import ProtocolError
from apdu.payment import Charge
from apdu.purchase import Purchase
from apdu.purse import PurchaseRequest
from apdu.sam import AlgorithmNotSupported, KeyLevelInsufficient, SecurityModuleRefused
from apdu.transit_psam import TransitPsamModule
from apdu.transport import t0_chain
from config.settings import Settings
from drivers.keyfile import KeyFileError, parse_root_keys
from drivers.soft_sam import SoftTransitSam, transit_tac_valid
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.persona import PersonaError, parse_persona
from drivers.virtual.transit_psam import VirtualTransitPsam, load_transit_psam

pytestmark = pytest.mark.emulated

ROOTS = load_test_roots()
REQUEST = PurchaseRequest(bytes(4), 41, 200, purse.TYPE_PURCHASE, WHEN, 1, 0, (bytes(8), bytes(8)))


def test_the_software_transit_sam_takes_a_fare_and_its_tac_verifies() -> None:
    card = make_card("ordinary-2.0")
    sam = SoftTransitSam(ROOTS, Settings())
    record = Purchase(session(card), sam, Charge(350), WHEN).run()
    assert record.mac2_checked and record.terminal_number == ROOTS.terminal_number
    factors = card.transit.public.factors()  # type: ignore[union-attr]
    assert transit_tac_valid(ROOTS, record, factors)
    assert not transit_tac_valid(ROOTS, dataclasses.replace(record, charge=Charge(351)), factors)
    assert not transit_tac_valid(ROOTS, record, (bytes(8), factors[1]))


def test_the_software_transit_sam_refuses_what_it_cannot_compute() -> None:
    sam = SoftTransitSam(dataclasses.replace(ROOTS, transit=None), Settings())
    with pytest.raises(AlgorithmNotSupported, match=r"\[transit\]"):
        sam.purchase_mac1(REQUEST)
    sam = SoftTransitSam(ROOTS, Settings())
    with pytest.raises(AlgorithmNotSupported, match="key version"):
        sam.purchase_mac1(dataclasses.replace(REQUEST, key_version=2))
    with pytest.raises(ProtocolError, match="2 factors"):
        sam.purchase_mac1(dataclasses.replace(REQUEST, factors=(bytes(8),)))


def test_the_key_files_transit_table_is_checked() -> None:
    base = {"test_keys": True, "des": {"irk": "00" * 16}}
    good = parse_root_keys({**base, "transit": {"dpk": "11" * 16, "dtk": "22" * 16}})
    assert good.transit is not None and good.transit.key_version == 1
    for bad in (
        {"dpk": "11" * 16},
        {"dpk": "11" * 16, "dtk": "22" * 16, "colour": 1},
        {"dpk": "11" * 16, "dtk": "22" * 16, "key_version": 0},
        {"dpk": "11" * 15, "dtk": "22" * 16},
        "not a table",
    ):
        with pytest.raises(KeyFileError):
            parse_root_keys({**base, "transit": bad})


PERSONA = {
    "card": {"city_code": "440100", "serial": "00A1B2C3", "spec_version": "2.00"},
    "holder": {},
}


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"transit": {"sequence": 1, "serial": "00" * 10}}, "balance"),
        ({"transit": {"balance": 1, "serial": "00" * 9}}, "serial"),
        ({"transit": {"balance": 1, "serial": "00" * 10, "colour": 1}}, "unknown keys"),
        ({"transit": {"balance": -1, "serial": "00" * 10}}, "balance"),
        ({"transit": {"balance": 1, "serial": "00" * 10, "valid_from": "2021"}}, "TOML date"),
        ({"medical_account": {"self_pay": 1}}, "balance"),
        ({"medical_account": {"balance": 1, "pay_year": 20}}, "pay_year"),
        ({"medical_account": {"balance": 1, "locked": "no"}}, "locked"),
    ],
)
def test_persona_payment_tables_are_checked(table, needle) -> None:
    with pytest.raises(PersonaError, match=needle):
        parse_persona({**PERSONA, **table}, "probe")


def test_a_persona_without_payment_tables_has_neither_application() -> None:
    card = make_card("student")
    assert card.transit is None and card.medical_account is None
    from apdu.errors import ApduError

    with pytest.raises(ApduError, match="6A82"):
        session(card)


def test_the_transit_psam_keeps_its_sequence_across_processes(tmp_path) -> None:
    state = tmp_path / "psam-0019"
    config = load_transit_psam(TRANSIT_PSAM)
    first = VirtualTransitPsam(config, Behaviour(t0=True), state)
    Purchase(session(make_card("ordinary-2.0")), transit_module(first), Charge(1), WHEN).run()
    assert state.read_text() == "2\n"
    second = VirtualTransitPsam(config, Behaviour(t0=True), state)  # a new process
    record = Purchase(
        session(make_card("ordinary-2.0")), transit_module(second), Charge(1), WHEN
    ).run()
    assert record.terminal_sequence == 2


def test_the_transit_psam_refuses_ssc_cards_and_other_key_versions() -> None:
    module = transit_module()
    with pytest.raises(AlgorithmNotSupported, match="no social-security keys"):
        module.check(GZ_CARD)
    with pytest.raises(SecurityModuleRefused, match="6A88"):
        module.purchase_mac1(dataclasses.replace(REQUEST, key_version=9))
    with pytest.raises(KeyLevelInsufficient):
        module.purchase_mac1(dataclasses.replace(REQUEST, factors=(bytes(8),)))
    ssc_psam = TransitPsamModule(t0_chain(VirtualConnection(make_psam("psam-national"))))
    with pytest.raises(SecurityModuleRefused, match=r"6A82|6A86"):
        ssc_psam.purchase_mac1(REQUEST)  # an SSC PSAM has no DF 1001
