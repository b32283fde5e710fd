"""The stable reason codes of a decision, with their prompts (DESIGN.md "A tap, end to end").

A code never changes meaning once released: host systems, the platform and the journal key on
it. Each has a short Chinese prompt for the holder, an English one, and the signal the
indicators give. The service-point duties of ``docs/service-point.md`` shape the prompts:

* every refusal and every "try again" ends with what to do next (:class:`NextStep`: 请到人工窗口,
  请重新刷卡, 请使用实体卡 …) — the terminal serves elderly and disabled people too
  (Guangdong draft §15, 2026 draft §6, Jiangxi §10); longer advice (where to unblock a PIN) is
  shown, never spoken;
* a prompt is short enough to hear while walking through a gate: at most
  :data:`MAX_SPOKEN_ZH_CHARS` spoken Chinese characters and :data:`MAX_SPOKEN_EN_WORDS` words;
* every refusal carries the service point's complaint hotlines (12333 人社服务热线 and 12345
  政务服务便民热线 by default; Guangdong draft §21, Guangzhou §29, Jiangxi §5), passed in as
  data: a deployment sets its own in ``[service_point] hotlines`` (:func:`hotlines_from`);
* a refusal that rests on a deployment's own rule (a region restriction, docs/policy.md) names
  the rule in its advice (shown, not spoken).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from config.settings import DEFAULT_HOTLINES as DEFAULT_HOTLINE_ENTRIES
from config.settings import HotlineEntry
from drivers.indicators import Hotline, Indication, Signal
from offline_store.denyfile import DenyReason


def hotlines_from(entries: Iterable[HotlineEntry]) -> tuple[Hotline, ...]:
    """The hotlines of ``[service_point] hotlines`` as the indicators announce them.

    :param entries: the settings' entries, in order
    :raises ValueError: an entry the settings schema would have refused
    """
    return tuple(Hotline(e.number, e.purpose_zh, e.purpose_en) for e in entries)


#: the hotlines a service point announces unless its deployment sets others (the settings'
#: defaults: 12333 人社服务热线, 12345 政务服务便民热线)
DEFAULT_HOTLINES: tuple[Hotline, ...] = hotlines_from(DEFAULT_HOTLINE_ENTRIES)
MAX_SPOKEN_ZH_CHARS = 20  # a Chinese prompt, punctuation not counted: ~5 s at 140 wpm
MAX_SPOKEN_EN_WORDS = 12
_WORD = re.compile(r"[A-Za-z0-9']+")


class Reason(StrEnum):
    """Why a tap ended as it did. The order of the checks is in :mod:`terminal.pipeline`."""

    OK = "ok"
    NOT_GENUINE = "not_genuine"
    NO_SECURITY_MODULE = "no_security_module"
    SECURITY_MODULE_ERROR = "security_module_error"
    EXPIRED = "expired"
    DENY_LOST = "deny_lost"
    DENY_CANCELLED = "deny_cancelled"
    DENY_REPLACED = "deny_replaced"
    DENY_FRAUD = "deny_fraud"
    APP_LOCKED = "app_locked"
    CARD_BLOCKED = "card_blocked"
    PIN_WRONG = "pin_wrong"
    PIN_BLOCKED = "pin_blocked"
    PIN_MISSING = "pin_missing"
    CATEGORY_NOT_ALLOWED = "category_not_allowed"
    REGION_NOT_ACCEPTED = "region_not_accepted"
    NOT_IN_CATALOGUE = "not_in_catalogue"
    LIST_STALE = "list_stale"
    ANTI_PASSBACK = "anti_passback"
    CAPACITY_FULL = "capacity_full"
    MEAL_LIMIT_REACHED = "meal_limit_reached"
    MEAL_NOT_ELIGIBLE = "meal_not_eligible"
    BAD_REQUEST = "bad_request"
    CARD_UNREADABLE = "card_unreadable"
    CARD_REMOVED = "card_removed"
    QR_BAD_ENCODING = "qr_bad_encoding"
    QR_UNKNOWN_KEY = "qr_unknown_key"
    QR_BAD_SIGNATURE = "qr_bad_signature"
    QR_NOT_YET_VALID = "qr_not_yet_valid"
    QR_EXPIRED = "qr_expired"
    QR_OUTSIDE_WINDOW = "qr_outside_window"
    QR_REPLAY = "qr_replay"
    QR_STALE_TRUST_LIST = "qr_stale_trust_list"
    QR_IDENTITY_UNAVAILABLE = "qr_identity_unavailable"
    QR_ONLINE_REFUSED = "qr_online_refused"
    QR_ONLINE_UNAVAILABLE = "qr_online_unavailable"
    QR_DEFERRED = "qr_deferred"
    QR_DEFERRED_LIMIT = "qr_deferred_limit"
    # payments (issue 15, docs/payments.md): each status word of the purse its own code
    PURSE_PENDING = "purse_pending"  # journal only: the debit is about to be sent
    PURSE_INSUFFICIENT = "purse_insufficient"  # 9401
    PURSE_MAC_INVALID = "purse_mac_invalid"  # 9302
    PURSE_LOCKED = "purse_locked"  # 9303
    PURSE_COUNTER_EXHAUSTED = "purse_counter_exhausted"  # 9402
    PURSE_KEY_UNSUPPORTED = "purse_key_unsupported"  # 9403
    PURSE_PROOF_UNAVAILABLE = "purse_proof_unavailable"  # 9406
    PURSE_NOT_INITIALISED = "purse_not_initialised"  # 6901/6985
    PURSE_REFUSED = "purse_refused"  # any other status word of a payment step
    PURSE_TORN = "purse_torn"  # the card left during the debit: tap again
    PURSE_UNDECIDED = "purse_undecided"  # a torn purchase the card cannot settle
    #: the terminal could not journal the decision (disk full, a damaged store): it refuses,
    #: since it never opens a gate or takes money it cannot record; never itself journaled
    JOURNAL_UNAVAILABLE = "journal_unavailable"


class NextStep(StrEnum):
    """What a refused (or "try again") holder should do next; each prompt ends with one."""

    STAFF = "staff"
    PRESENT_CARD_AGAIN = "present_card_again"
    SHOW_CODE_AGAIN = "show_code_again"
    REFRESH_CODE = "refresh_code"
    USE_NEW_CARD = "use_new_card"
    USE_PHYSICAL_CARD = "use_physical_card"
    ENTER_PIN = "enter_pin"
    ENTER_AGAIN = "enter_again"
    COME_ANOTHER_DAY = "come_another_day"


#: the words of each next step, Chinese and English, as the prompts end with them
NEXT_STEPS: dict[NextStep, tuple[str, str]] = {
    NextStep.STAFF: ("请到人工窗口", "please see staff"),
    NextStep.PRESENT_CARD_AGAIN: ("请重新刷卡", "present the card again"),
    NextStep.SHOW_CODE_AGAIN: ("请重新出示", "show the code again"),
    NextStep.REFRESH_CODE: ("请刷新后重试", "refresh it and try again"),
    NextStep.USE_NEW_CARD: ("请使用新卡", "use the new card"),
    NextStep.USE_PHYSICAL_CARD: ("请使用实体卡", "please use the physical card"),
    NextStep.ENTER_PIN: ("请输入密码", "please enter the PIN"),
    NextStep.ENTER_AGAIN: ("请重新输入", "enter it again"),
    NextStep.COME_ANOTHER_DAY: ("请改日再来", "please come another day"),
}


@dataclass(frozen=True, slots=True)
class ReasonText:
    """How a reason is shown and signalled.

    :param signal: accept, refuse, or attention (the holder should try again)
    :param zh: the Chinese prompt (spoken); a refusal or attention ends with its next step
    :param en: the English prompt (spoken in English); ends with the same next step
    :param step: what to do next; ``None`` only for an accept
    :param advice_zh: longer advice, shown but not spoken
    :param advice_en: the same advice in English
    """

    signal: Signal
    zh: str
    en: str
    step: NextStep | None = None
    advice_zh: str = ""
    advice_en: str = ""


def spoken_zh_chars(text: str) -> int:
    """How many characters of a Chinese prompt are spoken: punctuation and spaces are not.

    :param text: the prompt
    """
    return sum(1 for c in text if not c.isspace() and unicodedata.category(c)[0] != "P")


def spoken_en_words(text: str) -> int:
    """How many words an English prompt has.

    :param text: the prompt
    """
    return len(_WORD.findall(text))


_A, _R, _T = Signal.ACCEPT, Signal.REFUSE, Signal.ATTENTION
_STAFF, _AGAIN = NextStep.STAFF, NextStep.PRESENT_CARD_AGAIN
# where a card is unblocked, a loss report cancelled or a PIN reset: the partner bank's branch
# (Guangzhou §6, §22; Jiangxi §9)
_BANK_ZH = "请到社保卡合作银行网点"
_BANK_EN = "at a partner bank branch of the social security card"

TEXTS: dict[Reason, ReasonText] = {
    Reason.OK: ReasonText(_A, "验证通过", "Accepted"),
    Reason.NOT_GENUINE: ReasonText(
        _R, "卡片验证失败，请到人工窗口", "Card not verified: please see staff", _STAFF
    ),
    Reason.NO_SECURITY_MODULE: ReasonText(
        _R, "终端无法验卡，请到人工窗口", "Terminal cannot verify cards: please see staff", _STAFF
    ),
    Reason.SECURITY_MODULE_ERROR: ReasonText(
        _R, "终端安全模块故障，请到人工窗口", "Terminal security fault: please see staff", _STAFF
    ),
    Reason.EXPIRED: ReasonText(
        _R,
        "卡已过有效期，请到人工窗口",
        "Card expired: please see staff",
        _STAFF,
        f"{_BANK_ZH}换领新卡",
        f"Renew the card {_BANK_EN}",
    ),
    Reason.DENY_LOST: ReasonText(
        _R,
        "卡已挂失，请到人工窗口",
        "Card reported lost: please see staff",
        _STAFF,
        "卡已找回的，请持有效身份证件到社保卡合作银行网点解除挂失",
        f"A card found again is unlisted {_BANK_EN}, with your ID",
    ),
    Reason.DENY_CANCELLED: ReasonText(
        _R,
        "卡已注销，请到人工窗口",
        "Card cancelled: please see staff",
        _STAFF,
        "请到社保卡服务网点咨询",
        "Ask at a social security card service point",
    ),
    Reason.DENY_REPLACED: ReasonText(
        _R, "卡已补换，请使用新卡", "Card replaced: use the new card", NextStep.USE_NEW_CARD
    ),
    Reason.DENY_FRAUD: ReasonText(
        _R, "卡片状态异常，请到人工窗口", "Card not accepted: please see staff", _STAFF
    ),
    Reason.APP_LOCKED: ReasonText(
        _R,
        "社保应用已锁定，请到人工窗口",
        "Card application locked: please see staff",
        _STAFF,
        f"{_BANK_ZH}办理应用解锁",
        f"Have it unlocked {_BANK_EN}",
    ),
    Reason.CARD_BLOCKED: ReasonText(
        _R,
        "卡片已锁定，请到人工窗口",
        "Card blocked: please see staff",
        _STAFF,
        f"{_BANK_ZH}办理",
        f"Ask {_BANK_EN}",
    ),
    Reason.PIN_WRONG: ReasonText(
        _T, "密码错误，请重新输入", "Wrong PIN: enter it again", NextStep.ENTER_AGAIN
    ),
    Reason.PIN_BLOCKED: ReasonText(
        _R,
        "密码已锁定，请到人工窗口",
        "PIN blocked: please see staff",
        _STAFF,
        f"{_BANK_ZH}重置密码",
        f"Have the PIN reset {_BANK_EN}",
    ),
    Reason.PIN_MISSING: ReasonText(_T, "请输入密码", "Please enter the PIN", NextStep.ENTER_PIN),
    Reason.CATEGORY_NOT_ALLOWED: ReasonText(
        _R,
        "此卡类别不适用本服务，请到人工窗口",
        "Card category not served here: please see staff",
        _STAFF,
    ),
    Reason.REGION_NOT_ACCEPTED: ReasonText(
        _R,
        "本服务仅限规定地区的卡，请到人工窗口",
        "Card region not served here: please see staff",
        _STAFF,
        "此限制的依据：{rule}",
        "This restriction rests on {rule}",
    ),
    Reason.NOT_IN_CATALOGUE: ReasonText(
        _R,
        "本服务未开通社保卡应用，请到人工窗口",
        "Card service not offered here: please see staff",
        _STAFF,
    ),
    Reason.LIST_STALE: ReasonText(
        _R, "终端名单过期，请到人工窗口", "Terminal lists out of date: please see staff", _STAFF
    ),
    Reason.ANTI_PASSBACK: ReasonText(
        _R, "此卡刚刚已进入，请到人工窗口", "This card has just entered: please see staff", _STAFF
    ),
    Reason.CAPACITY_FULL: ReasonText(
        _R,
        "今日名额已满，请改日再来",
        "Today's capacity is reached: please come another day",
        NextStep.COME_ANOTHER_DAY,
    ),
    Reason.MEAL_LIMIT_REACHED: ReasonText(
        _R,
        "今日助餐次数已用完，请改日再来",
        "Today's meals are used up: please come another day",
        NextStep.COME_ANOTHER_DAY,
    ),
    Reason.MEAL_NOT_ELIGIBLE: ReasonText(
        _R,
        "不符合助餐条件，请到人工窗口",
        "Not eligible for meal service: please see staff",
        _STAFF,
        "助餐服务对象由当地民政部门确定，请到社区服务中心咨询",
        "Who is served is set by the local civil affairs office: ask at the community centre",
    ),
    Reason.BAD_REQUEST: ReasonText(
        _R, "输入信息有误，请重新输入", "Invalid input: enter it again", NextStep.ENTER_AGAIN
    ),
    Reason.CARD_UNREADABLE: ReasonText(
        _T, "读卡失败，请重新刷卡", "Card read failed: present the card again", _AGAIN
    ),
    Reason.CARD_REMOVED: ReasonText(
        _T, "卡片移开过早，请重新刷卡", "Card removed too early: present the card again", _AGAIN
    ),
    Reason.QR_BAD_ENCODING: ReasonText(
        _T,
        "无法识别此二维码，请重新出示",
        "Code not recognised: show the code again",
        NextStep.SHOW_CODE_AGAIN,
    ),
    Reason.QR_UNKNOWN_KEY: ReasonText(
        _R,
        "电子社保卡签发方未知，请到人工窗口",
        "Code from an unknown issuer: please see staff",
        _STAFF,
    ),
    Reason.QR_BAD_SIGNATURE: ReasonText(
        _R, "电子社保卡验证失败，请到人工窗口", "Code signature not valid: please see staff", _STAFF
    ),
    Reason.QR_NOT_YET_VALID: ReasonText(
        _R,
        "电子社保卡尚未生效，请到人工窗口",
        "Electronic card not yet valid: please see staff",
        _STAFF,
    ),
    Reason.QR_EXPIRED: ReasonText(
        _R,
        "电子社保卡已过期，请刷新后重试",
        "Electronic card expired: refresh it and try again",
        NextStep.REFRESH_CODE,
    ),
    Reason.QR_OUTSIDE_WINDOW: ReasonText(
        _T,
        "二维码已过期，请刷新后重试",
        "Code too old: refresh it and try again",
        NextStep.REFRESH_CODE,
    ),
    Reason.QR_REPLAY: ReasonText(
        _R,
        "二维码已使用，请刷新后重试",
        "Code already used: refresh it and try again",
        NextStep.REFRESH_CODE,
    ),
    Reason.QR_STALE_TRUST_LIST: ReasonText(
        _R,
        "终端密钥列表过期，请到人工窗口",
        "Terminal key list out of date: please see staff",
        _STAFF,
    ),
    Reason.QR_IDENTITY_UNAVAILABLE: ReasonText(
        _R,
        "二维码缺少所需信息，请使用实体卡",
        "Code lacks what this service needs: please use the physical card",
        NextStep.USE_PHYSICAL_CARD,
    ),
    Reason.QR_ONLINE_REFUSED: ReasonText(
        _R,
        "电子社保卡验证未通过，请到人工窗口",
        "Electronic card not accepted: please see staff",
        _STAFF,
    ),
    Reason.QR_ONLINE_UNAVAILABLE: ReasonText(
        _R,
        "网络不可用，请使用实体卡",
        "Network unavailable: please use the physical card",
        NextStep.USE_PHYSICAL_CARD,
    ),
    Reason.QR_DEFERRED: ReasonText(_A, "验证通过", "Accepted (checked at the next sync)"),
    Reason.QR_DEFERRED_LIMIT: ReasonText(
        _R,
        "离线验码已达上限，请使用实体卡",
        "Offline code checks used up: please use the physical card",
        NextStep.USE_PHYSICAL_CARD,
    ),
    Reason.PURSE_PENDING: ReasonText(_A, "扣款中", "Paying"),
    Reason.PURSE_INSUFFICIENT: ReasonText(
        _R,
        "余额不足，请到人工窗口",
        "Insufficient balance: please see staff",
        _STAFF,
        "请到充值网点充值",
        "Top up the transit purse at a top-up point",
    ),
    Reason.PURSE_MAC_INVALID: ReasonText(
        _R, "交易认证失败，请到人工窗口", "Payment not authorised: please see staff", _STAFF
    ),
    Reason.PURSE_LOCKED: ReasonText(
        _R,
        "交通应用已锁定，请到人工窗口",
        "Transit purse locked: please see staff",
        _STAFF,
        "请到发卡机构网点解锁",
        "Have it unlocked by the card's transit issuer",
    ),
    Reason.PURSE_COUNTER_EXHAUSTED: ReasonText(
        _R, "卡片交易次数已满，请到人工窗口", "Card can pay no more: please see staff", _STAFF
    ),
    Reason.PURSE_KEY_UNSUPPORTED: ReasonText(
        _R, "卡片密钥不支持，请到人工窗口", "Card key not supported: please see staff", _STAFF
    ),
    Reason.PURSE_PROOF_UNAVAILABLE: ReasonText(
        _R, "交易凭证不可用，请到人工窗口", "Payment proof unavailable: please see staff", _STAFF
    ),
    Reason.PURSE_NOT_INITIALISED: ReasonText(
        _T, "交易未完成，请重新刷卡", "Payment not started: present the card again", _AGAIN
    ),
    Reason.PURSE_REFUSED: ReasonText(
        _R, "扣款失败，请到人工窗口", "Payment refused: please see staff", _STAFF
    ),
    Reason.PURSE_TORN: ReasonText(
        _T, "请重新刷卡", "Card moved too soon: present the card again", _AGAIN
    ),
    Reason.PURSE_UNDECIDED: ReasonText(
        _R, "交易待核实，请到人工窗口", "Payment to be checked: please see staff", _STAFF
    ),
    Reason.JOURNAL_UNAVAILABLE: ReasonText(
        _R, "终端暂停服务，请到人工窗口", "Terminal out of service: please see staff", _STAFF
    ),
}

#: each reason a card is on the deny list, and its own code ``deny_<reason>`` (a reason the
#: codes lack fails at import)
DENY_REASONS = {str(reason): Reason(f"deny_{reason}") for reason in DenyReason}


RULE_UNNAMED = "-"


def indication(
    reason: Reason,
    *,
    hotlines: Sequence[Hotline] = DEFAULT_HOTLINES,
    open_gate: bool = False,
    rule: str | None = None,
) -> Indication:
    """What the indicators show for a reason; refusals carry the hotlines.

    :param reason: the reason code
    :param hotlines: the service point's complaint hotlines (its deployment's, or the defaults)
    :param open_gate: open the gate (accepted entries at a gate or validator)
    :param rule: the rule a refusal rests on, named where its text has a place for it
    :raises ValueError: ``open_gate`` for a reason that is not an accept
    """
    text = TEXTS[reason]
    shown = tuple(hotlines) if text.signal == Signal.REFUSE else ()
    named = rule or RULE_UNNAMED
    return Indication(
        text.signal,
        str(reason),
        text.zh,
        text.en,
        shown,
        open_gate,
        text.advice_zh.replace("{rule}", named),
        text.advice_en.replace("{rule}", named),
    )
