"""The security-module contract (spec doc §3.4–§3.7, §4.3–§4.4).

Every back-end (PSAM in a reader slot, remote HSM, software SAM) implements
:class:`SecurityModule`. The card session drives the card and the module in the order the
national interface requires (§4.3; :meth:`apdu.ssc.SscSession.authenticate`):

1. SELECT SSSE, take the algorithm from the FCI; read EF05 (free) for 卡识别码 and 规范版本;
2. the module must support the algorithm (``-2202``) and, on a 3.0 card, hold RKSSSE (``-2203``);
3. INTERNAL AUTHENTICATE: GET CHALLENGE → original, GET CHALLENGE → process factor, then
   ``00 88 00 00 10 factor‖original`` — the module's expected answer must match (``-21``);
4. 3.0 only, when EF06 is to be read: GET CHALLENGE → original, GET CHALLENGE → factor
   **last**, because the card computes the EXTERNAL AUTHENTICATE session key from its most
   recent challenge (§3.4); then ``00 82 00 0A 10 cryptogram‖original``;
5. read EF06; the terminal number comes from the module.

Steps 3 and 4 are asked of the module in one call (:meth:`SecurityModule.authenticate`) so that
the two-step HSM mode, which answers both at once, fits the same contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from apdu.errors import ProtocolError, SscardError
from apdu.national import NO_TERMINAL_NUMBER, NationalCode
from apdu.purse import PurchaseMac1, PurchaseRequest
from apdu.records import CardAlgorithm, Generation
from apdu.sw import describe

HISTORICAL_MIN = 13  # T1…T13: the level-3 factor is T6…T13 (spec §3.5)
HISTORICAL_MAX = 15  # ISO 7816-3: K is one nibble


class SecurityModuleError(SscardError):
    """A security-module condition with its national code (App A)."""

    code: int = NationalCode.COMMAND_NOT_SUPPORTED


class NoSecurityModule(SecurityModuleError):
    """No PSAM is present (``-2201``)."""

    code = NationalCode.NO_PSAM


class AlgorithmNotSupported(SecurityModuleError):
    """The module cannot serve the card's algorithm (``-2202``)."""

    code = NationalCode.PSAM_ALGORITHM_MISSING


class RkssseMissing(SecurityModuleError):
    """A 3.0 card needs RKSSSE and the module holds none (``-2203``)."""

    code = NationalCode.PSAM_RKSSSE_MISSING


class KeyLevelInsufficient(SecurityModuleError):
    """No number of diversification levels worked (``-24``)."""

    code = NationalCode.PSAM_KEY_LEVEL


class SecurityModuleUnavailable(SecurityModuleError):
    """The module (PSAM reader, HSM service) could not be reached or answered nonsense."""

    code = NationalCode.READER_CONNECTION


class SecurityModuleRefused(SecurityModuleError):
    """The PSAM answered a status word other than the ones with a national code of their own.

    Reported like a card status word, ``-(SW)`` (``6A88`` key not found → ``-27272``).

    :param what: the step that was refused
    :param sw: the PSAM's status word
    """

    def __init__(self, what: str, sw: int) -> None:
        self.sw = sw
        self.code = -(sw & 0xFFFF)
        super().__init__(f"PSAM refused {what}: SW {sw:04X} ({describe(sw)})")


class PurchaseNotSupported(SecurityModuleError):
    """The back-end computes no purchase MACs (``-13``, command not supported)."""

    code = NationalCode.COMMAND_NOT_SUPPORTED


class Mac2Invalid(SecurityModuleError):
    """MAC2 from the card does not match: the debit is not proven (``9302``, ``-37634``).

    Also raised when no MAC1 is pending (the module has nothing to check MAC2 against).
    """

    code = -0x9302


@dataclass(frozen=True, slots=True)
class CardIdentity:
    """What a security module needs to know about a card to derive its keys.

    :param algorithm: the card algorithm from the FCI
    :param card_id: 卡识别码 (16 bytes); its first 3 bytes are the city code
    :param historical: ATR historical bytes; T6…T13 are the level-3 factor
    :param generation: the card generation
    """

    algorithm: CardAlgorithm
    card_id: bytes
    historical: bytes
    generation: Generation

    @property
    def city_code(self) -> str:
        """The six-digit city code (first three bytes of 卡识别码)."""
        return self.card_id[:3].hex().upper()


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """The challenges of one authentication, in the card's own words.

    :param card: the card identity
    :param internal_factor: INTERNAL AUTHENTICATE process factor (8 bytes)
    :param internal_original: INTERNAL AUTHENTICATE original data (8 bytes)
    :param external_factor: the card's last challenge before EXTERNAL AUTHENTICATE (3.0 only)
    :param external_original: EXTERNAL AUTHENTICATE original data (3.0 only)
    """

    card: CardIdentity
    internal_factor: bytes
    internal_original: bytes
    external_factor: bytes | None = None
    external_original: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.internal_factor) != 8 or len(self.internal_original) != 8:
            raise ProtocolError("INTERNAL AUTHENTICATE factor and original are 8 bytes each")
        if (self.external_factor is None) != (self.external_original is None):
            raise ProtocolError("EXTERNAL AUTHENTICATE needs both a factor and an original")
        if self.external_factor is not None and (
            len(self.external_factor) != 8 or len(self.external_original or b"") != 8
        ):
            raise ProtocolError("EXTERNAL AUTHENTICATE factor and original are 8 bytes each")

    @property
    def wants_external(self) -> bool:
        """Whether the module must also produce the RKSSSE cryptogram."""
        return self.external_original is not None


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """What the module computed.

    :param internal_expected: the 8 bytes a genuine card answers to INTERNAL AUTHENTICATE
    :param external_cryptogram: the 8-byte EXTERNAL AUTHENTICATE data for RKSSSE, if asked
    """

    internal_expected: bytes
    external_cryptogram: bytes | None = None


class SecurityModule(ABC):
    """One interface, three back-ends: PSAM, HSM two-step, software SAM."""

    #: a short name for messages and logs (``psam``, ``hsm``, ``soft-sam``)
    kind: str = "security-module"

    @abstractmethod
    def check(self, card: CardIdentity) -> None:
        """Check before any authentication that the module can serve this card.

        :param card: the card identity
        :raises AlgorithmNotSupported: ``-2202``
        :raises RkssseMissing: ``-2203`` (3.0 cards only)
        :raises SecurityModuleUnavailable: the module cannot be reached
        """

    @abstractmethod
    def authenticate(self, request: AuthRequest) -> AuthResponse:
        """Compute the expected INTERNAL AUTHENTICATE answer and, if asked, the RKSSSE cryptogram.

        :param request: the challenges
        :raises SecurityModuleError: on any module failure, with its national code
        :raises ProtocolError: when the card's keys cannot be derived from its identity
        """

    @abstractmethod
    def terminal_number(self) -> str:
        """The 12-digit 终端机编号 (``000000000000`` where the module has none).

        :raises SecurityModuleUnavailable: the module cannot be reached
        """

    def purchase_mac1(self, request: PurchaseRequest) -> PurchaseMac1:
        """Compute MAC1 of a purchase and hand out the next terminal transaction sequence.

        The module keeps the session key until :meth:`check_mac2`.

        :param request: the card's purchase data
        :raises PurchaseNotSupported: a back-end without purchase keys
        :raises SecurityModuleError: on any module failure, with its national code
        """
        raise PurchaseNotSupported(f"the {self.kind} back-end computes no purchase MACs")

    def check_mac2(self, mac2: bytes) -> None:
        """Check the card's MAC2 against the pending purchase, which it then forgets.

        :param mac2: 4 bytes from the card's DEBIT FOR PURCHASE answer
        :raises Mac2Invalid: MAC2 does not match, or no purchase is pending
        :raises PurchaseNotSupported: a back-end without purchase keys
        """
        raise PurchaseNotSupported(f"the {self.kind} back-end computes no purchase MACs")

    def close(self) -> None:  # noqa: B027 - optional hook, most back-ends hold nothing
        """Release what the module holds."""

    def __enter__(self) -> SecurityModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- HSM two-step strings (§4.4) -----------------------------------------------------------------


def hsm_step1(request: AuthRequest) -> str:
    """The ``iReadCardBas_HSM_Step1`` output: 8 fields, each followed by ``|``.

    ``发卡地区代码|卡复位信息|算法标识|卡识别码|内部认证过程因子|内部认证原始信息|外部认证过程因子|外部认证原始信息|``;
    the two external fields are empty for cards before 3.0.

    :param request: the challenges
    """
    card = request.card
    fields = [
        card.city_code,
        card.historical.hex().upper(),
        f"{card.algorithm.algorithm_id:02X}",
        card.card_id.hex().upper(),
        request.internal_factor.hex().upper(),
        request.internal_original.hex().upper(),
        request.external_factor.hex().upper() if request.external_factor else "",
        request.external_original.hex().upper() if request.external_original else "",
    ]
    return "".join(f + "|" for f in fields)


def _hex(text: str, what: str) -> bytes:
    if any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ProtocolError(f"{what}: not hexadecimal")
    if len(text) % 2:  # bytes.fromhex would raise ValueError, which no caller expects
        raise ProtocolError(f"{what}: an odd number of hex digits ({len(text)})")
    return bytes.fromhex(text)


def _hex_field(text: str, what: str, length: int) -> bytes:
    value = _hex(text, what)
    if len(value) != length:
        raise ProtocolError(f"{what}: expected {2 * length} hex digits, got {len(text)}")
    return value


def parse_hsm_step1(text: str) -> AuthRequest:
    """Parse a Step1 string back into a request (the HSM service side).

    :param text: the Step1 string; a trailing vendor field after the 8th is tolerated
    :raises ProtocolError: for a malformed string
    """
    if not text.endswith("|"):
        raise ProtocolError("Step1 string must end with '|'")
    fields = text[:-1].split("|")
    if len(fields) < 8:
        raise ProtocolError(f"Step1 string has {len(fields)} fields, expected 8")
    city, hist, alg, card_id, i_factor, i_orig, e_factor, e_orig = fields[:8]
    codes = {f"{algorithm.algorithm_id:02X}": algorithm for algorithm in CardAlgorithm}
    if alg not in codes:
        raise ProtocolError(f"Step1 algorithm id {alg!r} is not 01, 02 or 03")
    card_id_bytes = _hex_field(card_id, "卡识别码", 16)
    if card_id_bytes[:3].hex().upper() != city:
        raise ProtocolError("Step1 region code does not match 卡识别码")
    historical = _hex(hist, "Step1 卡复位信息")
    if not HISTORICAL_MIN <= len(historical) <= HISTORICAL_MAX:
        # a vendor variant puts the whole ATR here; the level-3 factor would then be wrong
        raise ProtocolError(
            f"Step1 卡复位信息 must be the ATR historical bytes ({HISTORICAL_MIN}-"
            f"{HISTORICAL_MAX} bytes), got {len(historical)}"
        )
    external = bool(e_factor or e_orig)
    card = CardIdentity(
        codes[alg], card_id_bytes, historical, Generation.V3 if external else Generation.V2
    )
    return AuthRequest(
        card,
        _hex_field(i_factor, "内部认证过程因子", 8),
        _hex_field(i_orig, "内部认证原始信息", 8),
        _hex_field(e_factor, "外部认证过程因子", 8) if external else None,
        _hex_field(e_orig, "外部认证原始信息", 8) if external else None,
    )


def hsm_step2_key(request: AuthRequest, response: AuthResponse) -> str:
    """The ``iReadCardBas_HSM_Step2`` ``pKey``: ``<int16><orig16>|<ext16><orig16>|`` (hex digits).

    :param request: the challenges (their originals are echoed)
    :param response: the HSM's computation
    :raises ProtocolError: when a 3.0 request got no external cryptogram
    """
    first = (response.internal_expected + request.internal_original).hex().upper()
    second = ""
    if request.external_original is not None:
        if response.external_cryptogram is None:
            raise ProtocolError("the request needs an RKSSSE cryptogram and the answer has none")
        second = (response.external_cryptogram + request.external_original).hex().upper()
    return f"{first}|{second}|"


def parse_hsm_step2_key(text: str, request: AuthRequest) -> AuthResponse:
    """Parse a ``pKey`` and check that it answers this request's originals.

    :param text: the pKey string
    :param request: the request it must answer
    :raises ProtocolError: for a malformed key or one that answers other challenges
    """
    parts = text.split("|")
    if len(parts) != 3 or parts[2] != "":
        raise ProtocolError("pKey must be two fields, each followed by '|'")
    first = _hex_field(parts[0], "pKey internal item", 16)
    if first[8:] != request.internal_original:
        raise ProtocolError("pKey answers another INTERNAL AUTHENTICATE original")
    external = None
    if request.external_original is not None:
        second = _hex_field(parts[1], "pKey external item", 16)
        if second[8:] != request.external_original:
            raise ProtocolError("pKey answers another EXTERNAL AUTHENTICATE original")
        external = second[:8]
    elif parts[1]:
        raise ProtocolError("pKey has an external item for a card that needs none")
    return AuthResponse(first[:8], external)


def ireadcardbas_terminal_number(module: SecurityModule | None) -> str:
    """The terminal number for the national string: the module's, or zeros.

    :param module: the security module, if any
    """
    return module.terminal_number() if module is not None else NO_TERMINAL_NUMBER
