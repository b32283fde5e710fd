"""Every reason code has its prompts and signal; refusals carry the hotline."""

from __future__ import annotations

from drivers.indicators import Signal
from terminal.reasons import DENY_REASONS, HOTLINE, TEXTS, Reason, indication


def test_every_reason_has_both_prompts() -> None:
    assert set(TEXTS) == set(Reason)
    for reason, text in TEXTS.items():
        assert text.zh and text.en and text.zh != text.en, reason


def test_refusals_carry_the_hotline_and_only_accepts_open_the_gate() -> None:
    for reason in Reason:
        shown = indication(reason)
        assert (shown.hotline == HOTLINE) == (TEXTS[reason].signal == Signal.REFUSE)
        assert shown.reason_code == str(reason) and not shown.open_gate
    assert indication(Reason.OK, open_gate=True).open_gate


def test_each_deny_list_reason_has_its_own_code() -> None:
    assert set(DENY_REASONS) == {"lost", "cancelled", "replaced", "fraud"}
    assert len(set(DENY_REASONS.values())) == 4


def test_a_region_restriction_names_its_rule_in_both_prompts() -> None:
    rule = "《某市办法》第5条"
    shown = indication(Reason.REGION_NOT_ACCEPTED, rule=rule)
    assert rule in shown.prompt_zh and rule in shown.prompt_en and shown.hotline == HOTLINE
    assert "{rule}" not in indication(Reason.REGION_NOT_ACCEPTED).prompt_zh
    assert indication(Reason.OK, rule=rule).prompt_zh == TEXTS[Reason.OK].zh  # no place for it
