"""SM2 signatures with SM3 (GM/T 0003.2-2012, GB/T 32918.2-2016), two backends, same answers.

* ``tongsuopy`` — Tongsuo (an OpenSSL fork) through cffi, about 0.3 ms per verify; installed
  from wheels on x86_64 only;
* ``pysmx`` — snowland-smx, pure Python, about 4 ms per verify; everywhere.

:data:`BACKEND` is the native one when ``tongsuopy`` imports, else the pure one; both are
importable by name with :func:`get_backend` (the tests cross-check them on the same
signatures). Keys travel as bytes: a private key is the 32-byte big-endian scalar ``d``, a
public key the 65-byte uncompressed point ``04 ‖ x ‖ y``, a signature the 64 bytes ``r ‖ s``.

The signed digest is ``e = SM3(Z_A ‖ M)`` with ``Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖
x_A ‖ y_A)`` and the default user id ``ID_A = "1234567812345678"`` (GM/T 0009-2012 §10). The
checks that decide an answer before the curve arithmetic — lengths, ``r, s ∈ [1, n−1]``
(GB/T 32918.2 §7.1 B1, B2) and the point being on the curve — run here, once, for both
backends.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ecard.errors import KeyFormatError

try:
    from tongsuopy.crypto import hashes as t_hashes
    from tongsuopy.crypto import serialization as t_serialization
    from tongsuopy.crypto.asymciphers import ec as t_ec
    from tongsuopy.crypto.exceptions import InvalidSignature as TongsuoInvalidSignature
except ImportError:  # tongsuopy ships x86_64 wheels only: elsewhere the pure backend serves
    t_ec = None

__all__ = [
    "BACKEND",
    "BACKEND_NAME",
    "PRIVATE_KEY_LEN",
    "PUBLIC_KEY_LEN",
    "SIGNATURE_LEN",
    "USER_ID",
    "Sm2Backend",
    "available_backends",
    "check_private_key",
    "check_public_key",
    "generate_key",
    "get_backend",
    "public_key",
    "sign",
    "sm3",
    "verify",
]

log = logging.getLogger(__name__)

USER_ID = b"1234567812345678"  # GM/T 0009-2012 §10: the default signer identity
# the recommended curve of GM/T 0003.5-2012 (sm2p256v1)
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

PRIVATE_KEY_LEN = 32
PUBLIC_KEY_LEN = 65
SIGNATURE_LEN = 64
_COORD = 32
_UNCOMPRESSED = 0x04
_CACHE = 256  # keys kept ready per backend: the trust list's and recent devices'


def sm3(data: bytes) -> bytes:
    """SM3 (GB/T 32905-2016) of ``data``, from ``cryptography``.

    :param data: the message
    :raises: nothing
    """
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def check_public_key(public: bytes) -> tuple[int, int]:
    """Check an uncompressed SM2 point and return its coordinates.

    :param public: ``04 ‖ x ‖ y``, 65 bytes
    :raises KeyFormatError: wrong length or prefix, coordinates not below ``p``, or a point
        that is not on the curve
    """
    if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_LEN:
        raise KeyFormatError(f"an SM2 public key is {PUBLIC_KEY_LEN} bytes (04 ‖ x ‖ y)")
    if public[0] != _UNCOMPRESSED:
        raise KeyFormatError("an SM2 public key must be an uncompressed point (04 ‖ x ‖ y)")
    x = int.from_bytes(public[1 : 1 + _COORD], "big")
    y = int.from_bytes(public[1 + _COORD :], "big")
    if x >= P or y >= P or (y * y - (x * x * x + A * x + B)) % P:
        raise KeyFormatError("the SM2 public key is not a point on the curve")
    return x, y


def check_private_key(private: bytes) -> int:
    """Check an SM2 private scalar and return it.

    :param private: ``d``, 32 bytes big-endian, ``1 ≤ d ≤ n − 2``
    :raises KeyFormatError: wrong length or out of range
    """
    if not isinstance(private, bytes) or len(private) != PRIVATE_KEY_LEN:
        raise KeyFormatError(f"an SM2 private key is {PRIVATE_KEY_LEN} bytes")
    d = int.from_bytes(private, "big")
    if not 1 <= d <= N - 2:
        raise KeyFormatError("the SM2 private key is out of range [1, n-2]")
    return d


def _split_signature(signature: bytes) -> tuple[int, int] | None:
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
        return None
    r = int.from_bytes(signature[:_COORD], "big")
    s = int.from_bytes(signature[_COORD:], "big")
    if not (1 <= r < N and 1 <= s < N):  # GB/T 32918.2 §7.1 B1, B2
        return None
    return r, s


@functools.lru_cache(maxsize=_CACHE)
def _z(public: bytes) -> bytes:
    entl = (len(USER_ID) * 8).to_bytes(2, "big")
    fields = b"".join(v.to_bytes(_COORD, "big") for v in (A, B, GX, GY))
    return sm3(entl + USER_ID + fields + public[1:])


def digest(public: bytes, message: bytes) -> bytes:
    """The signed digest ``e = SM3(Z_A ‖ M)`` with the default user id.

    :param public: the signer's checked public key
    :param message: ``M``
    :raises: nothing
    """
    return sm3(_z(public) + message)


class Sm2Backend(Protocol):
    """One SM2 implementation. Inputs are already checked by the module functions."""

    name: str

    def public_key(self, d: int) -> bytes:
        """The public point of the private scalar ``d``."""
        ...

    def sign_checked(self, d: int, public: bytes, message: bytes) -> bytes:
        """Sign; returns ``r ‖ s``."""
        ...

    def verify_checked(self, public: bytes, message: bytes, r: int, s: int) -> bool:
        """Verify ``(r, s)``, both already in ``[1, n − 1]``."""
        ...


class NativeBackend:
    """SM2 through ``tongsuopy`` (Tongsuo, C).

    :raises ImportError: ``tongsuopy`` is not installed
    """

    name = "tongsuopy"

    def __init__(self) -> None:
        if t_ec is None:
            raise ImportError("tongsuopy is not installed")
        self._ec = t_ec
        self._curve = t_ec.SM2()
        self._algorithm = t_ec.ECDSA(t_hashes.SM3())
        self._invalid = TongsuoInvalidSignature
        self._x962 = t_serialization.Encoding.X962
        self._point = t_serialization.PublicFormat.UncompressedPoint
        self._public = functools.lru_cache(maxsize=_CACHE)(self._load_public)
        self._private = functools.lru_cache(maxsize=16)(self._load_private)

    def _load_public(self, public: bytes) -> Any:
        return self._ec.EllipticCurvePublicKey.from_encoded_point(self._curve, public)

    def _load_private(self, d: int) -> Any:
        return self._ec.derive_private_key(d, self._curve)

    def public_key(self, d: int) -> bytes:
        """The public point of ``d``.

        :param d: the private scalar
        :raises: nothing
        """
        key = self._private(d).public_key()
        return bytes(key.public_bytes(self._x962, self._point))

    def sign_checked(self, d: int, public: bytes, message: bytes) -> bytes:
        """Sign ``message`` (Tongsuo uses the default user id).

        :param d: the private scalar
        :param public: its public point (unused: Tongsuo derives ``Z_A`` itself)
        :param message: ``M``
        :raises: nothing
        """
        r, s = decode_dss_signature(self._private(d).sign(message, self._algorithm))
        return r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")

    def verify_checked(self, public: bytes, message: bytes, r: int, s: int) -> bool:
        """Verify ``(r, s)`` over ``message``.

        :param public: the checked public point
        :param message: ``M``
        :param r: in ``[1, n − 1]``
        :param s: in ``[1, n − 1]``
        :raises: nothing
        """
        try:
            self._public(public).verify(encode_dss_signature(r, s), message, self._algorithm)
        except self._invalid:
            return False
        return True


class PureBackend:
    """SM2 through ``pysmx`` (snowland-smx, pure Python); SM3 from ``cryptography``."""

    name = "pysmx"

    def __init__(self) -> None:
        # imported here: pysmx also loads its SM9 module, 0.2 s of start-up every terminal
        # with the native backend would pay for nothing
        from pysmx import SM2 as PYSMX  # noqa: PLC0415

        self._sign, self._verify, self._kg, self._g = (
            PYSMX.Sign,
            PYSMX.Verify,
            PYSMX.kG,
            PYSMX.sm2_G,
        )

    def public_key(self, d: int) -> bytes:
        """The public point of ``d``.

        :param d: the private scalar
        :raises: nothing
        """
        return bytes([_UNCOMPRESSED]) + bytes.fromhex(self._kg(d, self._g, 2 * _COORD))

    def sign_checked(self, d: int, public: bytes, message: bytes) -> bytes:
        """Sign ``message``: ``e = SM3(Z_A ‖ M)`` here, the curve arithmetic in pysmx.

        :param d: the private scalar
        :param public: its public point (for ``Z_A``)
        :param message: ``M``
        :raises: nothing
        """
        e = digest(public, message).hex()
        while True:
            k = secrets.randbelow(N - 1) + 1
            raw = self._sign(e, f"{d:064x}", f"{k:064x}", 2 * _COORD, Hexstr=1)
            # pysmx returns None for the degenerate r = 0, r + k = n or s = 0: draw another k
            if raw is not None and _split_signature(bytes(raw)) is not None:
                return bytes(raw)

    def verify_checked(self, public: bytes, message: bytes, r: int, s: int) -> bool:
        """Verify ``(r, s)`` over ``message`` as :meth:`NativeBackend.verify_checked` does:
        ``e = SM3(Z_A ‖ M)`` here, the curve arithmetic in pysmx."""
        e = digest(public, message).hex()
        signature = f"{r:064x}{s:064x}"
        return bool(self._verify(signature, e, public[1:].hex(), 2 * _COORD, Hexstr=1))


@functools.cache
def get_backend(name: str | None = None) -> Sm2Backend:
    """An SM2 backend by name, or the preferred one.

    :param name: ``"tongsuopy"``, ``"pysmx"``, or ``None`` for native-if-installed
    :raises KeyFormatError: an unknown name, or ``tongsuopy`` asked for but not installed
    """
    if name is None:
        try:
            return get_backend(NativeBackend.name)
        except KeyFormatError:
            return get_backend(PureBackend.name)
    if name == NativeBackend.name:
        try:
            return NativeBackend()
        except ImportError as exc:
            raise KeyFormatError("the native SM2 backend (tongsuopy) is not installed") from exc
    if name == PureBackend.name:
        return PureBackend()
    raise KeyFormatError(f"unknown SM2 backend {name!r} (tongsuopy or pysmx)")


def available_backends() -> tuple[Sm2Backend, ...]:
    """Every backend that loads here, native first.

    :raises: nothing
    """
    found: list[Sm2Backend] = []
    with contextlib.suppress(KeyFormatError):
        found.append(get_backend(NativeBackend.name))
    found.append(get_backend(PureBackend.name))
    return tuple(found)


BACKEND: Sm2Backend = get_backend()
BACKEND_NAME: str = BACKEND.name
log.debug("event=sm2_backend name=%s", BACKEND_NAME)


def generate_key() -> tuple[bytes, bytes]:
    """Make a key pair from the system's CSPRNG.

    :returns: ``(private, public)``: the 32-byte scalar and the 65-byte point
    :raises: nothing
    """
    d = secrets.randbelow(N - 2) + 1
    return d.to_bytes(PRIVATE_KEY_LEN, "big"), BACKEND.public_key(d)


def public_key(private: bytes, *, backend: Sm2Backend | None = None) -> bytes:
    """The public point of a private key.

    :param private: the 32-byte scalar
    :param backend: an explicit backend (default :data:`BACKEND`)
    :raises KeyFormatError: the private key is malformed
    """
    d = check_private_key(private)
    return (backend or BACKEND).public_key(d)


def sign(private: bytes, message: bytes, *, backend: Sm2Backend | None = None) -> bytes:
    """Sign ``message`` with the default user id.

    :param private: the 32-byte scalar
    :param message: ``M`` (the signer hashes it with ``Z_A``)
    :param backend: an explicit backend (default :data:`BACKEND`)
    :returns: ``r ‖ s``, 64 bytes
    :raises KeyFormatError: the private key is malformed
    """
    d = check_private_key(private)
    chosen = backend or BACKEND
    return chosen.sign_checked(d, chosen.public_key(d), bytes(message))


def verify(
    public: bytes, message: bytes, signature: bytes, *, backend: Sm2Backend | None = None
) -> bool:
    """Tell whether ``signature`` is a valid SM2 signature of ``message`` by ``public``.

    :param public: the 65-byte uncompressed point
    :param message: ``M``
    :param signature: ``r ‖ s``, 64 bytes; any other length or an ``r``/``s`` outside
        ``[1, n − 1]`` is simply invalid
    :param backend: an explicit backend (default :data:`BACKEND`)
    :raises KeyFormatError: the public key is malformed or not on the curve
    """
    check_public_key(public)
    parts = _split_signature(signature)
    if parts is None:
        return False
    return (backend or BACKEND).verify_checked(public, bytes(message), *parts)
