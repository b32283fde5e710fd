"""Status-word catalogue of the social security card (spec doc §5; S3-P5 §5.4 表5).

Unknown status words are described by their ISO 7816-4 family and kept raw; a lookup never fails.
"""

from __future__ import annotations

from enum import IntEnum


class Sw(IntEnum):
    """Status words with a fixed meaning on the SSC and its PSAM."""

    OK = 0x9000
    MEMORY_ERROR = 0x6581
    WRONG_LENGTH = 0x6700
    COMMAND_NOT_ACCEPTED = 0x6901
    INCOMPATIBLE_FILE_STRUCTURE = 0x6981
    SECURITY_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_INVALID = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    NO_CURRENT_EF = 0x6986
    BAD_SM_DATA = 0x6988
    BAD_DATA_FIELD = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    BAD_P1_P2 = 0x6A86
    REFERENCE_DATA_NOT_FOUND = 0x6A88
    OFFSET_OUTSIDE_EF = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    DATA_INVALID = 0x6F00
    MAC_INVALID = 0x9302
    APPLICATION_LOCKED = 0x9303
    INSUFFICIENT_FUNDS = 0x9401
    COUNTER_AT_MAXIMUM = 0x9402
    KEY_INDEX_NOT_SUPPORTED = 0x9403
    MAC_UNAVAILABLE = 0x9406


_MEANINGS: dict[int, str] = {
    Sw.OK: "success",
    Sw.MEMORY_ERROR: "memory error (EEPROM fault, card locked)",
    Sw.WRONG_LENGTH: "wrong Lc or Le",
    Sw.COMMAND_NOT_ACCEPTED: "command not accepted (invalid state)",
    Sw.INCOMPATIBLE_FILE_STRUCTURE: "command incompatible with file structure",
    Sw.SECURITY_NOT_SATISFIED: "security status not satisfied",
    Sw.AUTH_METHOD_BLOCKED: "authentication method blocked (PIN or key blocked)",
    Sw.REFERENCE_DATA_INVALID: "reference data invalid (e.g. no valid random)",
    Sw.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    Sw.NO_CURRENT_EF: "no current EF",
    Sw.BAD_SM_DATA: "incorrect secure-messaging data objects",
    Sw.BAD_DATA_FIELD: "incorrect data field",
    Sw.FUNCTION_NOT_SUPPORTED: "function not supported (card blocked)",
    Sw.FILE_NOT_FOUND: "file or application not found",
    Sw.RECORD_NOT_FOUND: "record not found",
    Sw.BAD_P1_P2: "incorrect P1 or P2",
    Sw.REFERENCE_DATA_NOT_FOUND: "reference data (key) not found",
    Sw.OFFSET_OUTSIDE_EF: "offset outside the EF",
    Sw.INS_NOT_SUPPORTED: "instruction not supported",
    Sw.CLA_NOT_SUPPORTED: "class not supported",
    Sw.DATA_INVALID: "data invalid (no precise diagnosis)",
    Sw.MAC_INVALID: "MAC invalid",
    Sw.APPLICATION_LOCKED: "application permanently locked",
    Sw.INSUFFICIENT_FUNDS: "insufficient funds",
    Sw.COUNTER_AT_MAXIMUM: "transaction counter at maximum",
    Sw.KEY_INDEX_NOT_SUPPORTED: "key index not supported",
    Sw.MAC_UNAVAILABLE: "required MAC unavailable",
}


def describe(sw: int) -> str:
    """Return the catalogue meaning of a status word, or its ISO 7816-4 family.

    :param sw: SW1SW2 as a 16-bit integer
    """
    if sw in _MEANINGS:
        return _MEANINGS[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le, exact length is {sw2 or 256}"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    families = {
        0x62: "warning, state unchanged",
        0x63: "warning, state changed",
        0x64: "execution error, state unchanged",
        0x65: "execution error, state changed",
        0x67: "wrong length",
        0x68: "function in CLA not supported",
        0x69: "command not allowed",
        0x6A: "wrong parameters",
        0x6B: "wrong parameters P1-P2",
        0x6D: "instruction not supported",
        0x6E: "class not supported",
        0x6F: "no precise diagnosis",
        0x93: "proprietary error",
        0x94: "proprietary error",
    }
    return families.get(sw1, "unknown status word")


def tries_left(sw: int) -> int | None:
    """Return x for ``63Cx``, else ``None``.

    :param sw: SW1SW2 as a 16-bit integer
    """
    if sw & 0xFFF0 == 0x63C0:
        return sw & 0x0F
    return None
