"""SM2 with SM3: the native (tongsuopy) and pure (pysmx) backends give the same answers on the
same signatures, the published example verifies in both, and the key encodings interoperate.
Speed is measured in bench/bench_sm2.py, not here."""

from __future__ import annotations

import pytest

from ecard import sm2
from ecard.errors import KeyFormatError
from ecard.keys import SM2_SPKI_PREFIX, Alg, PrivateKey, load_private_key, load_public_key

BACKENDS = sm2.available_backends()
NATIVE = pytest.mark.skipif(
    len(BACKENDS) < 2, reason="tongsuopy is not installed here (x86_64 wheels only)"
)

# GB/T 32918.5-2017 (GM/T 0003.5-2012) Appendix A: the signature example on the recommended curve
KAT_D = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
KAT_PUBLIC = bytes.fromhex(
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
KAT_MESSAGE = b"message digest"
KAT_E = bytes.fromhex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
KAT_SIGNATURE = bytes.fromhex(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)


def _ids(backend: sm2.Sm2Backend) -> str:
    return backend.name


@pytest.mark.parametrize("backend", BACKENDS, ids=_ids)
def test_the_published_example_verifies(backend: sm2.Sm2Backend) -> None:
    assert sm2.public_key(KAT_D, backend=backend) == KAT_PUBLIC
    assert sm2.digest(KAT_PUBLIC, KAT_MESSAGE) == KAT_E
    assert sm2.verify(KAT_PUBLIC, KAT_MESSAGE, KAT_SIGNATURE, backend=backend)
    assert not sm2.verify(KAT_PUBLIC, b"message digesT", KAT_SIGNATURE, backend=backend)


@NATIVE
def test_native_and_pure_agree_on_the_same_signatures() -> None:
    native, pure = sm2.get_backend("tongsuopy"), sm2.get_backend("pysmx")
    private, public = sm2.generate_key()
    assert sm2.public_key(private, backend=native) == sm2.public_key(private, backend=pure)
    message = bytes(range(200))
    by_native = sm2.sign(private, message, backend=native)
    by_pure = sm2.sign(private, message, backend=pure)
    for signature in (by_native, by_pure):
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        malleated = r.to_bytes(32, "big") + (sm2.N - s).to_bytes(32, "big")
        tampered_signature = signature[:-1] + bytes([signature[-1] ^ 1])
        cases = {
            "genuine": (message, signature, True),
            "tampered message": (message[:-1] + b"\x00", signature, False),
            "tampered signature": (message, tampered_signature, False),
            "(r, n-s)": (message, malleated, False),
            "r = 0": (message, bytes(32) + signature[32:], False),
            "s = n": (message, signature[:32] + sm2.N.to_bytes(32, "big"), False),
            "short": (message, signature[:63], False),
            "DER instead of raw": (message, b"\x30\x44" + signature, False),
        }
        for name, (msg, sig, expected) in cases.items():
            answers = {b.name: sm2.verify(public, msg, sig, backend=b) for b in (native, pure)}
            assert answers == {"tongsuopy": expected, "pysmx": expected}, name


@pytest.mark.parametrize("backend", BACKENDS, ids=_ids)
def test_another_key_does_not_verify(backend: sm2.Sm2Backend) -> None:
    private, _ = sm2.generate_key()
    _, other = sm2.generate_key()
    signature = sm2.sign(private, b"m", backend=backend)
    assert not sm2.verify(other, b"m", signature, backend=backend)


@pytest.mark.parametrize(
    "public",
    [
        KAT_PUBLIC[:-1] + bytes([KAT_PUBLIC[-1] ^ 1]),  # off the curve
        b"\x02" + KAT_PUBLIC[1:],  # compressed prefix with 64 bytes
        KAT_PUBLIC[:33],  # too short
        b"\x04" + sm2.P.to_bytes(32, "big") + KAT_PUBLIC[33:],  # x not below p
    ],
)
def test_a_malformed_public_key_is_refused_by_every_backend(public: bytes) -> None:
    for backend in BACKENDS:
        with pytest.raises(KeyFormatError):
            sm2.verify(public, KAT_MESSAGE, KAT_SIGNATURE, backend=backend)


@pytest.mark.parametrize(
    "private", [bytes(32), (sm2.N - 1).to_bytes(32, "big"), b"\x01" * 31, b"\xff" * 32]
)
def test_an_out_of_range_private_key_is_refused(private: bytes) -> None:
    with pytest.raises(KeyFormatError):
        sm2.sign(private, b"m")


def test_an_unknown_backend_name_is_refused() -> None:
    with pytest.raises(KeyFormatError, match="unknown SM2 backend"):
        sm2.get_backend("gmssl")
    assert sm2.BACKEND_NAME in {"tongsuopy", "pysmx"}
    assert sm2.BACKEND is BACKENDS[0]


def test_the_sm2_key_encodings_round_trip_and_carry_the_sm2_curve_oid() -> None:
    key = PrivateKey(Alg.SM2, KAT_D)
    assert key.public_key.spki == SM2_SPKI_PREFIX + KAT_PUBLIC
    assert bytes.fromhex("06082a811ccf5501822d") in key.public_key.spki  # 1.2.156.10197.1.301
    again = load_private_key(key.to_pem())
    assert again.kid == key.kid and again.alg is Alg.SM2
    assert load_public_key(key.public_key.to_pem()) == key.public_key
    assert key.public_key.verify(KAT_MESSAGE, KAT_SIGNATURE)
    assert "3945" not in repr(key)


@NATIVE
def test_sm2_pem_interoperates_with_tongsuo() -> None:
    from tongsuopy.crypto import serialization
    from tongsuopy.crypto.asymciphers import ec

    ours = PrivateKey(Alg.SM2, KAT_D)
    theirs = serialization.load_pem_private_key(ours.to_pem(), None)
    assert theirs.private_numbers().private_value == int.from_bytes(KAT_D, "big")
    spki = theirs.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == ours.public_key.spki
    generated = ec.generate_private_key(ec.SM2())
    pem = generated.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    loaded = load_private_key(pem)
    assert loaded.alg is Alg.SM2
    scalar = generated.private_numbers().private_value.to_bytes(32, "big")
    assert loaded.public_key.verify(b"x", sm2.sign(scalar, b"x"))
