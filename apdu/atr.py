"""Answer-to-reset parsing and building (ISO/IEC 7816-3 §8).

An ATR is ``TS T0 {TAi TBi TCi TDi} historical [TCK]``. T0's high nibble (Y1) says which of
TA1..TD1 follow and its low nibble (K) how many historical bytes there are; each TDi's high
nibble says which of TA(i+1)..TD(i+1) follow and its low nibble names a protocol T. The
historical bytes therefore start after a variable number of interface bytes: ``ATR[4:]`` only
works for the common SSC ATR ``3B 6D 00 00 …`` with TB1 and TC1 (spec §8 note 1). The SSC's
``卡复位信息`` is the hex of the historical bytes, e.g. ``00814E43238697159900BF7C7A``.

:func:`build_atr` makes the shapes the card emulators need: T=0 only, as SSC cards answer, and
T=1 (alone or after T=0) with IFSC 254 and BWI 4 / CWI 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from operator import xor
from typing import Literal

from apdu.errors import AtrError

Convention = Literal["direct", "inverse"]

TS_DIRECT = 0x3B
TS_INVERSE = 0x3F
ATR_MAX_LENGTH = 33  # ISO/IEC 7816-3 §8.2.1: at most 32 characters after TS
HISTORICAL_MAX = 15  # K is one nibble
T_GLOBAL = 15  # TD announcing T=15 qualifies global interface bytes; not a protocol
NIBBLE = 0x0F
Y_TA, Y_TB, Y_TC, Y_TD = 0x1, 0x2, 0x4, 0x8  # bits of Yi, the high nibble of T0 / TDi

# ISO/IEC 7816-3 §8.3: TA1 high nibble FI → Fi, low nibble DI → Di; missing keys are RFU.
FI_TABLE = {
    0: 372, 1: 372, 2: 558, 3: 744, 4: 1116, 5: 1488, 6: 1860,
    9: 512, 10: 768, 11: 1024, 12: 1536, 13: 2048,
}  # fmt: skip
DI_TABLE = {1: 1, 2: 2, 3: 4, 4: 8, 5: 16, 6: 32, 7: 64, 8: 12, 9: 20}
FI_DI_DEFAULT = (372, 1)  # without TA1

# What build_atr puts in the interface bytes.
TB1_NO_VPP = 0x00  # no programming voltage
TC1_NO_EXTRA_GUARD = 0x00  # no extra guard time
TD_MORE_TD = 0x80  # Y = 1000: only the next TD follows
TD2_T1_TA3_TB3 = 0x31  # Y = 0011: TA3 and TB3 follow; T=1
TA3_IFSC = 0xFE  # T=1 information field size of the card: 254
TB3_BWI_CWI = 0x45  # T=1 block waiting index 4, character waiting index 5
BUILD_PROTOCOLS = ((0,), (1,), (0, 1))


@dataclass(frozen=True, slots=True)
class InterfaceBytes:
    """TAi, TBi, TCi and TDi of one group i of an ATR, each ``None`` when absent.

    :param ta: TAi
    :param tb: TBi
    :param tc: TCi
    :param td: TDi; its low nibble is the protocol T, its high nibble announces group i+1
    :raises: nothing
    """

    ta: int | None = None
    tb: int | None = None
    tc: int | None = None
    td: int | None = None


@dataclass(frozen=True, slots=True)
class Atr:
    """A parsed answer-to-reset; build one with :meth:`parse`.

    :param raw: the ATR bytes, TS through TCK
    :param convention: ``"direct"`` (TS = 3B) or ``"inverse"`` (TS = 3F)
    :param interface_bytes: groups 1, 2, …: group 1 always, group i+1 when TDi is present
    :param protocols: the protocols T offered, in the order the TD bytes announce them, without
        repeats and without T=15; ``(0,)`` when there is no TD1
    :param historical: the K historical bytes
    :param tck: the check byte, ``None`` when only T=0 is offered
    :raises: nothing
    """

    raw: bytes
    convention: Convention
    interface_bytes: tuple[InterfaceBytes, ...]
    protocols: tuple[int, ...]
    historical: bytes
    tck: int | None

    @classmethod
    def parse(cls, raw: bytes) -> Atr:
        """Parse an ATR by walking T0 and the TD chain, then check TCK.

        :param raw: the ATR as the reader reports it, TS first
        :raises AtrError: the ATR is empty, shorter than TS T0 or longer than 33 bytes; TS is
            not 3B or 3F; interface or historical bytes are truncated; TCK is missing although
            a protocol other than T=0 is offered, or does not check; bytes follow the ATR
        """
        data = bytes(raw)
        convention = _read_convention(data)
        groups, announced, pos = _read_interface_bytes(data)
        k = data[1] & NIBBLE
        if pos + k > len(data):
            raise AtrError(
                f"truncated historical bytes: T0 announces {k}, only {len(data) - pos} present"
            )
        historical = data[pos : pos + k]
        tck, pos = _read_tck(data, pos + k, announced)
        if pos < len(data):
            extra = data[pos:].hex().upper()
            hint = " (a TCK? it must be absent when only T=0 is offered)" if tck is None else ""
            raise AtrError(f"{len(data) - pos} trailing bytes after the ATR: {extra}{hint}")
        return cls(
            raw=data,
            convention=convention,
            interface_bytes=groups,
            protocols=tuple(dict.fromkeys(t for t in announced if t != T_GLOBAL)) or (0,),
            historical=historical,
            tck=tck,
        )

    def to_bytes(self) -> bytes:
        """Return the ATR bytes as received.

        :raises: nothing
        """
        return self.raw

    @property
    def historical_hex(self) -> str:
        """The historical bytes in upper-case hex: the SSC's ``卡复位信息``."""
        return self.historical.hex().upper()

    @property
    def t1(self) -> bool:
        """Whether the card offers T=1."""
        return 1 in self.protocols

    @property
    def fi_di(self) -> tuple[int, int] | None:
        """Fi and Di from TA1: ``(372, 1)`` without TA1, ``None`` if TA1 holds an RFU value."""
        ta1 = self.interface_bytes[0].ta
        if ta1 is None:
            return FI_DI_DEFAULT
        fi, di = FI_TABLE.get(ta1 >> 4), DI_TABLE.get(ta1 & NIBBLE)
        if fi is None or di is None:
            return None
        return fi, di


def _read_convention(data: bytes) -> Convention:
    """Check the ATR's overall length and read the convention from TS.

    :param data: the ATR
    :raises AtrError: the ATR is empty, too long or too short, or TS is not 3B or 3F
    """
    if not data:
        raise AtrError("empty ATR")
    if len(data) > ATR_MAX_LENGTH:
        raise AtrError(f"ATR is {len(data)} bytes; ISO/IEC 7816-3 allows at most 33")
    if data[0] not in (TS_DIRECT, TS_INVERSE):
        raise AtrError(f"TS {data[0]:02X} is neither 3B (direct) nor 3F (inverse convention)")
    if len(data) < 2:
        raise AtrError("ATR too short: T0 is missing after TS")
    return "direct" if data[0] == TS_DIRECT else "inverse"


def _read_interface_bytes(data: bytes) -> tuple[tuple[InterfaceBytes, ...], list[int], int]:
    """Walk the interface bytes from T0's Y1 along the TD chain.

    :param data: the ATR, at least TS and T0
    :returns: the groups, the T announced by each TD (T=15 included), the offset after them
    :raises AtrError: an announced interface byte is missing
    """
    y = data[1] >> 4
    pos = 2
    groups: list[InterfaceBytes] = []
    announced: list[int] = []
    while True:
        i = len(groups) + 1
        found: dict[str, int | None] = {}
        for bit, name in ((Y_TA, "ta"), (Y_TB, "tb"), (Y_TC, "tc"), (Y_TD, "td")):
            if not y & bit:
                found[name] = None
                continue
            if pos >= len(data):
                by = "T0" if i == 1 else f"TD{i - 1}"
                raise AtrError(
                    f"truncated interface bytes: {by} announces {name.upper()}{i}, "
                    f"but the ATR ends after {len(data)} bytes"
                )
            found[name] = data[pos]
            pos += 1
        group = InterfaceBytes(**found)
        groups.append(group)
        # The ATR is at most 33 bytes and each TD takes one, so the chain ends.
        if group.td is None:
            return tuple(groups), announced, pos
        announced.append(group.td & NIBBLE)
        y = group.td >> 4


def _read_tck(data: bytes, pos: int, announced: list[int]) -> tuple[int | None, int]:
    """Read and check TCK at ``pos`` if the announced protocols require one.

    ISO/IEC 7816-3 §8.2.5: TCK is absent if only T=0 is offered and present otherwise (T=15
    counts as otherwise); T0 through TCK then XOR to 00.

    :param data: the ATR
    :param pos: the offset after the historical bytes
    :param announced: the T of every TD byte
    :returns: TCK or ``None``, and the offset after it
    :raises AtrError: TCK is required but missing, or does not check
    """
    if all(t == 0 for t in announced):
        return None, pos
    if pos >= len(data):
        offered = ", ".join(f"T={t}" for t in announced)
        raise AtrError(f"missing TCK: required because TD bytes announce {offered}")
    tck = data[pos]
    expected = reduce(xor, data[1:pos], 0)
    if tck != expected:
        raise AtrError(
            f"TCK mismatch: ATR {data.hex().upper()} ends in {tck:02X}, "
            f"T0..TCK XOR to 00 only with {expected:02X}"
        )
    return tck, pos + 1


def build_atr(historical: bytes, *, protocols: Sequence[int] = (0,)) -> bytes:
    """Build a valid ATR around ``historical``, for card emulators.

    ``(0,)`` gives ``3B 6K 00 00 <hist>`` (TB1, TC1, no TD, no TCK), the shape of SSC cards.
    ``(1,)`` gives ``3B EK 00 00 81 31 FE 45 <hist> TCK`` and ``(0, 1)`` the same with
    TD1 = 80: TD2 announces T=1 with TA3 = IFSC 254 and TB3 = BWI 4 / CWI 5.

    :param historical: the historical bytes, at most 15
    :param protocols: ``(0,)``, ``(1,)`` or ``(0, 1)``, in the order TD bytes announce them
    :raises ValueError: more than 15 historical bytes, or another set of protocols
    """
    k = len(historical)
    if k > HISTORICAL_MAX:
        raise ValueError(f"an ATR holds at most {HISTORICAL_MAX} historical bytes, not {k}")
    offered = tuple(protocols)
    if offered not in BUILD_PROTOCOLS:
        raise ValueError(f"protocols must be (0,), (1,) or (0, 1), not {offered}")
    if offered == (0,):
        y1 = Y_TB | Y_TC
        return bytes((TS_DIRECT, y1 << 4 | k, TB1_NO_VPP, TC1_NO_EXTRA_GUARD)) + historical
    y1 = Y_TB | Y_TC | Y_TD
    td1 = TD_MORE_TD | offered[0]
    body = bytes((y1 << 4 | k, TB1_NO_VPP, TC1_NO_EXTRA_GUARD, td1, TD2_T1_TA3_TB3))
    body += bytes((TA3_IFSC, TB3_BWI_CWI)) + historical
    return bytes((TS_DIRECT,)) + body + bytes((reduce(xor, body, 0),))
