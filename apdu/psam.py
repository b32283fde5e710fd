"""The PSAM (终端安全存取模块) as a security module: its commands and the key-level retry.

Spec doc §3.5 (S3-P9 §5, §7–§9):

* environments: DES = MF ``3F00`` with AID ``sx1.sh.社会保障``; SSF33 = DDF ``DDF1`` with AID
  ``sx2.sh.社会保障``. Where an SM4 environment lives is not in the public sources; this
  project uses the AID ``sx3.sh.社会保障`` (``7378332E…``), by analogy, and says so;
* ``BF EC 00 00 01 <first byte of 卡识别码>`` initialises the environment (province key set);
* the application ADF ``DF01`` has AID ``D15600000590`` in every environment;
* ``BF DE <usage> <key id> Lc [factors][session factor]`` delivers a session key. The usage
  byte's top three bits are the number of diversification levels, its low five bits the key
  type (``07`` = encrypt/authenticate). Factors are 8 bytes each, **level 3 first** (card,
  then city, then province), as Huada's PSAM code and the ``80 70`` layout order them; the
  session factor is 8 bytes (DES) or 16 (SSF33/SM4). ``6A80`` = wrong number of levels,
  ``6A88`` = key not found;
* ``80 FA 00 00 Lc data`` encrypts with the delivered key; the result comes with ``61xx`` and
  ``00 C0`` (the T=0 chain fetches it);
* ``00 B0 96 00 06`` reads the 6-byte terminal number from EF ``0016`` by SFI.

Key ids (S3-P9 附录B, S4 App B): IRK ``08`` with usage ``67`` (3 levels, type 07);
RKSSSE ``0A`` with type 07; the purchase key DPK, type ``02``, ids ``01``–``03`` by key version,
with usage ``22`` (1 level). The number of levels is a property of **each key**: a PSAM may
hold its IRK at 3 levels, its RKSSSE at 2 and its DPK at 1 (S3-P9 §8 tells applications to try
the other level counts or to index them per PSAM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from apdu import crypto
from apdu.command import CommandApdu
from apdu.errors import ApduError, ProtocolError
from apdu.files import AID_SSSE
from apdu.purse import PurchaseMac1, PurchaseRequest
from apdu.records import CardAlgorithm, Generation
from apdu.sam import (
    AlgorithmNotSupported,
    AuthRequest,
    AuthResponse,
    CardIdentity,
    KeyLevelInsufficient,
    Mac2Invalid,
    RkssseMissing,
    SecurityModule,
    SecurityModuleRefused,
)
from apdu.transport import Connection, send

log = logging.getLogger(__name__)

AID_ENV_DES = AID_SSSE  # "sx1.sh.社会保障"
AID_ENV_SSF33 = bytes.fromhex("7378322E73682EC9E7BBE1B1A3D5CF")  # "sx2.sh.社会保障"
AID_ENV_SM4 = bytes.fromhex("7378332E73682EC9E7BBE1B1A3D5CF")  # "sx3.sh.社会保障" (assumed)
AID_PSAM_ADF = bytes.fromhex("D15600000590")
ENVIRONMENTS = {
    CardAlgorithm.DES: AID_ENV_DES,
    CardAlgorithm.SSF33: AID_ENV_SSF33,
    CardAlgorithm.SM4: AID_ENV_SM4,
}

CLA_PSAM = 0xBF
CLA_PROPRIETARY = 0x80
INS_INIT_ENVIRONMENT = 0xEC
INS_DELIVER_SESSION_KEY = 0xDE
INS_CIPHER_DATA = 0xFA
INS_INIT_SAM_FOR_PURCHASE = 0x70
INS_CREDIT_SAM_FOR_PURCHASE = 0x72
INS_READ_BINARY = 0xB0
P1_TERMINAL_INFO_SFI = 0x80 | 0x16  # READ BINARY by SFI 16 (EF 0016)
TERMINAL_NUMBER_LENGTH = 6

KEY_TYPE_AUTH = 0x07
KEY_TYPE_PURCHASE = 0x02  # S3-P9 附录B: DPK ↔ usage 22 (medical purchase), ids 01..03
KEY_IRK = 0x08
KEY_RKSSSE = 0x0A
LEVEL_ORDER = (3, 2, 1)  # S3-P9 §8: national roots first, then province, then city keys
SW_WRONG_LEVELS = 0x6A80
SW_WRONG_LENGTH = 0x6700
SW_CONDITIONS = 0x6985
SW_KEY_NOT_FOUND = 0x6A88
SW_FILE_NOT_FOUND = 0x6A82
SW_MAC_INVALID = 0x9302  # CREDIT SAM FOR PURCHASE: MAC2 does not match (S3-P9 §9.9)
SW_MAC_INVALID_COUNTED = 0x63CF  # the same, as some PSAMs answer it


T = TypeVar("T")


class PsamKey(NamedTuple):
    """One key of a PSAM: what its number of diversification levels belongs to.

    :param algorithm: the environment (DES, SSF33, SM4) the key lives in
    :param key_type: the low five bits of the usage byte (``07`` auth, ``02`` purchase)
    :param key_id: the key id (``08`` IRK, ``0A`` RKSSSE; the key version for a DPK)
    """

    algorithm: CardAlgorithm
    key_type: int
    key_id: int


def key_name(key: PsamKey) -> str:
    """A short name of a PSAM key for logs and messages (``IRK``, ``RKSSSE``, ``DPK v1``).

    :param key: the key
    """
    if key.key_type == KEY_TYPE_PURCHASE:
        return f"DPK v{key.key_id}"
    names = {KEY_IRK: "IRK", KEY_RKSSSE: "RKSSSE"}
    return names.get(key.key_id, f"key {key.key_id:02X}")


def usage_byte(levels: int, key_type: int = KEY_TYPE_AUTH) -> int:
    """The BF DE usage byte: levels in the top three bits, the key type in the low five.

    :param levels: 0–3 diversification levels
    :param key_type: e.g. ``07`` encrypt/authenticate
    :raises ValueError: outside 0–3 levels or a type over 5 bits
    """
    if not 0 <= levels <= 3 or not 0 <= key_type <= 0x1F:
        raise ValueError("levels must be 0-3 and the key type 5 bits")
    return levels << 5 | key_type


def diversification_factors(card: CardIdentity, levels: int) -> list[bytes]:
    """The factors for ``levels`` levels, in the PSAM's order: level 3 first.

    :param card: the card identity
    :param levels: 1, 2 or 3
    """
    all_levels = [
        crypto.card_factor(card.historical),
        crypto.city_factor(card.city_code),
        crypto.province_factor(card.city_code),
    ]
    return all_levels[:levels]


class PsamSession:
    """The commands of a PSAM over one connection (the T=0 chain included).

    :param connection: the PSAM's connection
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def select_environment(self, algorithm: CardAlgorithm) -> bool:
        """Select the environment of an algorithm.

        :param algorithm: the card algorithm
        :returns: False when the PSAM has no such environment (``6A82``)
        :raises ApduError: any other refusal
        """
        aid = ENVIRONMENTS[algorithm]
        try:
            send(self.connection, CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, 256))
        except ApduError as exc:
            if exc.sw == SW_FILE_NOT_FOUND:
                return False
            raise
        return True

    def init_environment(self, card_id: bytes) -> None:
        """``BF EC 00 00 01 <first byte of 卡识别码>``.

        :param card_id: the card's 卡识别码
        """
        send(self.connection, CommandApdu(CLA_PSAM, INS_INIT_ENVIRONMENT, 0, 0, card_id[:1]))

    def select_application(self) -> None:
        """Select the PSAM ADF ``DF01`` (AID ``D15600000590``)."""
        send(self.connection, CommandApdu(0x00, 0xA4, 0x04, 0x00, AID_PSAM_ADF, 256))

    def deliver_session_key(self, key_id: int, factors: list[bytes], session_factor: bytes) -> None:
        """``BF DE``: derive the card key over ``factors`` and a session key from it.

        :param key_id: e.g. ``08`` IRK, ``0A`` RKSSSE
        :param factors: diversification factors, level 3 first
        :param session_factor: 8 bytes (DES) or 16 (SM4/SSF33)
        :raises ApduError: ``6A80`` wrong number of levels, ``6A88`` key not found, others
        """
        data = b"".join(factors) + session_factor
        usage = usage_byte(len(factors))
        send(self.connection, CommandApdu(CLA_PSAM, INS_DELIVER_SESSION_KEY, usage, key_id, data))

    def cipher(self, data: bytes) -> bytes:
        """``80 FA 00 00``: encrypt whole blocks with the delivered session key.

        :param data: whole blocks
        :raises ProtocolError: when the PSAM returns another length
        """
        out = send(
            self.connection,
            CommandApdu(CLA_PROPRIETARY, INS_CIPHER_DATA, 0x00, 0x00, data, len(data)),
        )
        if len(out) != len(data):
            raise ProtocolError(f"CIPHER DATA returned {len(out)} bytes for {len(data)}")
        return out

    def init_sam_for_purchase(self, data: bytes) -> bytes:
        """``80 70 00 00 Lc``: MAC1 of a purchase → terminal sequence (4) ‖ MAC1 (4).

        :param data: :meth:`apdu.purse.PurchaseRequest.mac1_data`, 20 + 8 bytes per level
        :raises ProtocolError: when the PSAM returns other than 8 bytes
        """
        command = CommandApdu(CLA_PROPRIETARY, INS_INIT_SAM_FOR_PURCHASE, 0, 0, data, 8)
        out = send(self.connection, command)
        if len(out) != 8:
            raise ProtocolError(f"INIT SAM FOR PURCHASE returned {len(out)} bytes, expected 8")
        return out

    def credit_sam_for_purchase(self, mac2: bytes) -> None:
        """``80 72 00 00 04 <MAC2>``: the PSAM checks the card's MAC2.

        :param mac2: 4 bytes
        :raises ApduError: ``9302`` / ``63CF`` MAC2 wrong, ``6985`` nothing pending, others
        """
        send(self.connection, CommandApdu(CLA_PROPRIETARY, INS_CREDIT_SAM_FOR_PURCHASE, 0, 0, mac2))

    def terminal_number(self) -> str:
        """Read 终端机编号 (EF ``0016``, 6 bytes BCD) → 12 digits.

        :raises ProtocolError: when the file is not 6 bytes of BCD
        """
        command = CommandApdu(
            0x00, INS_READ_BINARY, P1_TERMINAL_INFO_SFI, 0x00, le=TERMINAL_NUMBER_LENGTH
        )
        raw = send(self.connection, command)
        digits = raw.hex()
        if len(raw) != TERMINAL_NUMBER_LENGTH or not digits.isdigit():
            raise ProtocolError("PSAM terminal number is not 6 bytes of BCD")
        return digits


class PsamModule(SecurityModule):
    """A PSAM in a reader slot as the security module (production mode).

    The number of diversification levels differs between PSAMs and, within one PSAM, between
    its keys (S3-P9 §8, 附录B): the IRK may sit at 3 levels, RKSSSE at 2, the purchase key at
    1. On ``6A80`` (wrong number of levels) the module retries 3 → 2 → 1 and remembers what
    worked **per key** — (environment, key type, key id), see :class:`PsamKey` — so a count
    found for one key is never tried on another. A remembered count is a hint, not a fact: if
    the PSAM refuses it with ``6A80`` (another PSAM in the slot, another key set after
    ``BF EC``), the module forgets it and probes the other counts again. :meth:`forget` drops
    everything the module learnt about its PSAM (the levels and the terminal number); a
    back-end that reconnects to a replaced PSAM calls it.

    :param connection: the PSAM's connection, with the T=0 chain
    """

    kind = "psam"

    def __init__(self, connection: Connection) -> None:
        self.session = PsamSession(connection)
        self.levels: dict[PsamKey, int] = {}
        self._terminal_number: str | None = None

    def forget(self) -> None:
        """Forget what was learnt about the PSAM: key levels and the terminal number."""
        self.levels.clear()
        self._terminal_number = None

    def _prepare(self, card: CardIdentity) -> None:
        if not self.session.select_environment(card.algorithm):
            raise AlgorithmNotSupported(
                f"the PSAM has no {card.algorithm.value.upper()} environment"
            )
        self.session.init_environment(card.card_id)
        self.session.select_application()

    def _session_factor(self, card: CardIdentity, factor: bytes) -> bytes:
        size = 8 if card.algorithm == CardAlgorithm.DES else 16
        return factor.ljust(size, b"\x00")

    def _with_levels(
        self,
        key: PsamKey,
        attempt: Callable[[int], T],
        *,
        most: int = 3,
        wrong_levels: tuple[int, ...] = (SW_WRONG_LEVELS,),
    ) -> T:
        """Run ``attempt(levels)`` with this key's remembered count, else 3 → 2 → 1.

        :param key: the key the count belongs to
        :param attempt: one try of the command with a number of levels
        :param most: the most levels the caller has factors for
        :param wrong_levels: the status words that mean "wrong number of levels"
        :raises KeyLevelInsufficient: no count was accepted (``-24``)
        :raises ApduError: any other refusal
        """
        known = self.levels.get(key)
        order = [n for n in LEVEL_ORDER if n <= most]
        if known is not None and known in order:
            order.remove(known)
            order.insert(0, known)
        for levels in order:
            try:
                result = attempt(levels)
            except ApduError as exc:
                if exc.sw not in wrong_levels:
                    raise
                if levels == known:
                    del self.levels[key]  # e.g. another PSAM in the slot: probe again
                    log.info("event=psam_levels_changed key=%s levels=%d", key_name(key), levels)
                else:
                    log.info("event=psam_level_retry key=%s levels=%d", key_name(key), levels)
                continue
            if levels != known:
                self.levels[key] = levels
                log.info(
                    "event=psam_levels key=%s algorithm=%s levels=%d",
                    key_name(key),
                    key.algorithm,
                    levels,
                )
            return result
        raise KeyLevelInsufficient(
            f"the PSAM accepted no number of diversification levels for its {key_name(key)}"
        )

    def _deliver(self, card: CardIdentity, key_id: int, factor: bytes) -> None:
        session_factor = self._session_factor(card, factor)

        def attempt(levels: int) -> None:
            factors = diversification_factors(card, levels)
            self.session.deliver_session_key(key_id, factors, session_factor)

        try:
            self._with_levels(PsamKey(card.algorithm, KEY_TYPE_AUTH, key_id), attempt)
        except ApduError as exc:
            if exc.sw == SW_KEY_NOT_FOUND and key_id == KEY_RKSSSE:
                raise RkssseMissing("the PSAM holds no RKSSSE key") from exc
            raise SecurityModuleRefused("BF DE (deliver session key)", exc.sw) from exc

    def _auth_data(self, card: CardIdentity, original: bytes) -> bytes:
        if card.algorithm == CardAlgorithm.DES:
            return self.session.cipher(original)
        # 16-byte blocks: pad with 8 × 00, encrypt, fold the halves by XOR (S3-P9 §9.4)
        block = self.session.cipher(original + bytes(8))
        return bytes(a ^ b for a, b in zip(block[:8], block[8:], strict=True))

    def check(self, card: CardIdentity) -> None:
        """Select the environment and, for 3.0 cards, probe for RKSSSE.

        :param card: the card identity
        :raises AlgorithmNotSupported: no environment for the card's algorithm
        :raises RkssseMissing: a 3.0 card and no RKSSSE key
        """
        try:
            self._prepare(card)
            if card.generation == Generation.V3:
                self._deliver(card, KEY_RKSSSE, bytes(8))
        except ApduError as exc:
            raise SecurityModuleRefused(_step(exc), exc.sw) from exc

    def authenticate(self, request: AuthRequest) -> AuthResponse:
        """Compute both answers with ``BF DE`` + ``80 FA``.

        :param request: the challenges
        :raises SecurityModuleError: with its national code
        """
        card = request.card
        try:
            self._deliver(card, KEY_IRK, request.internal_factor)
            expected = self._auth_data(card, request.internal_original)
            cryptogram = None
            if request.external_factor is not None and request.external_original is not None:
                self._deliver(card, KEY_RKSSSE, request.external_factor)
                cryptogram = self._auth_data(card, request.external_original)
        except ApduError as exc:
            raise SecurityModuleRefused(_step(exc), exc.sw) from exc
        return AuthResponse(expected, cryptogram)

    def purchase_mac1(self, request: PurchaseRequest) -> PurchaseMac1:
        """MAC1 with ``80 70`` in the DES environment's ADF.

        The purchase key's number of levels is the number of factors sent (the Lc); it is
        found like the others, 3 → 2 → 1, and remembered per key version. A PSAM may answer
        a factor count its key does not take with ``6A80`` or ``6700``: both mean "wrong number
        of levels" here, since the rest of the data is fixed.

        :param request: the card's purchase data
        :raises AlgorithmNotSupported: the PSAM has no DES environment
        :raises KeyLevelInsufficient: no number of factors was accepted (``-24``)
        :raises SecurityModuleRefused: the PSAM refused (``6A88``: no purchase key), as ``-(SW)``
        """
        key = PsamKey(CardAlgorithm.DES, KEY_TYPE_PURCHASE, request.key_version)
        try:
            if not self.session.select_environment(CardAlgorithm.DES):
                raise AlgorithmNotSupported("the PSAM has no DES environment for purchases")
            self.session.select_application()
            out = self._with_levels(
                key,
                lambda levels: self.session.init_sam_for_purchase(request.mac1_data(levels)),
                most=len(request.factors),
                wrong_levels=(SW_WRONG_LEVELS, SW_WRONG_LENGTH),
            )
        except ApduError as exc:
            raise SecurityModuleRefused(_step(exc), exc.sw) from exc
        return PurchaseMac1(int.from_bytes(out[:4], "big"), out[4:])

    def check_mac2(self, mac2: bytes) -> None:
        """Check MAC2 with ``80 72``.

        :param mac2: 4 bytes from the card
        :raises Mac2Invalid: ``9302`` / ``63CF``, or ``6985`` (no MAC1 pending)
        :raises SecurityModuleRefused: any other refusal, as ``-(SW)``
        """
        if len(mac2) != 4:
            raise ProtocolError(f"MAC2 is 4 bytes, got {len(mac2)}")
        try:
            self.session.credit_sam_for_purchase(mac2)
        except ApduError as exc:
            if exc.sw in (SW_MAC_INVALID, SW_MAC_INVALID_COUNTED):
                raise Mac2Invalid("MAC2 does not match: the card did not prove the debit") from exc
            if exc.sw == SW_CONDITIONS:
                raise Mac2Invalid("the PSAM has no purchase pending (MAC1 first)") from exc
            raise SecurityModuleRefused(_step(exc), exc.sw) from exc

    def terminal_number(self) -> str:
        """The PSAM's 12-digit terminal number (read once)."""
        if self._terminal_number is None:
            try:
                self._terminal_number = self.session.terminal_number()
            except ApduError as exc:
                raise SecurityModuleRefused("READ BINARY 0016 (terminal number)", exc.sw) from exc
        return self._terminal_number


def _step(exc: ApduError) -> str:
    """Name the PSAM command an error answered, for messages."""
    names = {
        0xA4: "SELECT",
        0xEC: "BF EC (initialise environment)",
        0xFA: "80 FA (cipher data)",
        0x70: "80 70 (init SAM for purchase)",
        0x72: "80 72 (credit SAM for purchase)",
    }
    ins = exc.command[1] if len(exc.command) > 1 else -1
    return names.get(ins, f"INS {ins:02X}")
