"""Every reason code has its prompts and signal; refusals carry the hotlines they are given; every
refusal says what to do next, briefly enough to hear at a gate (docs/service-point.md)."""

from __future__ import annotations

import pytest

from drivers.indicators import Hotline, Signal
from terminal.pipeline import Decision
from terminal.reasons import (
    DEFAULT_HOTLINES,
    DENY_REASONS,
    MAX_SPOKEN_EN_WORDS,
    MAX_SPOKEN_ZH_CHARS,
    NEXT_STEPS,
    TEXTS,
    Reason,
    indication,
    spoken_en_words,
    spoken_zh_chars,
)

LOCAL = (Hotline("0791-12345", "南昌市民热线", "Nanchang citizens' hotline"),)


def test_every_reason_has_both_prompts() -> None:
    assert set(TEXTS) == set(Reason)
    for reason, text in TEXTS.items():
        assert text.zh and text.en and text.zh != text.en, reason


def test_the_default_hotlines_are_12333_and_12345_with_what_each_is_for() -> None:
    assert [(h.number, h.purpose_zh) for h in DEFAULT_HOTLINES] == [
        ("12333", "人社服务热线"),
        ("12345", "政务服务便民热线"),
    ]


def test_refusals_carry_the_hotlines_they_are_given_and_only_accepts_open_the_gate() -> None:
    for reason in Reason:
        refused = TEXTS[reason].signal == Signal.REFUSE
        assert indication(reason).hotlines == (DEFAULT_HOTLINES if refused else ())
        shown = indication(reason, hotlines=LOCAL)
        assert shown.hotlines == (LOCAL if refused else ())
        assert (shown.hotline is not None) == refused
        assert shown.reason_code == str(reason) and not shown.open_gate
    assert indication(Reason.OK, open_gate=True).open_gate
    line = indication(Reason.DENY_LOST).hotline
    assert line is not None
    assert "12333 人社服务热线" in line and "12345 政务服务便民热线" in line


def test_every_refusal_and_try_again_ends_with_what_to_do_next() -> None:
    for reason, text in TEXTS.items():
        if text.signal == Signal.ACCEPT:
            assert text.step is None, reason
            continue
        assert text.step is not None, f"{reason}: a refusal must say what to do next"
        zh, en = NEXT_STEPS[text.step]
        assert text.zh.endswith(zh), f"{reason}: {text.zh!r} does not end with {zh!r}"
        assert text.en.lower().endswith(en.lower()), f"{reason}: {text.en!r} ≠ …{en!r}"


def test_spoken_prompts_are_short_enough_to_hear_at_a_gate() -> None:
    for reason, text in TEXTS.items():
        assert spoken_zh_chars(text.zh) <= MAX_SPOKEN_ZH_CHARS, (reason, text.zh)
        assert spoken_en_words(text.en) <= MAX_SPOKEN_EN_WORDS, (reason, text.en)


def test_spoken_length_counts_characters_and_words_not_punctuation() -> None:
    assert spoken_zh_chars("卡已挂失，请到人工窗口") == 10
    assert spoken_zh_chars("读卡失败：请重新刷卡。 ") == 9
    assert spoken_en_words("Card reported lost: please see staff") == 6
    assert spoken_en_words("Today's capacity is reached") == 4


def test_advice_is_shown_where_the_next_step_needs_more_than_a_prompt() -> None:
    # where a card is unlisted, unlocked or its PIN reset: the partner bank (Guangzhou §6, §22)
    for reason in (Reason.DENY_LOST, Reason.APP_LOCKED, Reason.PIN_BLOCKED, Reason.EXPIRED):
        shown = indication(reason)
        assert "银行网点" in shown.advice_zh and "bank" in shown.advice_en, reason


def test_a_decision_as_json_lists_its_hotlines_on_a_refusal_only() -> None:
    refused = Decision("refuse", Reason.DENY_LOST, hotlines=LOCAL).to_json()
    assert refused["hotlines"] == [
        {
            "number": "0791-12345",
            "purpose_zh": "南昌市民热线",
            "purpose_en": "Nanchang citizens' hotline",
        }
    ]
    assert refused["hotline"].startswith("咨询投诉：0791-12345 南昌市民热线")
    assert refused["advice_zh"] and refused["prompt_zh"] == "卡已挂失，请到人工窗口"
    default = Decision("refuse", Reason.CARD_BLOCKED).to_json()
    assert [h["number"] for h in default["hotlines"]] == ["12333", "12345"]
    accepted = Decision("accept", Reason.OK).to_json()
    assert accepted["hotlines"] == [] and accepted["hotline"] is None
    assert accepted["advice_zh"] is None


@pytest.mark.parametrize(
    ("number", "purpose"),
    [("1233", ""), ("12", "x"), ("12333 ", "x"), ("1-2", "x"), ("12333", "a\nb"), ("x", "x")],
)
def test_a_malformed_hotline_is_refused(number: str, purpose: str) -> None:
    with pytest.raises(ValueError, match="hotline"):
        Hotline(number, purpose or "", "hotline")


def test_each_deny_list_reason_has_its_own_code() -> None:
    assert set(DENY_REASONS) == {"lost", "cancelled", "replaced", "fraud"}
    assert len(set(DENY_REASONS.values())) == 4


def test_a_region_restriction_names_its_rule_in_its_advice() -> None:
    rule = "《某市办法》第5条"
    shown = indication(Reason.REGION_NOT_ACCEPTED, rule=rule)
    assert rule in shown.advice_zh and rule in shown.advice_en and shown.hotlines
    assert rule not in shown.prompt_zh  # the prompt is spoken: short, ending with the next step
    assert "{rule}" not in indication(Reason.REGION_NOT_ACCEPTED).advice_zh
    assert indication(Reason.OK, rule=rule).prompt_zh == TEXTS[Reason.OK].zh  # no place for it
