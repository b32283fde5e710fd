"""The national terminal interface (人社信息函〔2016〕38号): ``iReadCardBas`` and its error codes.

Spec doc §4.3 (output, exact order) and §4.7 (App A error codes). Each of the 11 fields is
followed by ``|``, so the string ends with ``|``.
"""

from __future__ import annotations

from enum import IntEnum

from apdu.records import CardContents
from apdu.sw import describe

NO_TERMINAL_NUMBER = "000000000000"  # 终端机编号 when no PSAM supplies one (§4.3 field 10)
FIELD_SEPARATOR = "|"


class NationalCode(IntEnum):
    """Error codes of App A, each with its message in Chinese and English; card status words
    are reported as ``-(SW)`` (see :func:`for_sw`, :func:`message`)."""

    zh: str
    en: str

    def __new__(cls, value: int, zh: str, en: str) -> NationalCode:
        """A member: its code, then its Chinese and English message (App A)."""
        member = int.__new__(cls, value)
        member._value_ = value
        member.zh, member.en = zh, en
        return member

    OK = 0, "成功", "success"
    WRONG_CARD_TYPE = -1, "卡类型不对", "wrong card type"
    NO_CARD = -2, "无卡", "no card"
    CARD_NOT_POWERED = -3, "有卡未上电", "card present, not powered"
    CARD_NOT_ANSWERING = -4, "卡无应答", "card not answering"
    LIBRARY_LOAD = -5, "加载动态库失败", "library load error"
    READER_CONNECTION = -11, "读卡器连接错误", "reader connection error"
    NOT_CONNECTED = -12, "未建立连接", "reader not connected"
    COMMAND_NOT_SUPPORTED = -13, "不支持该命令", "command not supported"
    BAD_PARAMETER = -14, "命令参数错", "bad parameter"
    CHECKSUM = -15, "信息校验和出错", "checksum error"
    BAD_CARD_ID_FORMAT = -20, "卡识别码格式错", "bad card identification code format"
    NOT_GENUINE = -21, "内部认证失败", "internal authentication failed: card not genuine"
    INPUT_MISMATCH = -22, "传入数据与卡内不符", "input data does not match the card"
    ILLEGAL_INPUT = -23, "传入数据不合法", "illegal input data"
    PSAM_KEY_LEVEL = -24, "PSAM卡密钥级别不够", "PSAM key level insufficient"
    PIN_CANCELLED = -31, "用户取消密码输入", "PIN entry cancelled"
    PIN_TIMEOUT = -32, "密码输入操作超时", "PIN entry timed out"
    PIN_LENGTH = -33, "输入密码长度不够", "wrong PIN length"
    PIN_CONFIRM_MISMATCH = -34, "两次输入密码不一致", "the two new PINs differ"
    CRYPTO_ILLEGAL_CHARS = -41, "加密数据含非法字符", "illegal characters in crypto data"
    CRYPTO_BAD_LENGTH = -42, "加密数据长度不正确", "wrong crypto data length"
    PIN_WRONG = -51, "PIN校验失败", "wrong PIN"
    PIN_LOCKED = -52, "PIN锁定", "PIN locked"
    NO_PSAM = -2201, "无PSAM卡", "no PSAM"
    PSAM_ALGORITHM_MISSING = (
        -2202,
        "PSAM卡不支持该算法",
        "PSAM does not support the card's algorithm",
    )
    PSAM_RKSSSE_MISSING = -2203, "PSAM卡无RKSSSE密钥", "PSAM holds no RKSSSE key"
    HSM_NOT_NEEDED = -2204, "无需加密机认证", "HSM authentication not needed"


def for_sw(sw: int) -> int:
    """The national code of a card status word: ``-(SW1SW2 as unsigned 16-bit)``.

    :param sw: the status word, e.g. ``0x6A81`` → ``-27265``
    """
    return -(sw & 0xFFFF)


def message(code: int) -> str:
    """A short Chinese/English message for a national code; status-word codes name the SW.

    :param code: a national error code
    """
    for known in NationalCode:
        if known == code:
            return f"{known.zh} / {known.en}"
    if -0xFFFF <= code <= -0x6000:
        sw = -code
        return f"卡返回 {sw:04X} / card status {sw:04X}: {describe(sw)}"
    return "未知错误 / unknown error"


def ireadcardbas(
    contents: CardContents,
    *,
    terminal_number: str = NO_TERMINAL_NUMBER,
    device_number: str = "",
) -> str:
    """Format the ``iReadCardBas`` output string (§4.3), 11 fields each followed by ``|``.

    :param contents: what was read; EF06 must have been read
    :param terminal_number: 终端机编号 from the PSAM (12 digits), zeros without one
    :param device_number: 终端设备号, empty when the terminal has none
    :raises ValueError: when EF06 was not read, or the terminal number is not 12 digits
    """
    if contents.holder is None:
        raise ValueError("iReadCardBas needs the holder data (EF06), which was not read")
    # str.isdigit() alone accepts "４", "²" and "٤"; the field is 12 ASCII digits (§4.3 field 10)
    if len(terminal_number) != 12 or not (terminal_number.isascii() and terminal_number.isdigit()):
        raise ValueError("the terminal number must be 12 digits")
    issuer, holder = contents.issuer, contents.holder
    fields = [
        issuer.region_code,
        holder.ssn or "",
        issuer.card_number or "",
        issuer.card_id.hex().upper(),
        holder.name or "",
        contents.historical.hex().upper(),
        issuer.spec_version or "",
        issuer.issue_date.strftime("%Y%m%d") if issuer.issue_date else "",
        issuer.expiry_date.strftime("%Y%m%d") if issuer.expiry_date else "",
        terminal_number,
        device_number,
    ]
    for value in fields:
        if FIELD_SEPARATOR in value:
            raise ValueError("a card field contains the separator '|'")
    return "".join(value + FIELD_SEPARATOR for value in fields)
