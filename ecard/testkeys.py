"""The repository's TEST KEYS, known by fingerprint, so a production terminal refuses them.

Everything under ``drivers/virtual/test_keys/`` and ``tests/vectors/qr/keys/`` is public: a key
from there on a production terminal lets anyone forge what it protects (an e-card code signed
under the test root, an identity blob sealed to the test audience key). The files say so in a
comment (``# TEST KEY``) or a flag (``test_keys = true``), but a comment is gone as soon as
someone copies the key without it, and a trust list carries no mark at all. The mark that holds is
the key itself: the SHA-256 of each test key is listed here, shipped with the code, and no
holder of a code, a trust list or a key file can make a listed key look like another.

What is hashed:

* public keys (the e-card trust root, platform signing keys, device keys): the
  SubjectPublicKeyInfo DER, in the one canonical form :mod:`ecard.keys` accepts, so a
  key cannot be re-encoded past the check; for a private key file, its public half;
* symmetric keys (audience keys, the card root keys of ``test-roots.toml``): the raw bytes.

``tests/unit/test_testkeys.py`` recomputes every entry from the files, and fails when a key
file is added under ``drivers/virtual/test_keys/`` without being listed. No deny-list signing
key, HSM token, terminal sync key or pepper ships in the repository (the tests and ``sscard
platform init`` make theirs fresh), so there is none of those to list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from types import MappingProxyType

from apdu.errors import SscardError

__all__ = [
    "TEST_KEYS",
    "RefusedTestKey",
    "fingerprint",
    "known_test_key",
    "marked_test_key",
    "public_key_der",
    "refuse_test_key",
]

#: SHA-256 (hex) of each TEST KEY → the file it comes from
TEST_KEYS: Mapping[str, str] = MappingProxyType(
    {
        # e-card keys: SubjectPublicKeyInfo DER
        "6dfceac663b0138927d0a969eca28e766768f440b61b86b5962ffd1c43288d83": (
            "drivers/virtual/test_keys/qr-root-test.pem (trust root, ES256)"
        ),
        "7a04a6e9e17071be70fcff08f542d09350117b4a8503f39a35f94e5a6e59e060": (
            "drivers/virtual/test_keys/qr-platform-es256-test.pem (platform key, ES256)"
        ),
        "6c9f7383464d814d6a668126cfca9bee181dc62d44e24a1863c660e9d1edaf59": (
            "drivers/virtual/test_keys/qr-platform-sm2-test.pem (platform key, SM2)"
        ),
        "45c85d007258eccfca694ef845716ca9c4e73ded705c220c4460c1ddc34d5d6a": (
            "tests/vectors/qr/keys/root-other-test.pem (trust root, ES256)"
        ),
        "1b531c7755270a84c28d64cde42e71b0a10e45cdef265bcc5848a5922c83a33b": (
            "tests/vectors/qr/keys/platform-unlisted-es256-test.pem (platform key, ES256)"
        ),
        "afbde98b95aac677358be1aec8d671f85016f702b8ec8774e60d60c62de644e0": (
            "tests/vectors/qr/keys/device-es256-test.pem (device key, ES256)"
        ),
        "37a5fbeafadc11224a08e4bc59b78e83ce2c793efc559529c9a2ae6d391f0849": (
            "tests/vectors/qr/keys/device-other-es256-test.pem (device key, ES256)"
        ),
        "6334e1b24c7a9e23ca960aa6c1a42a6f38e428490616083ed5eeea3b73a44e56": (
            "tests/vectors/qr/keys/device-sm2-test.pem (device key, SM2)"
        ),
        # symmetric keys: raw bytes
        "ee9a183fa384074abb3623845271215a9da0166071502b00fe9d4b4b0374ff45": (
            "drivers/virtual/test_keys/qr-audience-hotel-test.key (audience key hotel-test)"
        ),
        "a77f74cdafe619964f5f2823c06916898677df7453ac4cce8187b4edd679e3bf": (
            "drivers/virtual/test_keys/test-roots.toml [des] irk"
        ),
        "56ece371d79285a94201d480ecc574f9685ebf4850d93b7c96c53b1e30c44e7d": (
            "drivers/virtual/test_keys/test-roots.toml [des] rkssse"
        ),
        "52784affeeb55475a33414948755bb089d027e8f2439b02e4672480584680f84": (
            "drivers/virtual/test_keys/test-roots.toml [des] dpk"
        ),
        "13cd46c4c7977ae118ae108fc96852050f11aba0fe683f42def13e9dd2ba5119": (
            "drivers/virtual/test_keys/test-roots.toml [sm4] irk"
        ),
        "61d23f1591e9845a7459f0e86dd9a465d3cdbce615b5d8509847e6adf5c77e70": (
            "drivers/virtual/test_keys/test-roots.toml [sm4] rkssse"
        ),
        "748444e072bb0f7d94aa8bcaec3cb4a562800e49bc5df01aff567407628c1f9e": (
            "drivers/virtual/test_keys/test-roots.toml [des] dtk"
        ),
        "ca6e780a50b589894cb724ddbf7318dc200622b28ce41842424b76de132facef": (
            "drivers/virtual/test_keys/test-roots.toml [transit] dpk"
        ),
        "4ac75ae9d7a09a09484313c70ef256415e4e903c7eee1ccfe8e67cbac8b5a6c4": (
            "drivers/virtual/test_keys/test-roots.toml [transit] dtk"
        ),
    }
)

PRODUCTION_REFUSES = "production = true refuses test keys"
_MARK = re.compile(rb"^[ \t]*#[^\n]*\bTEST KEYS?\b", re.MULTILINE)
_PUBLIC_PEM = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END PUBLIC KEY-----"
)


class RefusedTestKey(SscardError):
    """A production terminal was given a TEST KEY (listed here, or marked in its file)."""


def fingerprint(material: bytes) -> str:
    """The SHA-256 of a key's material, lowercase hex (the form :data:`TEST_KEYS` lists).

    :param material: a SubjectPublicKeyInfo DER or a symmetric key's bytes
    :raises: nothing
    """
    return hashlib.sha256(bytes(material)).hexdigest()


def known_test_key(material: bytes) -> str | None:
    """Which TEST KEY this is, or ``None`` for a key the repository does not ship.

    :param material: a SubjectPublicKeyInfo DER or a symmetric key's bytes
    :raises: nothing
    """
    return TEST_KEYS.get(fingerprint(material))


def marked_test_key(text: bytes) -> bool:
    """Tell whether a key file marks itself as a test key: a comment line saying ``TEST KEY``
    (as every PEM under ``tests/`` starts). The fingerprints are the mark that holds; this one
    catches a test key made elsewhere and labelled honestly.

    :param text: the file's bytes
    :raises: nothing
    """
    return _MARK.search(text) is not None


def public_key_der(pem: bytes) -> bytes | None:
    """The SubjectPublicKeyInfo DER of a ``PUBLIC KEY`` PEM, ``None`` when there is none
    (the key's own parser says what is wrong with it).

    :param pem: the file's bytes
    :raises: nothing
    """
    found = _PUBLIC_PEM.search(pem)
    if found is None:
        return None
    try:
        return base64.b64decode(b"".join(found.group(1).split()), validate=True)
    except binascii.Error:
        return None


def refuse_test_key(
    material: bytes, what: str, *, production: bool, text: bytes | None = None
) -> None:
    """Refuse a TEST KEY on a production terminal (anywhere else it is let through).

    :param material: the key (SubjectPublicKeyInfo DER, or a symmetric key's bytes)
    :param what: what the key is for, and where it came from, for the message
    :param production: the settings' ``production``
    :param text: the key file's bytes, to look for the ``TEST KEY`` comment too
    :raises RefusedTestKey: ``production`` and the key is a listed or marked test key
    """
    if not production:
        return
    name = known_test_key(material)
    if name is not None:
        raise RefusedTestKey(f"{what} is the public TEST KEY {name}: {PRODUCTION_REFUSES}")
    if text is not None and marked_test_key(text):
        raise RefusedTestKey(f"{what} is marked TEST KEY in its file: {PRODUCTION_REFUSES}")
