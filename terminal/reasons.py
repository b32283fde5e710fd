"""The stable reason codes of a decision, with their prompts (DESIGN.md "A tap, end to end").

A code never changes meaning once released: host systems, the platform and the journal key on
it. Each has a short Chinese prompt for the holder, an English one, and the signal the
indicators give. Every refusal also carries the hotline text. A refusal that rests on a
deployment's own rule (a region restriction) names the rule in its prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.indicators import Indication, Signal

HOTLINE = "如有疑问请拨打 12333 / Questions: call 12333"


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


@dataclass(frozen=True, slots=True)
class ReasonText:
    """How a reason is shown and signalled.

    :param signal: accept, refuse, or attention (the holder should try again)
    :param zh: the Chinese prompt
    :param en: the English prompt
    """

    signal: Signal
    zh: str
    en: str


_A, _R, _T = Signal.ACCEPT, Signal.REFUSE, Signal.ATTENTION

TEXTS: dict[Reason, ReasonText] = {
    Reason.OK: ReasonText(_A, "验证通过", "Accepted"),
    Reason.NOT_GENUINE: ReasonText(_R, "卡片验证失败", "Card could not be verified as genuine"),
    Reason.NO_SECURITY_MODULE: ReasonText(
        _R, "终端无法验卡，请到人工窗口", "Terminal cannot verify cards: please see staff"
    ),
    Reason.SECURITY_MODULE_ERROR: ReasonText(
        _R, "终端安全模块故障，请到人工窗口", "Terminal security module fault: please see staff"
    ),
    Reason.EXPIRED: ReasonText(_R, "卡已过有效期", "Card has expired"),
    Reason.DENY_LOST: ReasonText(_R, "卡已挂失", "Card reported lost"),
    Reason.DENY_CANCELLED: ReasonText(_R, "卡已注销", "Card cancelled"),
    Reason.DENY_REPLACED: ReasonText(_R, "卡已补换，请使用新卡", "Card replaced: use the new card"),
    Reason.DENY_FRAUD: ReasonText(_R, "卡片状态异常", "Card not accepted"),
    Reason.APP_LOCKED: ReasonText(_R, "社保应用已锁定", "Social security application locked"),
    Reason.CARD_BLOCKED: ReasonText(_R, "卡片已锁定", "Card blocked"),
    Reason.PIN_WRONG: ReasonText(_T, "密码错误", "Wrong PIN"),
    Reason.PIN_BLOCKED: ReasonText(_R, "密码已锁定", "PIN blocked"),
    Reason.PIN_MISSING: ReasonText(_T, "请输入密码", "Please enter the PIN"),
    Reason.CATEGORY_NOT_ALLOWED: ReasonText(
        _R, "此卡类别不适用本服务", "This card category is not served here"
    ),
    Reason.REGION_NOT_ACCEPTED: ReasonText(
        _R,
        "本服务仅限规定地区发行的社保卡（依据：{rule}）",
        "This service takes only cards of certain regions (rule: {rule})",
    ),
    Reason.NOT_IN_CATALOGUE: ReasonText(
        _R, "本服务未开通社保卡应用", "Service not in the application catalogue here"
    ),
    Reason.LIST_STALE: ReasonText(
        _R, "终端名单过期，请到人工窗口", "Terminal lists out of date: please see staff"
    ),
    Reason.ANTI_PASSBACK: ReasonText(_R, "此卡刚刚已进入", "This card has just entered"),
    Reason.CAPACITY_FULL: ReasonText(_R, "今日名额已满", "Today's capacity is reached"),
    Reason.BAD_REQUEST: ReasonText(_R, "输入信息有误", "Invalid input"),
    Reason.CARD_UNREADABLE: ReasonText(_T, "读卡失败，请重新刷卡", "Card read failed: try again"),
    Reason.CARD_REMOVED: ReasonText(_T, "请重新放卡", "Card removed too early: present it again"),
    Reason.QR_BAD_ENCODING: ReasonText(
        _T, "无法识别此二维码", "Code not recognised: show it again"
    ),
    Reason.QR_UNKNOWN_KEY: ReasonText(_R, "电子社保卡签发方未知", "Code issued by an unknown key"),
    Reason.QR_BAD_SIGNATURE: ReasonText(_R, "电子社保卡验证失败", "Code signature not valid"),
    Reason.QR_NOT_YET_VALID: ReasonText(_R, "电子社保卡尚未生效", "Electronic card not yet valid"),
    Reason.QR_EXPIRED: ReasonText(_R, "电子社保卡已过期", "Electronic card expired"),
    Reason.QR_OUTSIDE_WINDOW: ReasonText(
        _T, "二维码已过期，请刷新后重试", "Code too old: refresh it and try again"
    ),
    Reason.QR_REPLAY: ReasonText(_R, "二维码已使用，请刷新", "Code already used: refresh it"),
    Reason.QR_STALE_TRUST_LIST: ReasonText(
        _R, "终端密钥列表过期，请到人工窗口", "Terminal key list out of date: please see staff"
    ),
    Reason.QR_IDENTITY_UNAVAILABLE: ReasonText(
        _R, "此二维码不含本业务所需信息", "This code does not carry what this service needs"
    ),
    Reason.QR_ONLINE_REFUSED: ReasonText(
        _R, "电子社保卡验证未通过", "Electronic card not accepted"
    ),
    Reason.QR_ONLINE_UNAVAILABLE: ReasonText(
        _R, "网络不可用，请使用实体卡", "Network unavailable: please use the physical card"
    ),
    Reason.QR_DEFERRED: ReasonText(_A, "验证通过", "Accepted (checked at the next sync)"),
}

DENY_REASONS = {
    "lost": Reason.DENY_LOST,
    "cancelled": Reason.DENY_CANCELLED,
    "replaced": Reason.DENY_REPLACED,
    "fraud": Reason.DENY_FRAUD,
}


RULE_UNNAMED = "-"


def indication(reason: Reason, *, open_gate: bool = False, rule: str | None = None) -> Indication:
    """What the indicators show for a reason; refusals carry the hotline.

    :param reason: the reason code
    :param open_gate: open the gate (accepted entries at a gate or validator)
    :param rule: the rule a refusal rests on, named in prompts that have a place for it
    """
    text = TEXTS[reason]
    hotline = HOTLINE if text.signal == Signal.REFUSE else None
    named = rule or RULE_UNNAMED
    zh, en = text.zh.replace("{rule}", named), text.en.replace("{rule}", named)
    return Indication(text.signal, str(reason), zh, en, hotline, open_gate)
