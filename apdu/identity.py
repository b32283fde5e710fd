"""Identity numbers and code tables of the social security card, and masks for logging them.

* the card number (卡号, EF05 tag ``07``) and its check character [S1 附录A];
* the citizen identity number of GB 11643-1999 and its check character (ISO 7064 MOD 11-2);
* the social security number (社会保障号码, EF06 tag ``08``): which kind of number it is and
  what can be read from it with certainty;
* the code tables for sex (GB 2261.1), card category (EF05 tag ``02``) and ethnicity
  (GB/T 3304-1991, EF06 tag ``0B``);
* the masking helpers every log line, exception message and metric label must use for
  personal fields.

Everything here is pure: no I/O, no clock. Validators return ``False`` and the classifier
returns :attr:`SsnKind.UNKNOWN` rather than raising: a number read from a card is accepted and
flagged, never rejected. Inputs are expected without the card's ``00``/``FF`` padding.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import overload

__all__ = [
    "CATEGORY_NAMES",
    "ETHNICITY_NAMES",
    "SEX_NAMES",
    "SsnInfo",
    "SsnKind",
    "card_number_check_char",
    "card_number_valid",
    "classify_ssn",
    "gb11643_check_char",
    "gb11643_valid",
    "mask_card_number",
    "mask_name",
    "mask_ssn",
]

# --- card number (卡号), spec §2.4 tag 07, S1 附录A ------------------------------------------

CARD_NUMBER_LEN = 9
CARD_NUMBER_BODY_LEN = 8
# S1 附录A: digits count at face value, A = 10 … Z = 35 (the worked example uses D = 13).
_CARD_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CARD_VALUES: Mapping[str, int] = MappingProxyType({c: i for i, c in enumerate(_CARD_ALPHABET)})
_CARD_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# --- GB 11643-1999 citizen identity number ---------------------------------------------------

GB11643_LEN = 18
GB11643_BODY_LEN = 17
_DIGITS = frozenset("0123456789")
# GB 11643-1999 §7.2: Wi = 2^(17-i) mod 11 for i = 1 … 17.
_GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Indexed by the weighted sum mod 11.
_GB11643_CHECK = "10X98765432"

LEGACY_ID_LEN = 15
# GB/T 2260 province-level codes of the mainland (71 Taiwan is not issued on the mainland).
_MAINLAND_PROVINCES = frozenset(
    f"{n:02d}"
    for lo, hi in ((11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65))
    for n in range(lo, hi + 1)
)
# Residence permits for residents of Hong Kong (81), Macao (82) and Taiwan (83): GB 11643 layout.
_HMT_PREFIXES = frozenset({"81", "82", "83"})
# Foreign permanent-residence numbers of the 2017/2023 formats are 18 chars beginning with 9.
_FOREIGN_18_PREFIX = "9"
# A passport number, or an SSN assigned from one: ICAO 9303 allows up to 9 characters in the
# MRZ and longer numbers in the overflow field; accept a generous range.
_PASSPORT_MIN_LEN = 5
_PASSPORT_MAX_LEN = 20
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# --- code tables ------------------------------------------------------------------------------

SEX_NAMES: Mapping[str, str] = MappingProxyType(
    {"0": "未知", "1": "男", "2": "女", "9": "未说明"}  # GB/T 2261.1-2003
)
"""Sex codes of GB/T 2261.1 (EF06 tag ``0A``), code → Chinese name."""

SEX_MALE = "1"
SEX_FEMALE = "2"

CATEGORY_NAMES: Mapping[str, str] = MappingProxyType(
    {"1": "学龄前", "2": "学生", "3": "成年人", "4": "老年人"}  # S1 表11
)
"""Card categories (卡的类别, EF05 tag ``02``), code → Chinese name."""

ETHNICITY_NAMES: Mapping[str, str] = MappingProxyType(
    {
        # GB/T 3304-1991, in the standard's order.
        "01": "汉族",
        "02": "蒙古族",
        "03": "回族",
        "04": "藏族",
        "05": "维吾尔族",
        "06": "苗族",
        "07": "彝族",
        "08": "壮族",
        "09": "布依族",
        "10": "朝鲜族",
        "11": "满族",
        "12": "侗族",
        "13": "瑶族",
        "14": "白族",
        "15": "土家族",
        "16": "哈尼族",
        "17": "哈萨克族",
        "18": "傣族",
        "19": "黎族",
        "20": "傈僳族",
        "21": "佤族",
        "22": "畲族",
        "23": "高山族",
        "24": "拉祜族",
        "25": "水族",
        "26": "东乡族",
        "27": "纳西族",
        "28": "景颇族",
        "29": "柯尔克孜族",
        "30": "土族",
        "31": "达斡尔族",
        "32": "仫佬族",
        "33": "羌族",
        "34": "布朗族",
        "35": "撒拉族",
        "36": "毛南族",
        "37": "仡佬族",
        "38": "锡伯族",
        "39": "阿昌族",
        "40": "普米族",
        "41": "塔吉克族",
        "42": "怒族",
        "43": "乌孜别克族",
        "44": "俄罗斯族",
        "45": "鄂温克族",
        "46": "德昂族",
        "47": "保安族",
        "48": "裕固族",
        "49": "京族",
        "50": "塔塔尔族",
        "51": "独龙族",
        "52": "鄂伦春族",
        "53": "赫哲族",
        "54": "门巴族",
        "55": "珞巴族",
        "56": "基诺族",
        "97": "其他",
        "98": "外国血统中国籍人士",
        # spec §2.5 tag 0B (S1 表14): the card spec also allows 99 "other".
        "99": "其他",
    }
)
"""Ethnicity codes (民族, EF06 tag ``0B``), two-digit code → Chinese name.

Unknown codes are absent: look them up with ``.get()`` and keep the raw code.
"""


def _is_ascii_digits(s: str) -> bool:
    # str.isdigit() alone accepts non-ASCII digits such as "٣" or "３".
    return s.isascii() and s.isdigit()


# --- card number ------------------------------------------------------------------------------


def card_number_check_char(body: str) -> str:
    """Return the check character of a card number body (卡号校验位, S1 附录A).

    C9 = 11 − (Σ Ci·Wi mod 11) with weights ``3 7 9 10 5 8 4 2``; digits count at face value
    and capital letters as A = 10 … Z = 35; a result of 10 is written ``X`` and 11 is ``0``.

    :param body: the first 8 characters of the card number, digits and capital letters
    :raises ValueError: if ``body`` is not 8 characters of ``0-9`` and ``A-Z``
    """
    if len(body) != CARD_NUMBER_BODY_LEN or not all(c in _CARD_VALUES for c in body):
        raise ValueError(
            f"card number body must be {CARD_NUMBER_BODY_LEN} characters of 0-9 and A-Z, "
            f"got {len(body)} characters"  # the body itself is personal data: never echo it
        )
    total = sum(_CARD_VALUES[c] * w for c, w in zip(body, _CARD_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 10:
        return "X"
    if check == 11:
        return "0"
    return str(check)


def card_number_valid(number: str) -> bool:
    """Tell whether a 9-character card number (卡号) carries the right check character.

    Never raises: anything that is not 8 characters of ``0-9``/``A-Z`` followed by the
    matching check character gives ``False``.

    :param number: the card number as read from EF05 tag ``07``
    :raises: nothing
    """
    if not isinstance(number, str) or len(number) != CARD_NUMBER_LEN:
        return False
    body, check = number[:CARD_NUMBER_BODY_LEN], number[CARD_NUMBER_BODY_LEN]
    try:
        return card_number_check_char(body) == check
    except ValueError:
        return False


# --- GB 11643-1999 ----------------------------------------------------------------------------


def gb11643_check_char(first17: str) -> str:
    """Return the check character of a GB 11643-1999 citizen identity number.

    The weighted sum of the first 17 digits (weights ``7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2``)
    mod 11 indexes ``"10X98765432"``.

    :param first17: the first 17 characters, ASCII digits only
    :raises ValueError: if ``first17`` is not 17 ASCII digits
    """
    if len(first17) != GB11643_BODY_LEN or not _is_ascii_digits(first17):
        raise ValueError(
            f"identity number body must be {GB11643_BODY_LEN} ASCII digits, "
            f"got {len(first17)} characters"  # personal data: never echo it
        )
    total = sum(int(c) * w for c, w in zip(first17, _GB11643_WEIGHTS, strict=True))
    return _GB11643_CHECK[total % 11]


def gb11643_valid(number: str) -> bool:
    """Tell whether an 18-character number carries the right GB 11643-1999 check character.

    Never raises. The check character must be ``0``-``9`` or a capital ``X``; a lower-case
    ``x`` is not valid.

    :param number: 17 digits followed by the check character
    :raises: nothing
    """
    if not isinstance(number, str) or len(number) != GB11643_LEN:
        return False
    try:
        return gb11643_check_char(number[:GB11643_BODY_LEN]) == number[GB11643_BODY_LEN]
    except ValueError:
        return False


# --- social security number -------------------------------------------------------------------


class SsnKind(StrEnum):
    """The kind of number found in the SSN field (社会保障号码, EF06 tag ``08``)."""

    MAINLAND = "mainland"  # 18 characters, GB 11643, beginning with a mainland province-level code
    # 18 characters, GB 11643, beginning 81 (Hong Kong), 82 (Macao) or 83 (Taiwan)
    HK_MACAO_TAIWAN = "hk_macao_taiwan"
    # a foreign permanent-residence number (18 chars beginning 9, or 3 letters + 12 digits),
    # or a passport-like number
    FOREIGN = "foreign"
    UNKNOWN = "unknown"  # anything else, including legacy 15-digit mainland numbers


@dataclass(frozen=True, slots=True)
class SsnInfo:
    """What can be told with certainty about a social security number.

    :param kind: the kind of number
    :param check_valid: the GB 11643 check result for 18-character numbers of the kinds that
        use it, ``None`` where no check applies
    :param birth_date: the birth date written in the number, ``None`` when it is not read from
        this kind or is not a real calendar date
    :param sex: the GB 2261.1 code (``"1"`` male, ``"2"`` female), ``None`` when not derived
    """

    kind: SsnKind
    check_valid: bool | None = None
    birth_date: datetime.date | None = None
    sex: str | None = None


def _date_or_none(year: str, month: str, day: str) -> datetime.date | None:
    try:
        return datetime.date(int(year), int(month), int(day))
    except ValueError:  # month 13, 30 February, year 0000
        return None


def _sex_from_digit(digit: str) -> str:
    # GB 11643 §6.4 (and the 15-digit GB 11643-1989 layout): odd for men, even for women.
    return SEX_MALE if int(digit) % 2 else SEX_FEMALE


def _is_passport_like(s: str) -> bool:
    return (
        _PASSPORT_MIN_LEN <= len(s) <= _PASSPORT_MAX_LEN
        and all(c in _CARD_VALUES for c in s)
        and any(c in _UPPER for c in s)
        and any(c in _DIGITS for c in s)
    )


def _classify_18(ssn: str) -> SsnInfo:
    # 17 digits and any 18th character: a wrong or lower-case check character is flagged by
    # check_valid rather than hiding the number's kind.
    prefix = ssn[:2]
    if prefix in _MAINLAND_PROVINCES or prefix in _HMT_PREFIXES:
        return SsnInfo(
            SsnKind.MAINLAND if prefix in _MAINLAND_PROVINCES else SsnKind.HK_MACAO_TAIWAN,
            check_valid=gb11643_valid(ssn),
            birth_date=_date_or_none(ssn[6:10], ssn[10:12], ssn[12:14]),
            sex=_sex_from_digit(ssn[16]),
        )
    if ssn.startswith(_FOREIGN_18_PREFIX):
        # The layout of the rest is not settled across issues: check it, derive nothing.
        return SsnInfo(SsnKind.FOREIGN, check_valid=gb11643_valid(ssn))
    return SsnInfo(SsnKind.UNKNOWN)


def _classify_15(ssn: str) -> SsnInfo | None:
    # Old foreign permanent-residence number: ISO 3166 alpha-3 nationality + 12 digits.
    if all(c in _UPPER for c in ssn[:3]) and _is_ascii_digits(ssn[3:]):
        return SsnInfo(SsnKind.FOREIGN)
    # Legacy mainland number (GB 11643-1989): 6 address + YYMMDD + 3 sequence, no check char.
    if _is_ascii_digits(ssn) and ssn[:2] in _MAINLAND_PROVINCES:
        return SsnInfo(
            SsnKind.UNKNOWN,
            birth_date=_date_or_none("19" + ssn[6:8], ssn[8:10], ssn[10:12]),
            sex=_sex_from_digit(ssn[14]),
        )
    return None


def classify_ssn(ssn: str) -> SsnInfo:
    """Classify a social security number and derive what it states with certainty.

    Never raises; any string gets an answer, numbers of unknown shape come back as
    :attr:`SsnKind.UNKNOWN`. For MAINLAND and HK_MACAO_TAIWAN numbers the birth date comes from
    characters 7–14 and the sex from character 17; 18-character FOREIGN numbers get the
    GB 11643 check but nothing else is derived from them. A 15-digit legacy mainland number
    (GB 11643-1989) is UNKNOWN but gives birth date 19YYMMDD (characters 7–12) and sex (last
    digit).

    :param ssn: the number as read from EF06 tag ``08``, padding removed
    :raises: nothing
    """
    if not isinstance(ssn, str):
        return SsnInfo(SsnKind.UNKNOWN)
    if len(ssn) == GB11643_LEN and _is_ascii_digits(ssn[:GB11643_BODY_LEN]):
        return _classify_18(ssn)
    if len(ssn) == LEGACY_ID_LEN and (info := _classify_15(ssn)) is not None:
        return info
    if _is_passport_like(ssn):
        return SsnInfo(SsnKind.FOREIGN)
    return SsnInfo(SsnKind.UNKNOWN)


# --- masking ----------------------------------------------------------------------------------

_MASK = "*"
_SSN_KEEP_HEAD = 4
_SSN_KEEP_TAIL = 4
_SSN_SHORT_KEEP_TAIL = 2
_CARD_KEEP_TAIL = 2


@overload
def mask_ssn(s: str) -> str: ...
@overload
def mask_ssn(s: None) -> None: ...
def mask_ssn(s: str | None) -> str | None:
    """Mask a social security number for logs: first 4 and last 4 kept, stars between.

    ``440106199003071234`` → ``4401**********1234``. A string of 8 characters or fewer keeps
    only its last 2 (``AB123456`` → ``******56``), and one of 2 or fewer is all stars. The
    length is kept; ``None`` and ``""`` come back unchanged.

    :param s: the number, or ``None``
    :raises: nothing
    """
    if not s:
        return s
    n = len(s)
    if n > _SSN_KEEP_HEAD + _SSN_KEEP_TAIL:
        return (
            s[:_SSN_KEEP_HEAD] + _MASK * (n - _SSN_KEEP_HEAD - _SSN_KEEP_TAIL) + s[-_SSN_KEEP_TAIL:]
        )
    if n > _SSN_SHORT_KEEP_TAIL:
        return _MASK * (n - _SSN_SHORT_KEEP_TAIL) + s[-_SSN_SHORT_KEEP_TAIL:]
    return _MASK * n  # showing "the last 2" of a 2-char value would show all of it


@overload
def mask_name(s: str) -> str: ...
@overload
def mask_name(s: None) -> None: ...
def mask_name(s: str | None) -> str | None:
    """Mask a holder's name for logs: the first character, then one star per other character.

    ``张三丰`` → ``张**``; ``ALICE SMITH`` → ``A**********``. ``None`` and ``""`` come back
    unchanged.

    :param s: the name (Chinese, or a passport name in Latin letters), or ``None``
    :raises: nothing
    """
    if not s:
        return s
    return s[0] + _MASK * (len(s) - 1)


@overload
def mask_card_number(s: str) -> str: ...
@overload
def mask_card_number(s: None) -> None: ...
def mask_card_number(s: str | None) -> str | None:
    """Mask a card number for logs: first character and last 2 kept, stars between.

    ``D2143569X`` → ``D******9X``. A string of 3 characters or fewer is all stars, since the
    rule would otherwise show all of it. ``None`` and ``""`` come back unchanged.

    :param s: the card number, or ``None``
    :raises: nothing
    """
    if not s:
        return s
    n = len(s)
    if n <= 1 + _CARD_KEEP_TAIL:
        return _MASK * n
    return s[0] + _MASK * (n - 1 - _CARD_KEEP_TAIL) + s[-_CARD_KEEP_TAIL:]
