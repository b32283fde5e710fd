"""The electronic social security card (电子社保卡) QR format: open and verifiable offline.

``SSC1:`` + Base45 + zlib + CBOR: a credential signed by the platform (card token, region,
category, validity, the holder device's public key, an optional identity blob sealed to an
audience key) and a dynamic part (timestamp, counter) signed by that device key, over the
credential too. ES256 or SM2 with SM3. docs/qr-format.md is the normative description; the
test vectors are in tests/vectors/qr/.

::

    trust = parse_trust_list(raw, root_pem, now)       # the platform keys, signed by the root
    code = verify_code(text, trust, now)                # raises QrRefused(reason, message)
    store.replay.check_and_add(code.replay_key, 2 * window_s)

Modules: :mod:`~ecard.base45`, :mod:`~ecard.cbor` (strict deterministic
CBOR), :mod:`~ecard.format` (the wire structures), :mod:`~ecard.keys`,
:mod:`~ecard.sm2` (native and pure backends), :mod:`~ecard.identity`,
:mod:`~ecard.trust`, :mod:`~ecard.verify`, :mod:`~ecard.issue`,
:mod:`~ecard.national` (which kind of code a text is; the national code syntax).
"""

from ecard import sm2
from ecard.errors import (
    Base45Error,
    EcardError,
    FormatError,
    KeyFormatError,
    QrReason,
    QrRefused,
    TrustListError,
)
from ecard.format import PREFIX, Credential, Dynamic
from ecard.identity import EncryptedIdentity
from ecard.issue import issue_credential, make_code
from ecard.keys import Alg, PrivateKey, PublicKey, load_private_key, load_public_key
from ecard.national import CodeKind, code_kind, is_national_code
from ecard.trust import (
    TrustedKey,
    TrustList,
    load_stored_trust_list,
    make_trust_list,
    parse_trust_list,
    save_trust_list,
)
from ecard.verify import (
    DEFAULT_SKEW_S,
    DEFAULT_WINDOW_S,
    VerifiedCode,
    replay_key,
    verify_code,
)

__all__ = [
    "DEFAULT_SKEW_S",
    "DEFAULT_WINDOW_S",
    "PREFIX",
    "Alg",
    "Base45Error",
    "CodeKind",
    "Credential",
    "Dynamic",
    "EcardError",
    "EncryptedIdentity",
    "FormatError",
    "KeyFormatError",
    "PrivateKey",
    "PublicKey",
    "QrReason",
    "QrRefused",
    "TrustList",
    "TrustListError",
    "TrustedKey",
    "VerifiedCode",
    "code_kind",
    "is_national_code",
    "issue_credential",
    "load_private_key",
    "load_public_key",
    "load_stored_trust_list",
    "make_code",
    "make_trust_list",
    "parse_trust_list",
    "replay_key",
    "save_trust_list",
    "sm2",
    "verify_code",
]
