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
    """Error codes of App A; card status words are reported as ``-(SW)`` (see :func:`for_sw`)."""

    OK = 0
    WRONG_CARD_TYPE = -1
    NO_CARD = -2
    CARD_NOT_POWERED = -3
    CARD_NOT_ANSWERING = -4
    LIBRARY_LOAD = -5
    READER_CONNECTION = -11
    NOT_CONNECTED = -12
    COMMAND_NOT_SUPPORTED = -13
    BAD_PARAMETER = -14
    CHECKSUM = -15
    BAD_CARD_ID_FORMAT = -20
    NOT_GENUINE = -21
    INPUT_MISMATCH = -22
    ILLEGAL_INPUT = -23
    PSAM_KEY_LEVEL = -24
    PIN_CANCELLED = -31
    PIN_TIMEOUT = -32
    PIN_LENGTH = -33
    PIN_CONFIRM_MISMATCH = -34
    CRYPTO_ILLEGAL_CHARS = -41
    CRYPTO_BAD_LENGTH = -42
    PIN_WRONG = -51
    PIN_LOCKED = -52
    NO_PSAM = -2201
    PSAM_ALGORITHM_MISSING = -2202
    PSAM_RKSSSE_MISSING = -2203
    HSM_NOT_NEEDED = -2204


MESSAGES: dict[int, tuple[str, str]] = {
    NationalCode.OK: ("成功", "success"),
    NationalCode.WRONG_CARD_TYPE: ("卡类型不对", "wrong card type"),
    NationalCode.NO_CARD: ("无卡", "no card"),
    NationalCode.CARD_NOT_POWERED: ("有卡未上电", "card present, not powered"),
    NationalCode.CARD_NOT_ANSWERING: ("卡无应答", "card not answering"),
    NationalCode.LIBRARY_LOAD: ("加载动态库失败", "library load error"),
    NationalCode.READER_CONNECTION: ("读卡器连接错误", "reader connection error"),
    NationalCode.NOT_CONNECTED: ("未建立连接", "reader not connected"),
    NationalCode.COMMAND_NOT_SUPPORTED: ("不支持该命令", "command not supported"),
    NationalCode.BAD_PARAMETER: ("命令参数错", "bad parameter"),
    NationalCode.CHECKSUM: ("信息校验和出错", "checksum error"),
    NationalCode.BAD_CARD_ID_FORMAT: ("卡识别码格式错", "bad card identification code format"),
    NationalCode.NOT_GENUINE: ("内部认证失败", "internal authentication failed: card not genuine"),
    NationalCode.INPUT_MISMATCH: ("传入数据与卡内不符", "input data does not match the card"),
    NationalCode.ILLEGAL_INPUT: ("传入数据不合法", "illegal input data"),
    NationalCode.PSAM_KEY_LEVEL: ("PSAM卡密钥级别不够", "PSAM key level insufficient"),
    NationalCode.PIN_CANCELLED: ("用户取消密码输入", "PIN entry cancelled"),
    NationalCode.PIN_TIMEOUT: ("密码输入操作超时", "PIN entry timed out"),
    NationalCode.PIN_LENGTH: ("输入密码长度不够", "wrong PIN length"),
    NationalCode.PIN_CONFIRM_MISMATCH: ("两次输入密码不一致", "the two new PINs differ"),
    NationalCode.CRYPTO_ILLEGAL_CHARS: ("加密数据含非法字符", "illegal characters in crypto data"),
    NationalCode.CRYPTO_BAD_LENGTH: ("加密数据长度不正确", "wrong crypto data length"),
    NationalCode.PIN_WRONG: ("PIN校验失败", "wrong PIN"),
    NationalCode.PIN_LOCKED: ("PIN锁定", "PIN locked"),
    NationalCode.NO_PSAM: ("无PSAM卡", "no PSAM"),
    NationalCode.PSAM_ALGORITHM_MISSING: (
        "PSAM卡不支持该算法",
        "PSAM does not support the card's algorithm",
    ),
    NationalCode.PSAM_RKSSSE_MISSING: ("PSAM卡无RKSSSE密钥", "PSAM holds no RKSSSE key"),
    NationalCode.HSM_NOT_NEEDED: ("无需加密机认证", "HSM authentication not needed"),
}


def for_sw(sw: int) -> int:
    """The national code of a card status word: ``-(SW1SW2 as unsigned 16-bit)``.

    :param sw: the status word, e.g. ``0x6A81`` → ``-27265``
    """
    return -(sw & 0xFFFF)


def message(code: int) -> str:
    """A short Chinese/English message for a national code; status-word codes name the SW.

    :param code: a national error code
    """
    if code in MESSAGES:
        zh, en = MESSAGES[code]
        return f"{zh} / {en}"
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
