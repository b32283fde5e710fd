"""Social security card cryptography: DES/3DES and SM4 blocks, key diversification, session
keys, authentication data and MACs (spec §3.5–§3.6, after S3-P4 and S3-P9).

The card names its algorithm in the SSSE FCI, tag ``9F0C`` → ``86`` (spec §1). DES and SM4 are
computed here. SSF33 is not public: only a PSAM or an HSM can compute with it (spec §3.5, §3.7),
so every function given :attr:`Algorithm.SSF33` raises :class:`UnsupportedAlgorithm`.

Everything is pure: bytes in, bytes out, no I/O and no state. Keys are plain ``bytes``:
8 bytes for a single-length DES key, 16 for a double-length one (``K1 K2``, used as
``K1 K2 K1``), 16 for SM4.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import SM4

from apdu.errors import SscardError

try:  # cryptography >= 43 keeps 3DES among the "decrepit" ciphers
    from cryptography.hazmat.decrepit.ciphers import algorithms as _legacy
except ImportError:  # pragma: no cover - cryptography 42 still has it with the primitives
    from cryptography.hazmat.primitives.ciphers import algorithms as _legacy  # type: ignore[no-redef]

DES_BLOCK = 8
SM4_BLOCK = 16
SM4_KEY_LEN = 16
DES_SINGLE_KEY_LEN = 8
DES_DOUBLE_KEY_LEN = 16
DES_TRIPLE_KEY_LEN = 24
FACTOR_LEN = 8  # spec §3.5: every diversification factor is 8 bytes
ORIGINAL_LEN = 8  # spec §3.4: INTERNAL/EXTERNAL AUTHENTICATE original data
MAC_LEN = 4  # spec §3.6: the MAC is the first 4 bytes
CITY_CODE_LEN = 6
HISTORICAL_LEN = 13  # spec §3.5 L3: T1…T13
CARD_FACTOR = slice(5, 13)  # spec §3.5 L3: T6…T13, T1 being the first historical byte
PROVINCE_SUFFIX = b"0000sh"  # spec §3.5 L1: 30 30 30 30 73 68
CITY_SUFFIX = b"sx"  # spec §3.5 L2: 73 78
ZHEJIANG_PREFIX = "33"
ZHEJIANG_SUFFIX = b"00sx"  # spec §3.5 L2: Zhejiang uses 4 digits + 30 30 73 78
PAD_MARKER = b"\x80"  # ISO/IEC 9797-1 padding method 2


class Algorithm(enum.IntEnum):
    """The card's algorithm id from the SSSE FCI, tag ``9F0C`` → ``86`` (spec §1, S4 §10.1)."""

    DES = 0x01  # DES and 3DES, 8-byte block
    SSF33 = 0x02  # not public; 16-byte block
    SM4 = 0x03  # GB/T 32907-2016, 16-byte block

    @property
    def block_size(self) -> int:
        """Return the block length in bytes: 8 for DES/3DES, 16 for SSF33 and SM4."""
        return DES_BLOCK if self is Algorithm.DES else SM4_BLOCK


class UnsupportedAlgorithm(SscardError):
    """An algorithm that only a PSAM or an HSM can compute with (SSF33, spec §3.5, §3.7).

    :param algorithm: the algorithm that was asked for
    """

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        super().__init__(
            f"{algorithm.name} is not a public algorithm: it can only be served by a PSAM or an HSM"
        )


# --- block ciphers --------------------------------------------------------------------------


def des_encrypt(key: bytes, block: bytes) -> bytes:
    """Encrypt whole 8-byte blocks with DES or 3DES in ECB mode.

    :param key: 8 bytes (single DES), 16 bytes (2-key 3DES, ``K1 K2 K1``) or 24 bytes
    :param block: one or more whole 8-byte blocks
    :raises ValueError: on a key or data length that does not fit
    """
    return _ecb(_des_cipher(key), block, decrypt=False)


def des_decrypt(key: bytes, block: bytes) -> bytes:
    """Decrypt whole 8-byte blocks with DES or 3DES in ECB mode.

    :param key: 8 bytes (single DES), 16 bytes (2-key 3DES, ``K1 K2 K1``) or 24 bytes
    :param block: one or more whole 8-byte blocks
    :raises ValueError: on a key or data length that does not fit
    """
    return _ecb(_des_cipher(key), block, decrypt=True)


def sm4_encrypt(key: bytes, data: bytes) -> bytes:
    """Encrypt whole 16-byte blocks with SM4 (GB/T 32907-2016) in ECB mode.

    :param key: 16 bytes
    :param data: one or more whole 16-byte blocks
    :raises ValueError: on a key or data length that does not fit
    """
    return _ecb(_sm4_cipher(key), data, decrypt=False)


def sm4_decrypt(key: bytes, data: bytes) -> bytes:
    """Decrypt whole 16-byte blocks with SM4 (GB/T 32907-2016) in ECB mode.

    :param key: 16 bytes
    :param data: one or more whole 16-byte blocks
    :raises ValueError: on a key or data length that does not fit
    """
    return _ecb(_sm4_cipher(key), data, decrypt=True)


def encrypt(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks in ECB mode with the card's algorithm.

    :param alg: the card algorithm
    :param key: a key of a length the algorithm takes
    :param data: one or more whole blocks of ``alg.block_size``
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a key or data length that does not fit
    """
    if _computable(alg) is Algorithm.DES:
        return des_encrypt(key, data)
    return sm4_encrypt(key, data)


def decrypt(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    """Decrypt whole blocks in ECB mode with the card's algorithm: the inverse of
    :func:`encrypt`, with its parameters and errors."""
    if _computable(alg) is Algorithm.DES:
        return des_decrypt(key, data)
    return sm4_decrypt(key, data)


# --- key diversification (spec §3.5) --------------------------------------------------------


def province_factor(city_code: str) -> bytes:
    """Build the level-1 (province) diversification factor.

    :param city_code: the 6-digit issuing city code (the first 3 bytes of 卡识别码)
    :raises ValueError: when ``city_code`` is not 6 ASCII digits
    """
    # spec §3.5 L1: ASCII of the first 2 digits + "0000sh"
    return _city_digits(city_code)[:2] + PROVINCE_SUFFIX


def city_factor(city_code: str) -> bytes:
    """Build the level-2 (city) diversification factor.

    :param city_code: the 6-digit issuing city code (the first 3 bytes of 卡识别码)
    :raises ValueError: when ``city_code`` is not 6 ASCII digits
    """
    digits = _city_digits(city_code)
    if city_code.startswith(ZHEJIANG_PREFIX):
        # spec §3.5 L2: Zhejiang (33…) uses 4 digits + "00sx"
        return digits[:4] + ZHEJIANG_SUFFIX
    # spec §3.5 L2: ASCII of the 6 digits + "sx"
    return digits + CITY_SUFFIX


def card_factor(historical: bytes) -> bytes:
    """Build the level-3 (card) diversification factor from the ATR historical bytes.

    The factor is T6…T13 (card-maker id, region, serial), T1 being the first historical byte;
    for the usual 13-byte string that is its last 8 bytes. Bytes after T13 are ignored.

    :param historical: the ATR historical bytes, at least 13 of them
    :raises ValueError: when fewer than 13 historical bytes are given
    """
    if len(historical) < HISTORICAL_LEN:
        raise ValueError(
            f"the card factor needs ATR historical bytes T1…T13, got {len(historical)} bytes"
        )
    # spec §3.5 L3: T6…T13
    return bytes(historical[CARD_FACTOR])


def diversify(alg: Algorithm, key: bytes, factor: bytes) -> bytes:
    """Derive the sub-key one level down from ``key`` (spec §3.5, S3-P9 §7.1.1, §7.2.1).

    * single-length DES key: ``DES_K(f)`` (8 bytes);
    * double-length DES key: ``3DES_K(f) || 3DES_K(~f)`` (16 bytes), ``~`` being bitwise NOT;
    * SM4: ``SM4_K(f || ~f)`` (16 bytes). The spec states this rule for SSF33 and only presumes
      SM4 follows it.

    :param alg: the card algorithm
    :param key: the parent key: 8 or 16 bytes for DES, 16 for SM4
    :param factor: an 8-byte factor, see :func:`province_factor`, :func:`city_factor` and
        :func:`card_factor`
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a key or factor length that does not fit
    """
    alg = _computable(alg)
    if len(factor) != FACTOR_LEN:
        raise ValueError(f"a diversification factor is {FACTOR_LEN} bytes, got {len(factor)}")
    doubled = factor + bytes(b ^ 0xFF for b in factor)
    if alg is Algorithm.SM4:
        return sm4_encrypt(key, doubled)
    if len(key) == DES_SINGLE_KEY_LEN:
        return des_encrypt(key, factor)
    if len(key) == DES_DOUBLE_KEY_LEN:
        # ECB over f || ~f is 3DES_K(f) || 3DES_K(~f)
        return des_encrypt(key, doubled)
    raise ValueError(f"DES diversification takes an 8- or 16-byte key, got {len(key)} bytes")


def diversify_levels(alg: Algorithm, root_key: bytes, factors: Sequence[bytes]) -> bytes:
    """Derive a key through several levels, root first (spec §3.5, figure 12 of S3-P9).

    PSAM commands list the same factors the other way round (level 3 first, spec §3.5).

    :param alg: the card algorithm
    :param root_key: the key the first factor applies to
    :param factors: the factors in the order they are applied, e.g. L1, L2, L3
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a key or factor length that does not fit
    """
    alg = _computable(alg)
    key = bytes(root_key)
    for factor in factors:
        key = diversify(alg, key, factor)
    return key


def card_key(
    alg: Algorithm, root_key: bytes, city_code: str, historical: bytes, levels: int = 3
) -> bytes:
    """Derive a card's own key from a root key of 1, 2 or 3 levels (spec §3.5, S3-P9 §8).

    With 3 levels the root is national and the factors are L1, L2, L3; with 2 the root is a
    province key (L2, L3); with 1 it is a city key (L3 only).

    :param alg: the card algorithm
    :param root_key: the root key
    :param city_code: the 6-digit issuing city code
    :param historical: the ATR historical bytes, at least 13 of them
    :param levels: how many levels lie between the root key and the card key, 1 to 3
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a bad level count, city code, historical bytes or key length
    """
    if not 1 <= levels <= 3:
        raise ValueError(f"a root key has 1, 2 or 3 levels, got {levels}")
    factors = (province_factor(city_code), city_factor(city_code), card_factor(historical))
    return diversify_levels(alg, root_key, factors[-levels:])


# --- session keys, authentication data, MAC (spec §3.6) -------------------------------------


def session_key(alg: Algorithm, key: bytes, random: bytes) -> bytes:
    """Derive a session key from a card key and a random (spec §3.6, S3-P4 §8.4).

    DES: the 4- or 8-byte random is right-padded with ``00`` to 8 bytes and encrypted;
    with a double-length key that is ``E_L(D_R(E_L(in)))``, plain 2-key 3DES. The session key
    is 8 bytes. SM4: the 4-, 8- or 16-byte random is right-padded with ``00`` to 16 bytes and
    encrypted; the session key is 16 bytes.

    :param alg: the card algorithm
    :param key: the card key: 8 or 16 bytes for DES, 16 for SM4
    :param random: the card's challenge (the process factor)
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a key or random length that does not fit
    """
    alg = _computable(alg)
    allowed = (4, 8) if alg is Algorithm.DES else (4, 8, 16)
    if len(random) not in allowed:
        raise ValueError(f"a {alg.name} session random is {allowed} bytes, got {len(random)}")
    if alg is Algorithm.DES:
        _check_des_key(key, "a DES session key derivation")
    return encrypt(alg, key, random.ljust(alg.block_size, b"\x00"))


def auth_data(alg: Algorithm, key: bytes, original: bytes) -> bytes:
    """Compute the 8-byte authentication data for INTERNAL/EXTERNAL AUTHENTICATE.

    DES: ``E_SK(original)`` with single DES (8-byte session key) or 3DES (16-byte).
    SM4: ``E_SK(original || 00×8)``, its left half XOR its right half (spec §3.6, S3-P9 §9.4).

    :param alg: the card algorithm
    :param key: the session key, see :func:`session_key`
    :param original: the 8-byte original data
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a key or data length that does not fit
    """
    alg = _computable(alg)
    if len(original) != ORIGINAL_LEN:
        raise ValueError(f"original data is {ORIGINAL_LEN} bytes, got {len(original)}")
    if alg is Algorithm.DES:
        _check_des_key(key, "DES authentication data")
        return des_encrypt(key, original)
    block = sm4_encrypt(key, original + bytes(SM4_BLOCK - ORIGINAL_LEN))
    return _xor(block[:8], block[8:])


def iso9797_pad(data: bytes, block_size: int) -> bytes:
    """Pad with ISO/IEC 9797-1 method 2: ``80`` then ``00`` up to a whole block, always.

    :param data: the message
    :param block_size: 8 or 16
    :raises ValueError: on a block size other than 8 or 16
    """
    if block_size not in (DES_BLOCK, SM4_BLOCK):
        raise ValueError(f"block size is {DES_BLOCK} or {SM4_BLOCK}, got {block_size}")
    padded = bytes(data) + PAD_MARKER
    return padded + bytes(-len(padded) % block_size)


def mac(
    alg: Algorithm, key: bytes, data: bytes, iv: bytes | None = None, *, retail: bool = True
) -> bytes:
    """Compute the 4-byte MAC of ``data`` (spec §3.6, S3-P4 §7).

    Padding is ISO/IEC 9797-1 method 2, applied even to whole blocks; the chain is CBC.

    * DES, single-length key: ISO/IEC 9797-1 MAC algorithm 1 (DES CBC-MAC), first 4 bytes.
    * DES, double-length key: by default the PBOC "retail MAC", ISO/IEC 9797-1 MAC algorithm 3:
      DES CBC with K1 over every block, then ``E_K1(D_K2(last))``. This is what PBOC/EMV
      cards compute for line-protection MACs with a double-length key. ``retail=False`` gives
      full 3DES CBC instead (every block under ``K1 K2 K1``), which some HSMs offer.
    * SM4: SM4 CBC over 16-byte blocks. The spec folds the 16-byte result "by XOR into
      4 bytes"; this takes the left 8 bytes XOR the right 8 bytes, then the first 4 bytes.
      That is the same 16 → 8 fold the spec prescribes for authentication data (S3-P9 §9.4)
      followed by the DES rule "first 4 bytes", and to our knowledge the common reading in
      PBOC-style SM4 implementations. XOR of the four 4-byte words would be another reading;
      no published SSC vector settles it [inferred], so check against a PSAM or an HSM trace
      before relying on SM4 MACs.

    :param alg: the card algorithm
    :param key: 8 or 16 bytes for DES, 16 for SM4
    :param data: the message, any length
    :param iv: the initial chaining value, zeros when omitted. A 4- or 8-byte challenge (or
        16 bytes for SM4) is right-padded with ``00`` to a block, as the spec pads randoms.
    :param retail: for a double-length DES key, retail MAC (True) or full 3DES CBC (False)
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: on a key or IV length that does not fit
    """
    alg = _computable(alg)
    size = alg.block_size
    chain = _mac_iv(iv, size)
    padded = iso9797_pad(data, size)
    if alg is Algorithm.SM4:
        last = _cbc_last(_sm4_cipher(key), chain, padded)
        return _xor(last[:8], last[8:])[:MAC_LEN]
    _check_des_key(key, "a DES MAC")
    if len(key) == DES_DOUBLE_KEY_LEN and retail:
        left, right = key[:DES_SINGLE_KEY_LEN], key[DES_SINGLE_KEY_LEN:]
        last = _cbc_last(_des_cipher(left), chain, padded)
        last = des_encrypt(left, des_decrypt(right, last))
    else:
        last = _cbc_last(_des_cipher(key), chain, padded)
    return last[:MAC_LEN]


# --- helpers --------------------------------------------------------------------------------


def _computable(alg: Algorithm) -> Algorithm:
    """Return ``alg`` as an :class:`Algorithm` if this module can compute with it.

    :param alg: an algorithm id
    :raises UnsupportedAlgorithm: for SSF33
    :raises ValueError: for an id that is no algorithm
    """
    alg = Algorithm(alg)
    if alg is Algorithm.SSF33:
        raise UnsupportedAlgorithm(alg)
    return alg


def _des_cipher(key: bytes) -> BlockCipherAlgorithm:
    """Return the cryptography cipher for a single, double or triple-length DES key.

    :param key: 8, 16 or 24 bytes
    :raises ValueError: on any other length
    """
    # cryptography computes single DES as 3DES with K1 = K2 = K3, and deprecates the short
    # key forms, so every key is expanded to 24 bytes here.
    if len(key) == DES_SINGLE_KEY_LEN:
        return _legacy.TripleDES(bytes(key) * 3)
    if len(key) == DES_DOUBLE_KEY_LEN:
        return _legacy.TripleDES(bytes(key) + key[:DES_SINGLE_KEY_LEN])
    if len(key) == DES_TRIPLE_KEY_LEN:
        return _legacy.TripleDES(bytes(key))
    raise ValueError(f"a DES key is 8, 16 or 24 bytes, got {len(key)}")


def _sm4_cipher(key: bytes) -> BlockCipherAlgorithm:
    """Return the cryptography cipher for an SM4 key.

    :param key: 16 bytes
    :raises ValueError: on any other length
    """
    if len(key) != SM4_KEY_LEN:
        raise ValueError(f"an SM4 key is {SM4_KEY_LEN} bytes, got {len(key)}")
    return SM4(bytes(key))


def _check_des_key(key: bytes, purpose: str) -> None:
    """Accept only the single- and double-length DES keys the card spec uses.

    :param key: the key
    :param purpose: what the key is for, for the error message
    :raises ValueError: on a length other than 8 or 16
    """
    if len(key) not in (DES_SINGLE_KEY_LEN, DES_DOUBLE_KEY_LEN):
        raise ValueError(f"{purpose} takes an 8- or 16-byte key, got {len(key)} bytes")


def _ecb(cipher: BlockCipherAlgorithm, data: bytes, *, decrypt: bool) -> bytes:
    """Run ``cipher`` in ECB mode over whole blocks.

    :param cipher: the block cipher with its key
    :param data: one or more whole blocks
    :param decrypt: decrypt rather than encrypt
    :raises ValueError: when ``data`` is empty or not whole blocks
    """
    size = cipher.block_size // 8
    if not data or len(data) % size:
        raise ValueError(f"{cipher.name} needs whole {size}-byte blocks, got {len(data)} bytes")
    ecb = Cipher(cipher, modes.ECB())
    context = ecb.decryptor() if decrypt else ecb.encryptor()
    return context.update(bytes(data)) + context.finalize()


def _cbc_last(cipher: BlockCipherAlgorithm, iv: bytes, data: bytes) -> bytes:
    """Return the last block of the CBC encryption of whole blocks (a CBC-MAC).

    :param cipher: the block cipher with its key
    :param iv: one block
    :param data: one or more whole blocks
    """
    context = Cipher(cipher, modes.CBC(iv)).encryptor()
    return (context.update(data) + context.finalize())[-len(iv) :]


def _mac_iv(iv: bytes | None, size: int) -> bytes:
    """Return the MAC's initial chaining block.

    :param iv: None for zeros, or 4, 8 (or, for 16-byte blocks, 16) bytes to right-pad
    :param size: the block size
    :raises ValueError: on an IV of another length
    """
    if iv is None:
        return bytes(size)
    allowed = tuple(n for n in (4, 8, 16) if n <= size)
    if len(iv) not in allowed:
        raise ValueError(f"a MAC IV for {size}-byte blocks is {allowed} bytes, got {len(iv)}")
    return bytes(iv).ljust(size, b"\x00")


def _city_digits(city_code: str) -> bytes:
    """Return the ASCII bytes of a 6-digit city code.

    :param city_code: the city code
    :raises ValueError: when it is not 6 ASCII digits
    """
    if len(city_code) != CITY_CODE_LEN or not (city_code.isascii() and city_code.isdigit()):
        raise ValueError(f"a city code is {CITY_CODE_LEN} ASCII digits, got {city_code!r}")
    return city_code.encode("ascii")


def _xor(left: bytes, right: bytes) -> bytes:
    """Return the bytewise XOR of two equal-length byte strings.

    :param left: the first operand
    :param right: the second operand, as long as the first
    :raises ValueError: when the lengths differ
    """
    return bytes(a ^ b for a, b in zip(left, right, strict=True))
