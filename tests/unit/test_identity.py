"""Unit tests for apdu.identity: check characters, SSN classification, code tables, masks.

Every number here is fictional. The published examples are named with their source; the others
were invented with :func:`synthetic_identity_number` and :func:`synthetic_card_number` below and
their check characters worked out by hand (sums in the comments).
"""

from __future__ import annotations

import datetime
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.identity import (
    CATEGORY_NAMES,
    ETHNICITY_NAMES,
    SEX_NAMES,
    SsnInfo,
    SsnKind,
    card_number_check_char,
    card_number_valid,
    classify_ssn,
    gb11643_check_char,
    gb11643_valid,
    mask_card_number,
    mask_name,
    mask_ssn,
)

CARD_ALPHABET = string.digits + string.ascii_uppercase


def synthetic_card_number(body: str) -> str:
    """Make a fictional card number from an invented 8-character body.

    Bodies are made up (a letter, then digits or letters chosen to hit every kind of check
    result) and belong to no card. The check character is worked out independently of the code
    under test: ``int(c, 36)`` gives 0–9 and A = 10 … Z = 35, weights ``3 7 9 10 5 8 4 2``,
    ``11 − (sum mod 11)`` with 10 → ``X`` and 11 → ``0`` (S1 附录A).

    :param body: 8 characters of 0-9 and A-Z
    :raises ValueError: if a character is not base-36
    """
    total = sum(int(c, 36) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    check = 11 - total % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def synthetic_identity_number(region: str, birth: str, sequence: str) -> str:
    """Make a fictional 18-digit identity number: region + birth date + sequence + check.

    Mainland numbers use a province-level code with ``0000`` for the county (``440000``), a
    code no person's number carries, so they cannot be anyone's number. Residence permits for
    Hong Kong, Macao and Taiwan use their real codes ``810000``/``820000``/``830000`` and
    foreign numbers begin ``9``; the birth dates and sequences of those are invented, so any
    match with a real number is chance. The check character uses the ISO 7064 MOD 11-2 form
    (weights ``2^(17-i) mod 11``, check = ``(12 − sum mod 11) mod 11``, 10 → ``X``), not the
    lookup string of the code under test.

    :param region: 6-digit address code
    :param birth: birth date as ``YYYYMMDD`` (need not be a real date)
    :param sequence: 3-digit sequence code; odd last digit for a man, even for a woman
    :raises ValueError: if a character is not a digit
    """
    body = region + birth + sequence
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(body))
    check = (12 - total % 11) % 11
    return body + ("X" if check == 10 else str(check))


# --- card number ----------------------------------------------------------------------------

# (body, check char). Sums Σ Ci·Wi worked by hand, then 11 − (sum mod 11).
CARD_NUMBERS = [
    ("D2143569", "X"),  # S1 附录A worked example: 199 ≡ 1 → 10 → X
    ("X0000001", "9"),  # S4 interface example X00000019: 33·3 + 1·2 = 101 ≡ 2 → 9
    ("A0000000", "3"),  # 10·3 = 30 ≡ 8 → 3
    ("B0000000", "0"),  # 11·3 = 33 ≡ 0 → 11 → 0
    ("F0000000", "X"),  # 15·3 = 45 ≡ 1 → 10 → X
    ("T0000000", "1"),  # 29·3 = 87 ≡ 10 → 1
    ("Z9999999", "7"),  # 35·3 + 9·45 = 510 ≡ 4 → 7
    ("K1234567", "7"),  # 60+7+18+30+20+40+24+14 = 213 ≡ 4 → 7
    ("M00A00B1", "8"),  # letters inside the body: 66 + 10·10 + 11·4 + 2 = 212 ≡ 3 → 8
    ("AB12CD34", "X"),  # 30+77+9+20+60+104+12+8 = 320 ≡ 1 → X
    ("P3300001", "7"),  # 75+21+27+2 = 125 ≡ 4 → 7
    ("C0000005", "9"),  # 36 + 10 = 46 ≡ 2 → 9
    ("E7654321", "4"),  # 42+49+54+50+20+24+8+2 = 249 ≡ 7 → 4
    ("Y0000010", "4"),  # 34·3 + 1·4 = 106 ≡ 7 → 4
    ("12345678", "8"),  # a body of digits only: 3+14+27+40+25+48+28+16 = 201 ≡ 3 → 8
]


@pytest.mark.parametrize(("body", "check"), CARD_NUMBERS)
def test_card_number_check_char_matches_hand_worked_table(body: str, check: str) -> None:
    assert card_number_check_char(body) == check
    assert card_number_valid(body + check)


@pytest.mark.parametrize(("body", "check"), CARD_NUMBERS[2:])
def test_card_number_table_was_made_by_the_documented_recipe(body: str, check: str) -> None:
    assert synthetic_card_number(body) == body + check


def test_card_number_spec_examples() -> None:
    assert card_number_valid("D2143569X")  # S1 附录A
    assert card_number_valid("X00000019")  # S4 §10.4 interface example


@pytest.mark.parametrize(
    "body",
    ["", "D214356", "D21435690", "d2143569", "D214356 ", "D214-569", "D２143569", "D214356é"],
)
def test_card_number_check_char_rejects_malformed_body(body: str) -> None:
    with pytest.raises(ValueError, match="8 characters"):
        card_number_check_char(body)


def test_card_number_check_char_error_does_not_echo_the_body() -> None:
    with pytest.raises(ValueError) as excinfo:
        card_number_check_char("D214356")
    assert "D214356" not in str(excinfo.value)


@pytest.mark.parametrize(
    "number",
    [
        "",
        "D2143569",  # body only
        "D2143569X0",  # one too many
        "D21435690",  # wrong check char
        "D2143569x",  # lower-case X
        "d2143569X",
        "D2143569 ",
        "X00000018",
        "B00000001",
        "D２143569X",  # full-width digit
        "\x00" * 9,
    ],
)
def test_card_number_valid_is_false_for_malformed_or_wrong(number: str) -> None:
    assert card_number_valid(number) is False


def test_card_number_valid_is_false_for_non_str() -> None:
    assert card_number_valid(None) is False  # type: ignore[arg-type]
    assert card_number_valid(b"D2143569X") is False  # type: ignore[arg-type]


card_bodies = st.text(alphabet=CARD_ALPHABET, min_size=8, max_size=8)


@given(card_bodies)
def test_every_card_body_gets_a_check_char_that_validates(body: str) -> None:
    check = card_number_check_char(body)
    assert check in "0123456789X"
    assert card_number_valid(body + check)


@given(card_bodies, st.integers(0, 8), st.sampled_from(CARD_ALPHABET))
def test_changing_one_card_character_breaks_it_unless_values_agree_mod_11(
    body: str, pos: int, new: str
) -> None:
    number = body + card_number_check_char(body)
    mutated = number[:pos] + new + number[pos + 1 :]
    if mutated == number:
        return
    if pos == 8:
        # The check character is a function of the body: any other one is wrong.
        assert not card_number_valid(mutated)
    else:
        # The weights are all prime to 11, so a change is caught exactly when the two
        # characters' values differ mod 11 (0/B/M/X are one class, 1/C/N/Y another, …).
        same_class = int(number[pos], 36) % 11 == int(new, 36) % 11
        assert card_number_valid(mutated) == same_class


def test_card_number_check_cannot_tell_characters_eleven_apart() -> None:
    # A limit of S1 附录A, not of the code: "0" (0), "B" (11) and "M" (22) weigh the same.
    assert card_number_valid("B00000000")
    assert card_number_valid("M00000000")
    assert card_number_valid("000000000")


@given(st.text(max_size=12))
def test_card_number_valid_never_raises(text: str) -> None:
    assert card_number_valid(text) in (True, False)


# --- GB 11643-1999 ----------------------------------------------------------------------------

# Weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2; sum mod 11 indexes "10X98765432".
IDENTITY_NUMBERS = [
    "11010519491231002X",  # GB 11643-1999 example: sum 167 ≡ 2 → X
    "440524188001010014",  # GB 11643-1999 example: sum 195 ≡ 8 → 4
    "110000199001010013",  # 97 ≡ 9 → 3
    "440000199003071238",  # 213 ≡ 4 → 8
    "330000200002290041",  # leap day: 143 ≡ 0 → 1
    "650000194510019991",  # 275 ≡ 0 → 1
    "310000201012310027",  # 104 ≡ 5 → 7
    "51000019991231010X",  # 200 ≡ 2 → X
    "210000198008080806",  # 226 ≡ 6 → 6
    "420000197601010010",  # 133 ≡ 1 → 0
    "130000198811111106",  # 160 ≡ 6 → 6
    "810000198506151234",  # Hong Kong permit: 250 ≡ 8 → 4
    "820000200109110043",  # Macao permit: 185 ≡ 9 → 3
    "830000200002290023",  # Taiwan permit: 174 ≡ 9 → 3
    "931840198001011239",  # foreign permanent residence: 267 ≡ 3 → 9
    "110000199002300012",  # 30 February: 131 ≡ 10 → 2
]


@pytest.mark.parametrize("number", IDENTITY_NUMBERS)
def test_gb11643_check_char_matches_hand_worked_table(number: str) -> None:
    assert gb11643_check_char(number[:17]) == number[17]
    assert gb11643_valid(number)


@pytest.mark.parametrize("number", IDENTITY_NUMBERS[2:])
def test_identity_table_was_made_by_the_documented_recipe(number: str) -> None:
    assert synthetic_identity_number(number[:6], number[6:14], number[14:17]) == number


@pytest.mark.parametrize(
    "first17",
    ["", "1101051949123100", "110105194912310021", "1101051949123100A", "１１01051949123100２"],
)
def test_gb11643_check_char_rejects_malformed(first17: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        gb11643_check_char(first17)


@pytest.mark.parametrize(
    "number",
    [
        "",
        "11010519491231002",
        "11010519491231002X0",
        "11010519491231002x",  # lower-case x is not the check character
        "110105194912310021",
        "440524188001010015",
        "A10105194912310020",
        "１１0105194912310020",
        "4405241880010100１4",
    ],
)
def test_gb11643_valid_is_false_for_malformed_or_wrong(number: str) -> None:
    assert gb11643_valid(number) is False


identity_bodies = st.text(alphabet=string.digits, min_size=17, max_size=17)


@given(identity_bodies)
def test_every_identity_body_gets_a_check_char_that_validates(body: str) -> None:
    check = gb11643_check_char(body)
    assert check in "0123456789X"
    assert gb11643_valid(body + check)
    assert synthetic_identity_number(body[:6], body[6:14], body[14:]) == body + check


@given(identity_bodies, st.integers(0, 17), st.sampled_from(string.digits + "X"))
def test_changing_one_identity_character_breaks_it(body: str, pos: int, new: str) -> None:
    number = body + gb11643_check_char(body)
    mutated = number[:pos] + new + number[pos + 1 :]
    if mutated != number:
        assert not gb11643_valid(mutated)


@given(st.text(max_size=20))
def test_gb11643_valid_never_raises(text: str) -> None:
    assert gb11643_valid(text) in (True, False)


# --- SSN classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ssn", "expected"),
    [
        (
            "440000199003071238",
            SsnInfo(SsnKind.MAINLAND, True, datetime.date(1990, 3, 7), "1"),
        ),
        (
            "330000200002290041",
            SsnInfo(SsnKind.MAINLAND, True, datetime.date(2000, 2, 29), "2"),
        ),
        (
            "11010519491231002X",
            SsnInfo(SsnKind.MAINLAND, True, datetime.date(1949, 12, 31), "2"),
        ),
        (
            "440524188001010014",
            SsnInfo(SsnKind.MAINLAND, True, datetime.date(1880, 1, 1), "1"),
        ),
        (  # wrong check character: flagged, still read
            "440000199003071230",
            SsnInfo(SsnKind.MAINLAND, False, datetime.date(1990, 3, 7), "1"),
        ),
        (  # lower-case x: flagged, still mainland
            "11010519491231002x",
            SsnInfo(SsnKind.MAINLAND, False, datetime.date(1949, 12, 31), "2"),
        ),
        (  # 30 February is no birth date, the sex digit still counts
            "110000199002300012",
            SsnInfo(SsnKind.MAINLAND, True, None, "1"),
        ),
        (
            "810000198506151234",
            SsnInfo(SsnKind.HK_MACAO_TAIWAN, True, datetime.date(1985, 6, 15), "1"),
        ),
        (
            "820000200109110043",
            SsnInfo(SsnKind.HK_MACAO_TAIWAN, True, datetime.date(2001, 9, 11), "2"),
        ),
        (
            "830000200002290023",
            SsnInfo(SsnKind.HK_MACAO_TAIWAN, True, datetime.date(2000, 2, 29), "2"),
        ),
        (
            "830000200002290024",
            SsnInfo(SsnKind.HK_MACAO_TAIWAN, False, datetime.date(2000, 2, 29), "2"),
        ),
        # Foreign permanent residence, 18 chars: checked, nothing derived.
        ("931840198001011239", SsnInfo(SsnKind.FOREIGN, True, None, None)),
        ("931840198001011230", SsnInfo(SsnKind.FOREIGN, False, None, None)),
        # Foreign permanent residence, old 15-char format: 3 letters + 12 digits.
        ("USA310000000001", SsnInfo(SsnKind.FOREIGN, None, None, None)),
        # Passport-like.
        ("E12345678", SsnInfo(SsnKind.FOREIGN, None, None, None)),
        ("G0000000A", SsnInfo(SsnKind.FOREIGN, None, None, None)),
        # Legacy 15-digit mainland number (GB 11643-1989): unknown, birth and sex derived.
        ("440000900307123", SsnInfo(SsnKind.UNKNOWN, None, datetime.date(1990, 3, 7), "1")),
        ("440000900307124", SsnInfo(SsnKind.UNKNOWN, None, datetime.date(1990, 3, 7), "2")),
        ("440000901307123", SsnInfo(SsnKind.UNKNOWN, None, None, "1")),  # month 13
        # Unknown shapes.
        ("", SsnInfo(SsnKind.UNKNOWN)),
        ("710000199003071234", SsnInfo(SsnKind.UNKNOWN)),  # 71 is not issued on the mainland
        ("000000199003071234", SsnInfo(SsnKind.UNKNOWN)),
        ("160000199003071234", SsnInfo(SsnKind.UNKNOWN)),  # a gap in the province codes
        ("810000000000000", SsnInfo(SsnKind.UNKNOWN)),  # 15 digits, not a mainland code
        ("1234567890", SsnInfo(SsnKind.UNKNOWN)),
        ("ALICE", SsnInfo(SsnKind.UNKNOWN)),
        ("e12345678", SsnInfo(SsnKind.UNKNOWN)),
        ("４４0000199003071238", SsnInfo(SsnKind.UNKNOWN)),  # full-width digits
        ("44000019900307123８", SsnInfo(SsnKind.MAINLAND, False, datetime.date(1990, 3, 7), "1")),
    ],
)
def test_classify_ssn(ssn: str, expected: SsnInfo) -> None:
    assert classify_ssn(ssn) == expected


@pytest.mark.parametrize(
    "prefix",
    ["11", "15", "21", "23", "31", "37", "41", "46", "50", "54", "61", "65"],
)
def test_every_mainland_province_range_edge_is_mainland(prefix: str) -> None:
    number = synthetic_identity_number(prefix + "0000", "19900101", "002")
    info = classify_ssn(number)
    assert info.kind is SsnKind.MAINLAND
    assert info.check_valid is True
    assert info.sex == "2"


@pytest.mark.parametrize("prefix", ["10", "16", "20", "24", "30", "38", "40", "47", "49", "55"])
def test_codes_beside_the_province_ranges_are_unknown(prefix: str) -> None:
    number = synthetic_identity_number(prefix + "0000", "19900101", "002")
    assert classify_ssn(number) == SsnInfo(SsnKind.UNKNOWN)


@pytest.mark.parametrize(
    ("digit", "sex"), [(str(d), "2" if d % 2 == 0 else "1") for d in range(10)]
)
def test_sex_comes_from_character_17(digit: str, sex: str) -> None:
    number = synthetic_identity_number("440000", "19900307", "12" + digit)
    assert classify_ssn(number).sex == sex
    assert SEX_NAMES[sex] == ("男" if sex == "1" else "女")


def test_ssn_kind_values_are_stable_strings() -> None:
    # StrEnum values leave the process (journal, API): they must not change by accident.
    assert [str(k) for k in SsnKind] == ["mainland", "hk_macao_taiwan", "foreign", "unknown"]


def test_ssn_info_is_frozen_and_slotted() -> None:
    info = classify_ssn("440000199003071238")
    with pytest.raises(AttributeError):
        info.sex = "2"  # type: ignore[misc]
    assert not hasattr(info, "__dict__")


def test_classify_ssn_of_non_str_is_unknown() -> None:
    assert classify_ssn(None) == SsnInfo(SsnKind.UNKNOWN)  # type: ignore[arg-type]


def _check_invariants(info: SsnInfo) -> None:
    assert isinstance(info.kind, SsnKind)
    assert info.sex in (None, "1", "2")
    if info.kind is SsnKind.FOREIGN:
        assert info.birth_date is None
        assert info.sex is None
    if info.kind is SsnKind.UNKNOWN:
        assert info.check_valid is None


@given(st.text())
def test_classify_ssn_never_raises_on_arbitrary_text(text: str) -> None:
    _check_invariants(classify_ssn(text))


@given(
    st.text(alphabet=string.digits, min_size=17, max_size=17),
    st.characters(),
)
def test_classify_ssn_never_raises_on_17_digits_and_any_last_char(body: str, last: str) -> None:
    _check_invariants(classify_ssn(body + last))


@given(st.text(alphabet=string.digits + "X", min_size=15, max_size=18))
def test_classify_ssn_never_raises_on_digit_strings(text: str) -> None:
    _check_invariants(classify_ssn(text))


# --- code tables ------------------------------------------------------------------------------


def test_sex_names_gb2261() -> None:
    assert dict(SEX_NAMES) == {"0": "未知", "1": "男", "2": "女", "9": "未说明"}


def test_category_names_ef05_tag_02() -> None:
    assert dict(CATEGORY_NAMES) == {"1": "学龄前", "2": "学生", "3": "成年人", "4": "老年人"}


def test_ethnicity_names_follow_gb3304_order() -> None:
    codes = list(ETHNICITY_NAMES)
    assert codes == [f"{n:02d}" for n in range(1, 57)] + ["97", "98", "99"]
    names = list(ETHNICITY_NAMES.values())
    assert names[:5] == ["汉族", "蒙古族", "回族", "藏族", "维吾尔族"]
    assert ETHNICITY_NAMES["10"] == "朝鲜族"
    assert ETHNICITY_NAMES["29"] == "柯尔克孜族"
    assert ETHNICITY_NAMES["36"] == "毛南族"
    assert ETHNICITY_NAMES["43"] == "乌孜别克族"
    assert ETHNICITY_NAMES["56"] == "基诺族"
    assert ETHNICITY_NAMES["98"] == "外国血统中国籍人士"
    assert len(set(names[:56])) == 56
    assert all(name.endswith("族") for name in names[:56])


def test_unknown_codes_are_absent_so_callers_keep_them_raw() -> None:
    assert ETHNICITY_NAMES.get("57", "57") == "57"
    assert "FF" not in ETHNICITY_NAMES
    assert "5" not in CATEGORY_NAMES
    assert "3" not in SEX_NAMES


def test_code_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        ETHNICITY_NAMES["57"] = "x"  # type: ignore[index]


# --- masking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("440106199003071234", "4401**********1234"),
        ("11010519491231002X", "1101**********002X"),
        ("USA310000000001", "USA3*******0001"),
        ("123456789", "1234*6789"),
        ("E1234567", "******67"),
        ("ABC", "*BC"),
        ("AB", "**"),
        ("A", "*"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_ssn(value: str | None, masked: str | None) -> None:
    assert mask_ssn(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("张三丰", "张**"),
        ("张三", "张*"),
        ("ALICE SMITH", "A**********"),
        ("欧阳", "欧*"),
        ("Z", "Z"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_name(value: str | None, masked: str | None) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("D2143569X", "D******9X"),
        ("X00000019", "X******19"),
        ("ABCD", "A*CD"),
        ("ABC", "***"),
        ("A", "*"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_card_number(value: str | None, masked: str | None) -> None:
    assert mask_card_number(value) == masked


@given(st.text())
def test_masks_keep_the_length_and_hide_the_middle(text: str) -> None:
    for mask in (mask_ssn, mask_name, mask_card_number):
        masked = mask(text)
        assert len(masked) == len(text)
    if len(text) > 8:
        assert set(mask_ssn(text)[4:-4]) == {"*"}
    if len(text) > 3:
        assert set(mask_card_number(text)[1:-2]) == {"*"}
    if len(text) > 1:
        assert set(mask_name(text)[1:]) == {"*"}
