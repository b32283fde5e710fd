"""An emulated PSAM (终端安全存取模块), the virtual twin of a PSAM in a reader slot.

It answers the commands :mod:`apdu.psam` sends, byte for byte (spec doc §3.5, S3-P9 §5–§9):

* ``00 A4 04 00 Lc <AID>``: an environment it has (DES ``sx1.sh.社会保障``, SM4
  ``sx3.sh.社会保障``; never SSF33) → FCI ``6F L 84 L <AID>``; the ADF ``D15600000590`` once an
  environment is selected; anything else ``6A82``;
* ``BF EC 00 00 01 xx``: initialise the environment (needs one selected, else ``6985``);
* ``BF DE <usage> <key id> Lc <factors, level 3 first><session factor>``: needs the ADF
  (``6985``). Only type ``07`` keys (encrypt/authenticate) are held, so any other type in the
  usage byte is a key it does not have: ``6A88``, as is a key id other than ``08`` (IRK) or
  ``0A`` (RKSSSE, when held). A number of levels other than that key's own → ``6A80``; Lc other
  than ``8·levels + M`` (M = 8 DES, 16 SM4) → ``6700``. The factors are applied from the end of
  the data (highest level) to its start, then the session key is derived from the session
  factor; every BF DE first forgets the previous session key;
* ``80 FA 00 00 Lc data``: encrypt whole blocks (ECB) with the session key (none: ``6985``;
  not whole blocks: ``6700``; P1 other than ``00``: ``6A86``);
* ``00 B0 96 00 06``: the terminal number, 6 bytes BCD, from EF ``0016`` by SFI;
* ``80 70 00 00 Lc <purchase data>`` (INIT SAM FOR PURCHASE, needs the DES environment's ADF,
  else ``6985``; Lc other than ``20 + 8·n``, n = 1–3 → ``6700``; no purchase key or an
  algorithm id other than ``00`` → ``6A88``; n other than the purchase key's own number of
  levels → ``6A80``): derives the card's DPK and the session key (:mod:`apdu.purse`), answers
  the terminal transaction sequence (4) ‖ MAC1 (4), then counts the sequence up. The sequence
  lives in EF ``0019``, so it survives power-off;
* ``80 72 00 00 04 <MAC2>`` (CREDIT SAM FOR PURCHASE): ``9000`` when MAC2 matches the pending
  purchase, ``9302`` when not, ``6985`` with none pending; either way the purchase is over.

PSAMs are T=0 cards: by default the answers with data come as ``61xx`` and GET RESPONSE.

A PSAM file (TOML) — a test device only, its keys are test keys::

    test_keys = true                  # required: a virtual PSAM holds test keys only
    terminal_number = "440100813475"  # 12 digits, EF 0016
    levels = 3                        # every key: 3 national roots; 2 province; 1 city keys
    issued_for = "440100"             # the city whose keys a key of 1 or 2 levels comes from
    algorithms = ["des", "sm4"]       # its environments
    roots = "test-roots.toml"         # root-key file, relative to this file
    rkssse = true                     # false: the PSAM holds no RKSSSE key

The number of levels belongs to each key, as on real PSAMs (S3-P9 §8, 附录B); instead of one
count, ``levels`` may give one per key the PSAM holds — ``irk``, ``rkssse`` (unless ``rkssse =
false``) and ``purchase`` (with a DES environment and a ``[des] dpk`` root), each 1, 2 or 3::

    levels = { irk = 3, rkssse = 2, purchase = 1 }

A key of fewer than 3 levels is the root diversified down to ``issued_for``: the province then
the city factor of spec §3.5 for the IRK and RKSSSE; for the purchase key the region id then
the issuer id of :func:`purchase_factors` (this emulator's convention: the city code in BCD,
padded with ``00``, at province and at city granularity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apdu import crypto, purse
from apdu.command import CommandApdu, ResponseApdu
from apdu.errors import ProtocolError
from apdu.psam import (
    AID_PSAM_ADF,
    CLA_PROPRIETARY,
    CLA_PSAM,
    ENVIRONMENTS,
    INS_CIPHER_DATA,
    INS_CREDIT_SAM_FOR_PURCHASE,
    INS_DELIVER_SESSION_KEY,
    INS_INIT_ENVIRONMENT,
    INS_INIT_SAM_FOR_PURCHASE,
    INS_READ_BINARY,
    KEY_IRK,
    KEY_RKSSSE,
    KEY_TYPE_AUTH,
    TERMINAL_NUMBER_LENGTH,
)
from apdu.purse import PURSE_ALG_DES
from apdu.records import CardAlgorithm
from apdu.tlv import encode_ber
from config.schema import CONTROL
from config.tomlfile import read_toml
from drivers.keyfile import (
    ALGORITHM_TABLES,
    KeyFileError,
    RootKeys,
    crypto_algorithm,
    load_root_keys,
)
from drivers.virtual.card import Behaviour, VirtualCard
from drivers.virtual.transit_psam import mac2_answer

INS_SELECT = 0xA4
P1_SELECT_BY_NAME = 0x04
SFI_TERMINAL_INFO = 0x16  # EF 0016 终端信息 (S3-P9 §5)
TAG_FCI = 0x6F
TAG_DF_NAME = 0x84
FACTOR_LEN = 8
SESSION_FACTOR_LEN = {CardAlgorithm.DES: 8, CardAlgorithm.SM4: 16}  # M (spec doc §3.5)
PSAM_HISTORICAL_PREFIX = b"\x00VPSAM"  # fictional: category 00, "VPSAM", then the terminal no.

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_CONDITIONS = 0x6985
SW_NO_CURRENT_EF = 0x6986
SW_WRONG_LEVELS = 0x6A80
SW_WRONG_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6A86
SW_KEY_NOT_FOUND = 0x6A88
SW_OUTSIDE_EF = 0x6B00
SW_MAC_INVALID = 0x9302
SW_INS_UNKNOWN = 0x6D00
SW_CLA_UNKNOWN = 0x6E00

_PSAM_KEYS = {
    "test_keys",
    "terminal_number",
    "levels",
    "issued_for",
    "algorithms",
    "roots",
    "rkssse",
}
KEY_NAMES = ("irk", "rkssse", "purchase")  # the keys of a levels table


class PsamFileError(KeyFileError):
    """A PSAM file that is unreadable or does not describe a PSAM."""


@dataclass(frozen=True, slots=True)
class KeyLevels:
    """How many diversification levels each key of a PSAM sits above the card.

    3: the national root; 2: a province (region) key; 1: a city (issuer) key.

    :param irk: the IRK (``08``)
    :param rkssse: the RKSSSE (``0A``), ``None`` when the PSAM holds none
    :param purchase: the purchase key (DPK), ``None`` when the PSAM holds none
    """

    irk: int
    rkssse: int | None = None
    purchase: int | None = None

    def lowest(self) -> int:
        """The fewest levels of any key it holds."""
        return min(n for n in (self.irk, self.rkssse, self.purchase) if n is not None)


@dataclass(frozen=True, slots=True)
class PsamConfig:
    """What a virtual PSAM holds.

    :param terminal_number: 终端机编号, 12 digits
    :param levels: each key's number of diversification levels; which keys it holds
    :param algorithms: its environments (DES, SM4)
    :param roots: the root keys its own keys come from
    :param issued_for: the city code its keys of 1 or 2 levels were issued for
    :param source: where the file was, for messages
    """

    terminal_number: str
    levels: KeyLevels
    algorithms: tuple[CardAlgorithm, ...]
    roots: RootKeys
    issued_for: str | None = None
    source: str = ""

    @property
    def rkssse(self) -> bool:
        """It holds an RKSSSE key."""
        return self.levels.rkssse is not None


def _digits(value: Any, length: int, name: str, where: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) != length
        or not (value.isascii() and value.isdigit())  # "４４０１…" is digits, not BCD
    ):
        raise PsamFileError(f"{where}: {name} must be a quoted string of {length} digits")
    return value


def _count(value: Any, name: str, source: str) -> int:
    if type(value) is not int or not 1 <= value <= 3:
        raise PsamFileError(f"{source}: {name} must be 1, 2 or 3, got {value!r}")
    return value


def _key_levels(value: Any, held: dict[str, bool], source: str) -> KeyLevels:
    """``levels``: one count for every key held, or a table with one count per key held.

    :param value: the ``levels`` value
    :param held: key name → the PSAM holds that key
    :param source: where it came from, for messages
    :raises PsamFileError: a count outside 1–3, an unknown key, a key not held, a key missing
    """
    if not isinstance(value, dict):
        count = _count(value, "levels", source)
        counts = {name: count for name in KEY_NAMES if held[name]}
    else:
        unknown = sorted(set(value) - set(KEY_NAMES))
        if unknown:
            raise PsamFileError(
                f"{source}: levels has unknown keys {unknown}; it names irk, rkssse and purchase"
            )
        for name in KEY_NAMES:
            if name in value and not held[name]:
                raise PsamFileError(
                    f"{source}: levels.{name}: the PSAM holds no {name} key"
                    + (
                        " (rkssse = false)"
                        if name == "rkssse"
                        else " (that needs the des environment and a [des] dpk root)"
                    )
                )
            if held[name] and name not in value:
                raise PsamFileError(
                    f"{source}: levels.{name} is missing: a levels table gives every key the "
                    "PSAM holds its own count"
                )
        counts = {name: _count(value[name], f"levels.{name}", source) for name in value}
    return KeyLevels(counts["irk"], counts.get("rkssse"), counts.get("purchase"))


def _algorithms(names: Any, source: str) -> tuple[CardAlgorithm, ...]:
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PsamFileError(f'{source}: algorithms must be a non-empty list like ["des", "sm4"]')
    if "ssf33" in names:
        raise PsamFileError(f"{source}: SSF33 is not public and cannot be emulated")
    strange = sorted(set(names) - set(ALGORITHM_TABLES))
    if strange:
        raise PsamFileError(f"{source}: unknown algorithms {strange}; use des and sm4")
    return tuple(ALGORITHM_TABLES[n] for n in dict.fromkeys(names))


def _roots(
    path: Path, algorithms: tuple[CardAlgorithm, ...], rkssse: bool, source: str
) -> RootKeys:
    # a test device: the committed root file needs no 0600 (test_keys is checked instead)
    roots = load_root_keys(path, require_private=False)
    if not roots.test_keys:
        raise PsamFileError(f"{source}: {path} does not say test_keys = true")
    for algorithm in algorithms:
        if algorithm not in roots.irk:
            raise PsamFileError(f"{source}: {path} has no {algorithm.name} irk")
        if rkssse and algorithm not in roots.rkssse:
            raise PsamFileError(
                f"{source}: {path} has no {algorithm.name} rkssse; set rkssse = false"
            )
    return roots


def parse_psam(data: dict[str, Any], base: Path, source: str = "psam") -> PsamConfig:
    """Build a PSAM configuration from a parsed PSAM file.

    :param data: the TOML document
    :param base: the directory ``roots`` is relative to
    :param source: where it came from, for messages
    :raises PsamFileError: unknown keys, missing or malformed values, roots that do not fit
    :raises KeyFileError: the root-key file is unreadable or malformed
    """
    unknown = sorted(set(data) - _PSAM_KEYS)
    if unknown:
        raise PsamFileError(f"{source}: unknown keys {unknown}")
    if data.get("test_keys") is not True:
        raise PsamFileError(f"{source}: a virtual PSAM holds test keys only; set test_keys = true")
    missing = sorted({"terminal_number", "levels", "algorithms", "roots"} - set(data))
    if missing:
        raise PsamFileError(f"{source}: missing required keys {missing}")
    number = _digits(data["terminal_number"], 12, "terminal_number", source)
    algorithms = _algorithms(data["algorithms"], source)
    rkssse = data.get("rkssse", True)
    if not isinstance(rkssse, bool):
        raise PsamFileError(f"{source}: rkssse must be true or false")
    if not isinstance(data["roots"], str) or not data["roots"] or CONTROL.search(data["roots"]):
        raise PsamFileError(f"{source}: roots must be the path of a root-key file")
    roots = _roots(base / data["roots"], algorithms, rkssse, source)
    held = {
        "irk": True,
        "rkssse": rkssse,
        "purchase": CardAlgorithm.DES in algorithms and roots.dpk is not None,
    }
    levels = _key_levels(data["levels"], held, source)
    issued_for = data.get("issued_for")
    if issued_for is not None:
        issued_for = _digits(issued_for, 6, "issued_for", source)
    elif levels.lowest() < 3:
        raise PsamFileError(
            f"{source}: a key of fewer than 3 levels needs issued_for (a city code)"
        )
    return PsamConfig(number, levels, algorithms, roots, issued_for, source)


def load_psam(path: str | Path) -> PsamConfig:
    """Read a PSAM file.

    :param path: the file
    :raises PsamFileError: unreadable, not TOML, or not a PSAM
    :raises KeyFileError: its root-key file is unreadable or malformed
    """
    path = Path(path)
    data = read_toml(path, PsamFileError, what="PSAM file")
    return parse_psam(data, path.parent, str(path))


def issuer_id(city_code: str) -> bytes:
    """The issuer-level purchase factor of an emulated card: its city code in BCD, padded
    with ``00`` (``4401000000000000``). This emulator's convention: the factors above the
    card are not public.

    :param city_code: six digits
    """
    return bytes.fromhex(city_code).ljust(purse.FACTOR_LEN, b"\x00")


def region_id(city_code: str) -> bytes:
    """The region-level purchase factor of an emulated card: its province's two digits in
    BCD, padded with ``00`` (``4400000000000000``); the same convention as :func:`issuer_id`.

    :param city_code: six digits
    """
    return bytes.fromhex(city_code[:2]).ljust(purse.FACTOR_LEN, b"\x00")


def purchase_factors(card_serial: bytes, city_code: str) -> tuple[bytes, bytes, bytes]:
    """The purchase factors of an emulated card, card level first: serial, issuer, region.

    :param card_serial: the 8-byte card application serial
    :param city_code: the card's six-digit city code
    """
    return card_serial, issuer_id(city_code), region_id(city_code)


def _above(levels: int, makers: Sequence[Callable[[str], bytes]], city: str) -> list[bytes]:
    # S3-P9 §8: a 2-level key is the root diversified by the top factor, a 1-level key by two
    return [make(city) for make in makers[: 3 - levels]]


def held_keys(config: PsamConfig) -> dict[tuple[CardAlgorithm, int], bytes]:
    """The IRK and RKSSSE a PSAM holds: each the root for 3 levels, else the ``issued_for``
    province key (2 levels) or city key (1 level), each key at its own number of levels.

    :param config: the PSAM configuration
    """
    keys: dict[tuple[CardAlgorithm, int], bytes] = {}
    city = config.issued_for or ""
    makers = [crypto.province_factor, crypto.city_factor]
    for algorithm in config.algorithms:
        alg = crypto_algorithm(algorithm)
        roots = {KEY_IRK: (config.roots.irk[algorithm], config.levels.irk)}
        if config.levels.rkssse is not None:
            roots[KEY_RKSSSE] = (config.roots.rkssse[algorithm], config.levels.rkssse)
        for key_id, (root, levels) in roots.items():
            keys[algorithm, key_id] = crypto.diversify_levels(
                alg, root, _above(levels, makers, city)
            )
    return keys


def held_purchase_key(config: PsamConfig) -> bytes | None:
    """The purchase key a PSAM holds: the DPK root for 3 levels, else the ``issued_for``
    region key (2) or issuer key (1) of :func:`purchase_factors`; ``None`` without one.

    :param config: the PSAM configuration
    """
    levels, root = config.levels.purchase, config.roots.dpk
    if levels is None or root is None:
        return None
    city = config.issued_for or ""
    return crypto.diversify_levels(
        crypto.Algorithm.DES, root, _above(levels, [region_id, issuer_id], city)
    )


def _fci(aid: bytes) -> bytes:
    return encode_ber(TAG_FCI, encode_ber(TAG_DF_NAME, aid))


def _sw(sw: int) -> ResponseApdu:
    return ResponseApdu(b"", sw)


class VirtualPsam(VirtualCard):
    """A PSAM that answers like the chip (see the module docstring).

    :param config: what it holds, from :func:`load_psam`
    :param behaviour: switchable behaviours; T=0 by default, like real PSAMs
    """

    def __init__(self, config: PsamConfig, behaviour: Behaviour | None = None) -> None:
        number = bytes.fromhex(config.terminal_number)
        super().__init__(PSAM_HISTORICAL_PREFIX + number, behaviour or Behaviour(t0=True))
        self.config = config
        self.terminal_number = number
        self.keys = held_keys(config)
        self.purchase_key = held_purchase_key(config)
        self.terminal_sequence = 1  # EF 0019: kept across power-off
        self.reset_state()

    def reset_state(self) -> None:
        """Power-on state: no environment, no ADF, no session key."""
        self.environment: CardAlgorithm | None = None
        self.adf_selected = False
        self.session_key: bytes | None = None
        self.pending_purchase: tuple[bytes, int] | None = None  # (SESPK, amount)

    def handle(self, command: CommandApdu) -> ResponseApdu:
        """Answer one command.

        :param command: the parsed command
        """
        handlers = {
            (0x00, INS_SELECT): self._select,
            (CLA_PSAM, INS_INIT_ENVIRONMENT): self._init_environment,
            (CLA_PSAM, INS_DELIVER_SESSION_KEY): self._deliver_session_key,
            (CLA_PROPRIETARY, INS_CIPHER_DATA): self._cipher,
            (0x00, INS_READ_BINARY): self._read_binary,
            (CLA_PROPRIETARY, INS_INIT_SAM_FOR_PURCHASE): self._init_for_purchase,
            (CLA_PROPRIETARY, INS_CREDIT_SAM_FOR_PURCHASE): self._credit_for_purchase,
        }
        handler = handlers.get((command.cla, command.ins))
        if handler is not None:
            return handler(command)
        if any(ins == command.ins for _, ins in handlers):
            return _sw(SW_CLA_UNKNOWN)
        return _sw(SW_INS_UNKNOWN)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 != P1_SELECT_BY_NAME:
            return _sw(SW_WRONG_P1P2)  # only selection by AID is emulated
        for algorithm in self.config.algorithms:
            if command.data == ENVIRONMENTS[algorithm]:
                self.reset_state()
                self.environment = algorithm
                return ResponseApdu(_fci(command.data), SW_OK)
        if command.data == AID_PSAM_ADF and self.environment is not None:
            self.adf_selected = True
            self.session_key = None
            return ResponseApdu(_fci(command.data), SW_OK)
        return _sw(SW_FILE_NOT_FOUND)

    def _init_environment(self, command: CommandApdu) -> ResponseApdu:
        if self.environment is None:
            return _sw(SW_CONDITIONS)
        if command.p1 or command.p2:
            return _sw(SW_WRONG_P1P2)
        if len(command.data) != 1:
            return _sw(SW_WRONG_LENGTH)
        return _sw(SW_OK)

    def _deliver_session_key(self, command: CommandApdu) -> ResponseApdu:
        if not self.adf_selected or self.environment is None:
            return _sw(SW_CONDITIONS)
        self.session_key = None
        levels, key_type = command.p1 >> 5, command.p1 & 0x1F
        key = self.keys.get((self.environment, command.p2))
        if key_type != KEY_TYPE_AUTH or key is None:
            return _sw(SW_KEY_NOT_FOUND)
        own = self.config.levels.irk if command.p2 == KEY_IRK else self.config.levels.rkssse
        if levels != own:
            return _sw(SW_WRONG_LEVELS)
        factor_bytes = FACTOR_LEN * levels
        if len(command.data) != factor_bytes + SESSION_FACTOR_LEN[self.environment]:
            return _sw(SW_WRONG_LENGTH)
        factors = [command.data[i : i + FACTOR_LEN] for i in range(0, factor_bytes, FACTOR_LEN)]
        alg = crypto_algorithm(self.environment)
        # the data lists level 3 first; derivation runs from the held key downwards
        card_key = crypto.diversify_levels(alg, key, factors[::-1])
        self.session_key = crypto.session_key(alg, card_key, command.data[factor_bytes:])
        return _sw(SW_OK)

    def _cipher(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 or command.p2:
            return _sw(SW_WRONG_P1P2)  # only P1 00: encrypt the last (only) block
        if self.session_key is None or self.environment is None:
            return _sw(SW_CONDITIONS)
        alg = crypto_algorithm(self.environment)
        if not command.data or len(command.data) % alg.block_size:
            return _sw(SW_WRONG_LENGTH)
        return ResponseApdu(crypto.encrypt(alg, self.session_key, command.data), SW_OK)

    def _read_binary(self, command: CommandApdu) -> ResponseApdu:
        if not command.p1 & 0x80:
            return _sw(SW_NO_CURRENT_EF)  # only reads by SFI are emulated
        if command.p1 & 0x60:
            return _sw(SW_WRONG_P1P2)
        if command.p1 & 0x1F != SFI_TERMINAL_INFO:
            return _sw(SW_FILE_NOT_FOUND)
        if command.p2 >= TERMINAL_NUMBER_LENGTH:
            return _sw(SW_OUTSIDE_EF)
        return self.fit_le(command, self.terminal_number[command.p2 :], self.behaviour.t0)

    def _init_for_purchase(self, command: CommandApdu) -> ResponseApdu:
        self.pending_purchase = None
        if command.p1 or command.p2:
            return _sw(SW_WRONG_P1P2)
        if not self.adf_selected or self.environment != CardAlgorithm.DES:
            return _sw(SW_CONDITIONS)
        levels = purse.mac1_levels(len(command.data))
        if levels is None:
            return _sw(SW_WRONG_LENGTH)
        try:
            request = purse.parse_mac1_data(command.data)
        except ProtocolError:
            return _sw(SW_WRONG_DATA)
        if self.purchase_key is None or request.algorithm_id != PURSE_ALG_DES:
            return _sw(SW_KEY_NOT_FOUND)
        if levels != self.config.levels.purchase:
            return _sw(SW_WRONG_LEVELS)
        sequence = self.terminal_sequence
        dpk = purse.card_purchase_key(self.purchase_key, request)
        sespk = purse.session_key(dpk, request, sequence)
        mac1 = purse.mac1(sespk, request, self.config.terminal_number)
        self.terminal_sequence = (sequence + 1) & 0xFFFFFFFF
        self.pending_purchase = (sespk, request.amount)
        return ResponseApdu(sequence.to_bytes(4, "big") + mac1, SW_OK)

    def _credit_for_purchase(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 or command.p2:
            return _sw(SW_WRONG_P1P2)
        pending, self.pending_purchase = self.pending_purchase, None
        return mac2_answer(command.data, pending)
