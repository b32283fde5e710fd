"""End to end with security modules: the user card in vpcd slot 0, a PSAM in slot 1, the
reference HSM service over real HTTP, the software SAM — all through the real pcscd and CLI."""

from __future__ import annotations

import json

import pytest
from support import READER0, READER1, TEST_ROOTS, load_test_roots, make_card, make_psam, run_sscard

from drivers.keyfile import private_copy

pytestmark = pytest.mark.e2e

V3_LINE = (
    "330100|310000197811203384|E55120706|330100D15600000504112233FFFFFFFF|李晓梅|"
    "00814A44468660330104112233|3.00|20240520|20340519|{terminal}||"
)


def read(*extra: str, fmt: str = "json"):
    done = run_sscard("read", "--reader", READER0, "--format", fmt, "--timeout", "10", *extra)
    if fmt == "json":
        return done.returncode, json.loads(done.stdout), done.stderr
    return done.returncode, done.stdout.strip(), done.stderr


def test_full_3_0_read_with_the_psam_prints_the_national_line(cards) -> None:
    cards.insert(make_card("v3-sm4", t0=True))
    cards.insert(make_psam("psam-national"), slot=1)
    status, line, stderr = read("--sam-reader", READER1, fmt="ireadcardbas")
    assert status == 0, stderr
    assert line == V3_LINE.format(terminal="440100813475")


def test_2_0_read_with_genuineness_check(cards) -> None:
    card = cards.insert(make_card("ordinary-2.0"))
    cards.insert(make_psam("psam-national"), slot=1)
    status, out, stderr = read("--sam-reader", READER1)
    assert status == 0, stderr
    assert out["terminal_number"] == "440100813475" and out["security_module"] == "psam"
    assert any(cmd[1] == 0x88 for cmd, _ in card.log)  # INTERNAL AUTHENTICATE ran


def test_forged_card_is_refused_as_not_genuine(cards) -> None:
    cards.insert(make_card("forged"))
    cards.insert(make_psam("psam-national"), slot=1)
    status, out, stderr = read("--sam-reader", READER1)
    assert (status, out["code"]) == (2, -21)
    assert "card" not in out and "-21" in stderr


def test_no_psam_in_the_slot_gives_2201(cards) -> None:
    cards.insert(make_card("ordinary-2.0"))
    status, out, _ = read("--sam-reader", READER1)
    assert (status, out["code"]) == (2, -2201)


def test_psam_without_sm4_gives_2202_and_without_rkssse_2203(cards) -> None:
    cards.insert(make_card("v3-sm4"))
    cards.insert(make_psam("psam-des-only"), slot=1)
    assert read("--sam-reader", READER1)[1]["code"] == -2202
    cards.remove_all()
    cards.insert(make_card("v3-sm4"))
    cards.insert(make_psam("psam-no-rkssse"), slot=1)
    assert read("--sam-reader", READER1)[1]["code"] == -2203


def test_two_level_psam_is_found_by_the_level_retry(cards) -> None:
    cards.insert(make_card("ordinary-2.0"))
    psam = cards.insert(make_psam("psam-city-2level"), slot=1)
    status, _out, stderr = read("--sam-reader", READER1)
    assert status == 0, stderr
    usages = [cmd[2] for cmd, _ in psam.log if cmd[:2] == bytes.fromhex("BFDE")]
    assert usages[:2] == [0x67, 0x47]  # 3 levels refused (6A80), then 2 accepted


@pytest.fixture
def hsm_url():
    from drivers.virtual.hsm_service import HsmService

    service = HsmService(load_test_roots())
    url = service.start()
    yield url
    service.stop()


def test_hsm_two_step_mode_over_real_http(cards, hsm_url) -> None:
    cards.insert(make_card("v3-sm4", t0=True))
    status, line, stderr = read("--hsm", hsm_url, fmt="ireadcardbas")
    assert status == 0, stderr
    assert line == V3_LINE.format(terminal="000000000000")


def test_hsm_mode_refuses_a_forged_card(cards, hsm_url) -> None:
    cards.insert(make_card("forged"))
    assert read("--hsm", hsm_url)[1]["code"] == -21


def test_hsm_with_a_bearer_token_from_the_settings(cards, tmp_path) -> None:
    from drivers.virtual.hsm_service import HsmService

    secret = tmp_path / "hsm.token"
    secret.write_text("test-token-7f3a9c\n")
    secret.chmod(0o600)
    service = HsmService(load_test_roots(), token="test-token-7f3a9c")
    url = service.start()
    try:
        cards.insert(make_card("v3-sm4"))
        status, out, stderr = read("--hsm", url)
        assert status == 2 and out["code"] == -11 and "401" in stderr  # no token: refused
        config = tmp_path / "terminal.toml"
        config.write_text(f'[security]\nhsm_url = "{url}"\nhsm_token_file = "hsm.token"\n')
        status, out, stderr = read("--config", str(config))
        assert status == 0, stderr
        assert out["card"]["name"] == "李晓梅" and out["security_module"] == "hsm"
    finally:
        service.stop()


def test_software_sam_reads_and_is_refused_in_production(cards, tmp_path) -> None:
    keyfile = private_copy(TEST_ROOTS, tmp_path / "roots.toml")
    cards.insert(make_card("v3-sm4"))
    status, out, stderr = read("--soft-sam", str(keyfile))
    assert status == 0, stderr
    assert out["card"]["name"] == "李晓梅" and out["terminal_number"] == "440100000001"
    config = tmp_path / "terminal.toml"
    config.write_text("production = true\n")
    status, out, stderr = read("--soft-sam", str(keyfile), "--config", str(config))
    assert status == 2 and "production" in stderr


def test_software_sam_refuses_a_key_file_others_can_read(cards, tmp_path) -> None:
    keyfile = private_copy(TEST_ROOTS, tmp_path / "roots.toml")
    keyfile.chmod(0o644)
    cards.insert(make_card("ordinary-2.0"))
    status, _, stderr = read("--soft-sam", str(keyfile))
    assert status == 2 and "0600" in stderr


def pin(action: str, *lines: str):
    done = run_sscard(
        "pin",
        action,
        "--reader",
        READER0,
        "--pin-stdin",
        "--format",
        "json",
        "--timeout",
        "10",
        stdin="".join(line + "\n" for line in lines),
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def test_pin_counter_runs_down_to_blocked_with_its_own_codes(cards) -> None:
    cards.insert(make_card("ordinary-2.0"))
    assert pin("verify", "123456")[:2] == (
        0,
        {"ok": True, "code": 0, "reason": "PIN verified", "tries_left": None},
    )
    seen = [pin("verify", "000000")[1] for _ in range(3)]
    assert [(o["code"], o["tries_left"]) for o in seen] == [(-51, 2), (-51, 1), (-51, 0)]
    blocked = pin("verify", "123456")[1]
    assert blocked["code"] == -52  # 6983: blocked, the right PIN no longer helps


def test_pin_change_then_verify_with_the_new_pin(cards) -> None:
    cards.insert(make_card("ordinary-2.0"))
    assert pin("change", "123456", "24680", "24680")[0] == 0
    assert pin("verify", "24680")[0] == 0
    status, out, _ = pin("change", "24680", "1111", "2222")
    assert (status, out["code"]) == (2, -34)  # the two new PINs differ


def test_pin_on_locked_application_and_blocked_card(cards) -> None:
    cards.insert(make_card("ordinary-2.0", app_locked=True))
    assert pin("verify", "123456")[1]["code"] == -37635
    cards.remove_all()
    cards.insert(make_card("ordinary-2.0", card_blocked=True))
    assert pin("verify", "123456")[1]["code"] == -27265


def test_pin_is_never_echoed_in_output(cards) -> None:
    cards.insert(make_card("ordinary-2.0"))
    status, out, stderr = pin("verify", "987654")
    assert status == 2
    assert "987654" not in json.dumps(out) and "987654" not in stderr


def test_the_demo_reads_every_persona_and_the_3_0_card_with_the_psam(pcscd) -> None:
    done = run_sscard("demo", timeout=120)
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("\n\n")
    v3 = [b for b in blocks if b.startswith("[v3-sm4]")]
    assert "-27010" in v3[0] and "6982" in v3[0]  # without a module EF06 stays closed
    assert V3_LINE.format(terminal="440100813475") in v3[1]
    forged = [b for b in blocks if b.startswith("[forged]")]
    assert "|林志远|" in forged[0] and "-21" in forged[1]
    validator, stale = done.stdout.split("bus validator:")[1].split("bus validator, no sync")
    assert "[elderly] accept" in validator and "(elderly_category)" in validator
    assert "[student] refuse: 卡已挂失" in validator
    # issue 11: a card from another province is accepted at a Guangzhou bus as at home
    nanchang = next(line for line in validator.splitlines() if "[jiangxi-nanchang]" in line)
    assert "accept: 验证通过" in nanchang and "fare 2.00 yuan" in nanchang
    assert "journal chain verified: 5 rows" in validator
    # ... and a deny list four days old keeps the bus running, flagged, with the alarm raised
    assert "transit:    DEGRADED (stale, limit 72 h): accept" in stale
    assert "operator alarm: event=list_degraded list=deny_list state=stale" in stale
    changsha = next(line for line in stale.splitlines() if "[hunan-changsha]" in line)
    assert "accept: 验证通过" in changsha and "fare 0.00 yuan (elderly_category)" in changsha
    assert "flags stale_list:deny_list" in changsha
    assert "[student] refuse: 卡已挂失" in stale  # a card the stale list names stays refused
