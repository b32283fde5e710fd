"""The e-card QR format (docs/qr-format.md): the committed test vectors, round trips, every
refusal reason in its order, the identity blob, kid collisions, the trust list, and hostile
input (fuzzed text and bit flips never escape as anything but a refusal)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.virtual import TEST_KEYS
from ecard import (
    Alg,
    FormatError,
    KeyFormatError,
    PrivateKey,
    QrReason,
    QrRefused,
    TrustedKey,
    TrustList,
    TrustListError,
    cbor,
    issue_credential,
    load_private_key,
    make_code,
    make_trust_list,
    parse_trust_list,
    replay_key,
    verify_code,
)
from ecard.base45 import b45encode
from ecard.format import (
    INFLATE_CAP,
    PREFIX,
    Dynamic,
    DynamicPart,
    Envelope,
    Header,
    SignedCredential,
    decode_text,
    encode_text,
    sig_structure,
)

ROOT = Path(__file__).resolve().parents[2]
KEYS = TEST_KEYS
VECTORS = ROOT / "tests" / "vectors" / "qr"
DOC = json.loads((VECTORS / "vectors.json").read_text(encoding="utf-8"))
NOW = DOC["now"]
DAY = 86400
TOKEN = "5f" * 32
HOTEL_KEY = bytes.fromhex((KEYS / "qr-audience-hotel-test.key").read_text().strip())
IDENTITY = {
    "name": "测试持卡人",
    "ssn": "110000200001010015",
    "sex": "1",
    "birth_date": "2000-01-01",
}
PERSONAL = (IDENTITY["name"], IDENTITY["ssn"], IDENTITY["birth_date"])  # "1" is in any text


def key(name: str) -> PrivateKey:
    return load_private_key((KEYS / name).read_bytes())


ROOT_KEY = key("qr-root-test.pem")
ROOT_PEM = ROOT_KEY.public_key.to_pem()
PLATFORM = {Alg.ES256: key("qr-platform-es256-test.pem"), Alg.SM2: key("qr-platform-sm2-test.pem")}
DEVICE = {alg: PrivateKey.generate(alg) for alg in Alg}
TRUST = parse_trust_list(
    make_trust_list(
        [(PLATFORM[Alg.ES256].public_key, "es256"), (PLATFORM[Alg.SM2].public_key, "sm2")],
        ROOT_KEY,
        3,
        NOW - DAY,
        NOW + 30 * DAY,
    ),
    ROOT_PEM,
    NOW,
)


def credential(alg: Alg = Alg.ES256, **changes: Any) -> bytes:
    args: dict[str, Any] = {
        "token": TOKEN,
        "region": "440100",
        "category": "3",
        "not_before": NOW - DAY,
        "not_after": NOW + DAY,
        "device_public_key": DEVICE[alg].public_key,
    }
    args.update(changes)
    return issue_credential(args.pop("signer", PLATFORM[alg]), **args)


def code(alg: Alg = Alg.ES256, *, ts: int = NOW, ctr: int = 1, **changes: Any) -> str:
    return make_code(credential(alg, **changes), DEVICE[alg], timestamp=ts, counter=ctr)


def refused(text: str, trust: TrustList = TRUST, now: float = NOW, **kwargs: Any) -> QrRefused:
    with pytest.raises(QrRefused) as caught:
        verify_code(text, trust, now, **kwargs)
    return caught.value


def reencoded(text: str, change: Any) -> str:
    return encode_text(cbor.dumps(change(cbor.loads(decode_text(text), "envelope"))))


# --- the committed vectors ---------------------------------------------------------------


def _code_ids() -> list[str]:
    return [entry["file"] for entry in DOC["codes"]]


@pytest.mark.parametrize("entry", DOC["codes"], ids=_code_ids())
def test_every_committed_code_vector_gives_its_documented_answer(entry: dict[str, Any]) -> None:
    text = (VECTORS / entry["file"]).read_text(encoding="ascii")
    root = (VECTORS / DOC["root_public_key"]).read_bytes()
    trust = parse_trust_list(
        (VECTORS / entry["trust_list"]).read_bytes(),
        root,
        entry.get("trust_parsed_at", entry["now"]),
    )
    audience = {entry["audience"]: HOTEL_KEY} if "audience" in entry else {}
    started = time.perf_counter()
    try:
        verified = verify_code(
            text,
            trust,
            entry["now"],
            window_s=entry["window_s"],
            skew_s=entry["skew_s"],
            audience_keys=audience,
        )
    except QrRefused as exc:
        assert exc.reason == entry["expect"], exc.message
        assert time.perf_counter() - started < 0.5  # garbage and bombs are refused quickly
        return
    assert entry["expect"] == "ok"
    assert verified.credential.token == entry["token"]
    assert verified.replay_key == entry["replay_key"]
    if "timestamp" in entry:
        assert verified.dynamic == Dynamic(entry["timestamp"], entry["counter"])
        assert verified.credential.region == entry["region"]
        assert verified.credential.category == entry["category"]
        assert verified.credential.not_before.timestamp() == entry["not_before"]
        assert verified.credential.not_after.timestamp() == entry["not_after"]
    assert verified.identity == entry.get("identity")


def test_every_refusal_reason_has_a_committed_vector() -> None:
    reasons = {entry["expect"] for entry in DOC["codes"]}
    assert reasons == {"ok", *(reason.value for reason in QrReason)}
    files = {entry["file"] for entry in DOC["codes"]}
    wanted = {"zip-bomb.txt", "non-base45.txt", "garbage-100k.txt", "truncated-cbor.txt"}
    assert wanted | {"altered-claims.txt", "valid-es256.txt", "valid-sm2.txt"} <= files


@pytest.mark.parametrize("entry", DOC["trust_lists"], ids=lambda e: e["file"])
def test_every_committed_trust_list_gives_its_documented_answer(entry: dict[str, Any]) -> None:
    data = (VECTORS / entry["file"]).read_bytes()
    root = (VECTORS / DOC["root_public_key"]).read_bytes()
    if entry["expect"] == "ok":
        trust = parse_trust_list(data, root, entry["now"])
        assert (trust.version, len(trust.keys)) == (entry["version"], entry["keys"])
        return
    with pytest.raises(QrRefused) as caught:
        parse_trust_list(data, root, entry["now"])
    assert caught.value.reason == entry["expect"]
    assert type(caught.value).__name__ == entry["error"]


def test_the_deterministic_vectors_regenerate_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(VECTORS / "make_vectors.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )
    regenerated = json.loads((tmp_path / "vectors.json").read_text(encoding="utf-8"))
    assert [e["file"] for e in regenerated["codes"]] == _code_ids()
    same = [e["file"] for e in DOC["codes"] if e["deterministic"]]
    same += [e["file"] for e in DOC["trust_lists"]] + ["root-public.pem"]
    assert len(same) > 20
    for name in same:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(Alg))
def test_a_fresh_code_round_trips(alg: Alg) -> None:
    text = code(alg, ctr=42)
    assert text.startswith(PREFIX) and len(text) < 1000
    verified = verify_code(text, TRUST, NOW + 3)
    cred = verified.credential
    assert (cred.token, cred.region, cred.category, cred.alg) == (TOKEN, "440100", "3", alg)
    assert cred.kid == PLATFORM[alg].kid == verified.signer.kid  # type: ignore[union-attr]
    assert cred.device_key_spki == DEVICE[alg].public_key.spki
    assert cred.not_before.tzinfo is not None and cred.not_after.timestamp() == NOW + DAY
    assert verified.dynamic == Dynamic(NOW, 42)
    assert verified.identity is None and cred.identity is None
    assert verified.replay_key == replay_key(PLATFORM[alg].kid, TOKEN, 42)
    envelope = Envelope.parse(decode_text(text))
    assert encode_text(envelope.to_bytes()) == text  # one encoding per code


def test_the_replay_key_names_the_credential_and_counter_not_the_moment() -> None:
    first = verify_code(code(ts=NOW, ctr=5), TRUST, NOW)
    later = verify_code(code(ts=NOW + 10, ctr=5), TRUST, NOW + 10)
    other = verify_code(code(ts=NOW, ctr=6), TRUST, NOW)
    assert first.replay_key == later.replay_key != other.replay_key
    assert len(first.replay_key) == 64 and TOKEN not in first.replay_key


def test_nothing_personal_shows_in_a_repr_or_a_refusal() -> None:
    text = make_code(
        credential(identity=IDENTITY, audience=("hotel-test", HOTEL_KEY)),
        DEVICE[Alg.ES256],
        timestamp=NOW,
        counter=1,
    )
    verified = verify_code(text, TRUST, NOW, audience_keys={"hotel-test": HOTEL_KEY})
    shown = repr(verified)
    assert TOKEN not in shown and TOKEN[:8] in shown
    assert all(value not in shown for value in PERSONAL)
    message = str(refused(text, now=NOW + 2 * DAY))
    assert TOKEN[:16] not in message and "测试" not in message


# --- refusals, in their order ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SSC1:",
        "SSC2:" + "0" * 30,
        "ssc1:BB8",
        "SSC1:BB8",  # one byte: not zlib
        PREFIX + b45encode(zlib.compress(b"\xa0")),  # an empty map, not an envelope
        PREFIX + b45encode(zlib.compress(cbor.dumps([b"", []]))),
        PREFIX + b45encode(zlib.compress(b"\x81" * 64)),  # nested deeper than allowed
        PREFIX + b45encode(zlib.compress(b"\xc1\x00")),  # a tag
        PREFIX + b45encode(zlib.compress(b"\xfa\x00\x00\x00\x00")),  # a float
        PREFIX + b45encode(zlib.compress(b"\x9f\xff")),  # indefinite length
        PREFIX + b45encode(zlib.compress(b"\x18\x01")),  # non-shortest integer
        PREFIX + b45encode(zlib.compress(b"\x80\x80")),  # trailing item
        PREFIX + b45encode(zlib.compress(b"\x80") + b"\x00"),  # bytes after the zlib stream
        PREFIX + b45encode(zlib.compress(b"\x80")[:-2]),  # truncated zlib
        PREFIX + b45encode(zlib.compress(bytes(INFLATE_CAP + 1))),  # one byte over the cap
    ],
)
def test_malformed_text_is_bad_encoding(text: str) -> None:
    assert refused(text).reason is QrReason.BAD_ENCODING


def test_the_inflate_cap_is_exact() -> None:
    payload = bytes(INFLATE_CAP)
    assert zlib.decompress(zlib.compress(payload)) == payload
    text = PREFIX + b45encode(zlib.compress(payload))
    exc = refused(text)  # the cap is not the problem here: zeros are no envelope
    assert exc.reason is QrReason.BAD_ENCODING and "inflates" not in exc.message


def test_a_code_with_surrounding_whitespace_is_refused() -> None:
    text = code()
    assert refused(text + "\r\n").reason is QrReason.BAD_ENCODING
    assert refused(" " + text).reason is QrReason.BAD_ENCODING


def _cred_parts(env: list[Any]) -> list[Any]:
    return cbor.loads(env[0], "credential")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, u: ({1: h[1]}, {4: h[4]}), "protected header only"),
        (lambda h, u: (h, {1: h[1]}), "protected header only"),
        (lambda h, u: (h, {33: b"x5chain"}), "unprotected header must be empty"),
        (lambda h, u: ({**h, 3: "text/plain"}, u), "exactly"),
        (lambda h, u: ({1: -35, 4: h[4]}, u), "alg -35"),
        (lambda h, u: ({1: h[1], 4: h[4][:7]}, u), "kid must be 8 bytes"),
    ],
)
def test_alg_and_kid_only_in_an_exact_protected_header(change: Any, message: str) -> None:
    def edit(env: list[Any]) -> list[Any]:
        parts = _cred_parts(env)
        header, unprotected = change(cbor.loads(parts[0], "h"), parts[1])
        parts[0], parts[1] = cbor.dumps(header), unprotected
        return [cbor.dumps(parts), env[1]]

    exc = refused(reencoded(code(), edit))
    assert exc.reason is QrReason.BAD_ENCODING
    assert message in exc.message


def test_a_dynamic_part_of_another_family_is_bad_encoding() -> None:
    def edit(env: list[Any]) -> list[Any]:
        env[1][0] = cbor.dumps({1: Alg.SM2.cose})
        return env

    exc = refused(reencoded(code(), edit))
    assert exc.reason is QrReason.BAD_ENCODING and "family" in exc.message


def test_an_unlisted_key_is_unknown_kid_and_a_removed_key_stops_at_once() -> None:
    stranger = PrivateKey.generate(Alg.ES256)
    exc = refused(code(signer=stranger))
    assert exc.reason is QrReason.UNKNOWN_KID and stranger.kid.hex() in exc.message
    text = code()
    verify_code(text, TRUST, NOW)
    without = parse_trust_list(
        make_trust_list([PLATFORM[Alg.SM2].public_key], ROOT_KEY, 4, NOW - DAY, NOW + DAY),
        ROOT_PEM,
        NOW,
    )
    assert refused(text, without).reason is QrReason.UNKNOWN_KID
    verify_code(code(Alg.SM2), without, NOW)


def test_a_kid_of_another_algorithm_is_unknown() -> None:
    spoofed = TrustList(
        TRUST.version,
        TRUST.not_before,
        TRUST.not_after,
        TRUST.content_hash,
        (TrustedKey(PLATFORM[Alg.ES256].kid, Alg.SM2, PLATFORM[Alg.SM2].public_key.spki, "x"),),
    )
    assert refused(code(), spoofed).reason is QrReason.UNKNOWN_KID


def test_on_a_kid_collision_every_key_with_that_kid_is_tried() -> None:
    real = PLATFORM[Alg.ES256]
    decoy = PrivateKey.generate(Alg.ES256).public_key
    keys = (
        TrustedKey(real.kid, Alg.ES256, decoy.spki, "decoy with a colliding kid"),
        TrustedKey(real.kid, Alg.ES256, real.public_key.spki, "the real key"),
    )
    both = TrustList(1, TRUST.not_before, TRUST.not_after, "0" * 64, keys)
    verified = verify_code(code(), both, NOW)
    assert verified.signer is not None and verified.signer.name == "the real key"
    only_decoy = TrustList(1, TRUST.not_before, TRUST.not_after, "0" * 64, keys[:1])
    exc = refused(code(), only_decoy)
    assert exc.reason is QrReason.BAD_SIGNATURE and "1 key(s)" in exc.message
    exc = refused(code(signer=PrivateKey.generate(Alg.ES256)), both)
    assert exc.reason is QrReason.UNKNOWN_KID


@pytest.mark.parametrize("alg", list(Alg))
def test_a_signature_over_altered_claims_is_bad_signature(alg: Alg) -> None:
    def edit(env: list[Any]) -> list[Any]:
        parts = _cred_parts(env)
        claims = cbor.loads(parts[2], "claims")
        claims["exp"] += 365 * DAY
        parts[2] = cbor.dumps(claims)
        return [cbor.dumps(parts), env[1]]

    assert refused(reencoded(code(alg), edit)).reason is QrReason.BAD_SIGNATURE


def test_the_signature_is_checked_before_any_claim_is_decoded() -> None:
    # garbage claims under a broken signature: bad_signature, not bad_encoding
    def edit(env: list[Any]) -> list[Any]:
        parts = _cred_parts(env)
        parts[2] = b"\xff\xff not cbor"
        return [cbor.dumps(parts), env[1]]

    assert refused(reencoded(code(), edit)).reason is QrReason.BAD_SIGNATURE
    # garbage claims under a valid signature: the platform's mistake is bad_encoding
    header = Header(Alg.ES256, PLATFORM[Alg.ES256].kid)
    payload = b"\xff not cbor"
    sig = PLATFORM[Alg.ES256].sign(sig_structure(header.to_bytes(), b"", payload))
    signed = SignedCredential.build(header, payload, sig)
    dynamic = DynamicPart.build(
        Alg.ES256, Dynamic(NOW, 1).to_bytes(), DEVICE[Alg.ES256].sign, signed
    )
    exc = refused(encode_text(Envelope(signed, dynamic).to_bytes()))
    assert exc.reason is QrReason.BAD_ENCODING and "signed claims" in exc.message


def test_validity_is_checked_with_the_skew() -> None:
    not_yet = code(not_before=NOW + 60, not_after=NOW + DAY, ts=NOW)
    assert refused(not_yet, skew_s=5).reason is QrReason.NOT_YET_VALID
    assert refused(not_yet, now=NOW + 54, skew_s=5).reason is QrReason.NOT_YET_VALID
    verify_code(not_yet, TRUST, NOW + 55, skew_s=5, window_s=60)
    ended = code(not_before=NOW - DAY, not_after=NOW - 10, ts=NOW)
    assert refused(ended, skew_s=5).reason is QrReason.EXPIRED
    assert refused(ended, now=NOW - 5, skew_s=5).reason is QrReason.EXPIRED
    verify_code(ended, TRUST, NOW - 6, skew_s=5, window_s=30)


def test_validity_comes_before_the_device_signature() -> None:
    other = PrivateKey.generate(Alg.ES256)
    text = make_code(
        credential(not_after=NOW - 3600, device_public_key=other.public_key),
        other,
        timestamp=NOW,
        counter=1,
    )
    assert refused(text).reason is QrReason.EXPIRED


@pytest.mark.parametrize("alg", list(Alg))
def test_a_dynamic_part_signed_by_another_device_is_bad_signature(alg: Alg) -> None:
    signed = SignedCredential.parse(credential(alg))
    stranger = PrivateKey.generate(alg)
    dynamic = DynamicPart.build(alg, Dynamic(NOW, 1).to_bytes(), stranger.sign, signed)
    exc = refused(encode_text(Envelope(signed, dynamic).to_bytes()))
    assert exc.reason is QrReason.BAD_SIGNATURE and "device" in exc.message


def test_a_dynamic_part_moved_to_another_credential_is_bad_signature() -> None:
    first = Envelope.parse(decode_text(code()))
    second = SignedCredential.parse(credential(region="110100"))
    exc = refused(encode_text(Envelope(second, first.dynamic).to_bytes()))
    assert exc.reason is QrReason.BAD_SIGNATURE


def test_the_window_is_plus_or_minus_window_s() -> None:
    text = code(ts=NOW)
    for now in (NOW - 30, NOW, NOW + 30):
        verify_code(text, TRUST, now, window_s=30)
    for now in (NOW - 31, NOW + 31):
        assert refused(text, now=now, window_s=30).reason is QrReason.OUTSIDE_WINDOW
    verify_code(text, TRUST, NOW + 100, window_s=120)
    assert "s old" in refused(text, now=NOW + 100).message
    assert "in the future" in refused(text, now=NOW - 100).message


def test_a_stale_trust_list_refuses_every_code() -> None:
    text = code()
    exc = refused(text, now=NOW + 31 * DAY)
    assert exc.reason is QrReason.STALE_TRUST_LIST
    # bad encoding is still told apart: it is checked first
    assert refused("SSC1:x", now=NOW + 31 * DAY).reason is QrReason.BAD_ENCODING


# --- identity --------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "sealed_with"), [(Alg.ES256, "A256GCM"), (Alg.SM2, "SM4-GCM")])
def test_identity_is_opened_only_with_the_audience_key_it_names(
    alg: Alg, sealed_with: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = make_code(
        credential(alg, identity=IDENTITY, audience=("hotel-test", HOTEL_KEY)),
        DEVICE[alg],
        timestamp=NOW,
        counter=1,
    )
    plain = verify_code(text, TRUST, NOW)
    assert plain.identity is None
    assert plain.credential.identity is not None
    assert (plain.credential.identity.kid, plain.credential.identity.alg) == (
        "hotel-test",
        sealed_with,
    )
    other = verify_code(text, TRUST, NOW, audience_keys={"hospital": HOTEL_KEY})
    assert other.identity is None
    opened = verify_code(text, TRUST, NOW, audience_keys={"hotel-test": HOTEL_KEY})
    assert opened.identity == IDENTITY
    with caplog.at_level(logging.WARNING, logger="ecard.verify"):
        wrong = verify_code(text, TRUST, NOW, audience_keys={"hotel-test": bytes(32)})
    assert wrong.identity is None
    assert "qr_identity_unreadable" in caplog.text
    assert all(value not in caplog.text for value in PERSONAL)


def test_an_identity_sealed_to_one_credential_does_not_open_in_another() -> None:
    sealed = SignedCredential.parse(
        credential(identity=IDENTITY, audience=("hotel-test", HOTEL_KEY))
    )
    claims = cbor.loads(sealed.payload, "claims")
    moved = credential(token="ab" * 32)
    # the platform would have to sign the moved blob: do so, the AAD still binds the token
    signed = SignedCredential.parse(moved)
    moved_claims = cbor.loads(signed.payload, "claims")
    moved_claims["idn"] = claims["idn"]
    payload = cbor.dumps(moved_claims)
    sig = PLATFORM[Alg.ES256].sign(sig_structure(signed.protected, b"", payload))
    resigned = SignedCredential.build(signed.header, payload, sig)
    dynamic = DynamicPart.build(
        Alg.ES256, Dynamic(NOW, 1).to_bytes(), DEVICE[Alg.ES256].sign, resigned
    )
    text = encode_text(Envelope(resigned, dynamic).to_bytes())
    assert verify_code(text, TRUST, NOW, audience_keys={"hotel-test": HOTEL_KEY}).identity is None


@pytest.mark.parametrize(
    "identity",
    [
        {**IDENTITY, "sex": "3"},
        {**IDENTITY, "birth_date": "2000-02-30"},
        {**IDENTITY, "birth_date": "20000101"},
        {k: v for k, v in IDENTITY.items() if k != "ssn"},
        {**IDENTITY, "phone": "123"},
        {**IDENTITY, "ssn": "11000020000101001X-"},
        {**IDENTITY, "name": ""},
    ],
)
def test_a_malformed_identity_is_not_issued(identity: dict[str, str]) -> None:
    with pytest.raises(FormatError):
        credential(identity=identity, audience=("hotel-test", HOTEL_KEY))


# --- issuing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"token": "5F" * 32}, "lowercase hex"),
        ({"token": "440000199003071027"}, "lowercase hex"),
        ({"region": "44010"}, "6 ASCII digits"),
        ({"category": "5"}, "1, 2, 3, 4"),
        ({"not_before": NOW, "not_after": NOW}, "before exp"),
        ({"identity": IDENTITY}, "audience"),
        ({"audience": ("hotel-test", HOTEL_KEY)}, "audience"),
        ({"identity": IDENTITY, "audience": ("bad kid", HOTEL_KEY)}, "visible ASCII"),
    ],
)
def test_the_issuer_refuses_what_a_verifier_would_refuse(
    changes: dict[str, Any], error: str
) -> None:
    with pytest.raises(FormatError, match=error):
        credential(**changes)


def test_keys_of_the_wrong_family_or_holder_are_refused() -> None:
    with pytest.raises(KeyFormatError, match="one family"):
        credential(device_public_key=DEVICE[Alg.SM2].public_key)
    with pytest.raises(KeyFormatError, match="the one the credential"):
        make_code(credential(), PrivateKey.generate(Alg.ES256), timestamp=NOW, counter=1)
    with pytest.raises(KeyFormatError, match="32 bytes"):
        credential(identity=IDENTITY, audience=("hotel-test", b"short"))
    with pytest.raises(FormatError, match="counter"):
        make_code(credential(), DEVICE[Alg.ES256], timestamp=NOW, counter=-1)


def test_the_test_keys_are_marked_and_of_the_documented_algorithms() -> None:
    for name, alg in [
        ("qr-root-test.pem", Alg.ES256),
        ("qr-platform-es256-test.pem", Alg.ES256),
        ("qr-platform-sm2-test.pem", Alg.SM2),
    ]:
        assert (KEYS / name).read_text().startswith("# TEST KEY")
        assert key(name).alg is alg
    assert len(HOTEL_KEY) == 32


# --- the trust list --------------------------------------------------------------------


def _list(**changes: Any) -> bytes:
    args: dict[str, Any] = {
        "keys": [PLATFORM[Alg.ES256].public_key],
        "root_private_key": ROOT_KEY,
        "version": 1,
        "not_before": NOW - DAY,
        "not_after": NOW + DAY,
    }
    args.update(changes)
    return make_trust_list(**args)


def test_a_trust_list_round_trips_with_its_content_hash() -> None:
    data = _list(keys=[(PLATFORM[Alg.ES256].public_key, "a"), PLATFORM[Alg.SM2].public_key])
    trust = parse_trust_list(data, ROOT_PEM, NOW)
    assert trust.version == 1 and len(trust.content_hash) == 64
    assert [k.name for k in trust.keys] == ["a", f"SM2 {PLATFORM[Alg.SM2].kid.hex()}"]
    assert [k.kid for k in trust.keys] == [PLATFORM[Alg.ES256].kid, PLATFORM[Alg.SM2].kid]


def _resign(data: bytes, edit: Any, signer: PrivateKey = ROOT_KEY) -> bytes:
    signed_bytes, content = cbor.loads(data, "list")
    protected, _, payload, _ = cbor.loads(signed_bytes, "signed")
    meta = cbor.loads(payload, "payload")
    meta, content = edit(meta, content)
    payload = cbor.dumps(meta)
    signature = signer.sign(sig_structure(protected, b"sscard-trust/1", payload))
    return cbor.dumps([cbor.dumps([protected, {}, payload, signature]), content])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d[:-1], "truncated|runs past"),
        (lambda d: d + b"\x00", "after the CBOR item"),
        (lambda d: _resign(d, lambda m, c: ({**m, "format": "sscard-trust/2"}, c)), "unknown"),
        (lambda d: _resign(d, lambda m, c: ({**m, "extra": 1}, c)), "exactly"),
        (lambda d: _resign(d, lambda m, c: (m, c + b"")), None),
        (lambda d: _resign(d, lambda m, c: (m, cbor.dumps([]))), "SHA-256"),
        (lambda d: _resign(d, lambda m, c: ({**m, "version": 0}, c)), "positive"),
        (
            lambda d: _resign(d, lambda m, c: (m, c), PrivateKey.generate(Alg.ES256)),
            "root signature",
        ),
    ],
)
def test_a_tampered_or_unknown_trust_list_is_refused(make: Any, message: str | None) -> None:
    data = make(_list())
    if message is None:
        parse_trust_list(data, ROOT_PEM, NOW)  # re-signing the same content is fine
        return
    with pytest.raises(TrustListError, match=message) as caught:
        parse_trust_list(data, ROOT_PEM, NOW)
    assert caught.value.reason is QrReason.STALE_TRUST_LIST


def test_a_trust_list_signed_by_another_root_is_refused() -> None:
    other = PrivateKey.generate(Alg.ES256)
    with pytest.raises(TrustListError, match="not by the pinned root"):
        parse_trust_list(_list(root_private_key=other), ROOT_PEM, NOW)
    with pytest.raises(TrustListError, match="pinned trust root"):
        parse_trust_list(_list(), b"not a pem", NOW)


def test_a_trust_list_outside_its_validity_is_stale_with_the_skew() -> None:
    data = _list(not_before=NOW + 1000, not_after=NOW + 2000)
    with pytest.raises(QrRefused, match="valid only from") as caught:
        parse_trust_list(data, ROOT_PEM, NOW)
    assert type(caught.value) is QrRefused and caught.value.reason is QrReason.STALE_TRUST_LIST
    parse_trust_list(data, ROOT_PEM, NOW + 700)  # within the 300 s skew
    with pytest.raises(QrRefused, match="expired"):
        parse_trust_list(data, ROOT_PEM, NOW + 2300)


def test_a_trust_list_with_a_duplicate_or_malformed_key_is_refused() -> None:
    es = PLATFORM[Alg.ES256].public_key
    with pytest.raises(FormatError, match="twice"):
        _list(keys=[es, es])
    with pytest.raises(FormatError, match="expected an SM2 key"):
        _list(keys=[(type(es)(Alg.SM2, es.spki), "liar")])


# --- hostile input ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_refused_as_bad_encoding(text: str) -> None:
    with pytest.raises(QrRefused) as caught:
        verify_code(PREFIX + text, TRUST, NOW)
    assert caught.value.reason is QrReason.BAD_ENCODING


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=600))
def test_any_compressed_bytes_are_refused_as_bad_encoding(data: bytes) -> None:
    text = PREFIX + b45encode(zlib.compress(data))
    with pytest.raises(QrRefused) as caught:
        verify_code(text, TRUST, NOW)
    assert caught.value.reason is QrReason.BAD_ENCODING


def test_every_single_bit_flip_of_a_code_is_refused() -> None:
    envelope = decode_text(code())
    reasons: set[QrReason] = set()
    for i in range(len(envelope)):
        flipped = envelope[:i] + bytes([envelope[i] ^ 0x01]) + envelope[i + 1 :]
        text = PREFIX + b45encode(zlib.compress(flipped))
        with pytest.raises(QrRefused) as caught:
            verify_code(text, TRUST, NOW)
        reasons.add(caught.value.reason)
    assert reasons <= {QrReason.BAD_ENCODING, QrReason.BAD_SIGNATURE, QrReason.UNKNOWN_KID}
    assert QrReason.BAD_SIGNATURE in reasons


def test_the_cbor_codec_refuses_unsorted_and_duplicate_keys() -> None:
    assert cbor.loads(b"\xa2\x01\x00\x04\x00", "m") == {1: 0, 4: 0}
    with pytest.raises(FormatError, match="deterministic"):
        cbor.loads(b"\xa2\x04\x00\x01\x00", "m")
    with pytest.raises(FormatError, match="deterministic"):
        cbor.loads(b"\xa2\x01\x00\x01\x00", "m")
    with pytest.raises(FormatError, match="truncated"):
        cbor.loads(b"\x9b" + b"\xff" * 8, "m")


_VALUES = st.recursive(
    st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.integers(0, 5), inner, max_size=4)
    ),
    max_leaves=8,
)
_CLAIM_NAMES = ["token", "region", "category", "nbf", "exp", "dev", "idn", "ts", "ctr", "kid"]


def _signed_code(claims: Any, dynamic_claims: Any) -> str:
    """A code whose claims and dynamic claims are anything, with valid signatures."""
    header = Header(Alg.ES256, PLATFORM[Alg.ES256].kid)
    payload = cbor.dumps(claims)
    signature = PLATFORM[Alg.ES256].sign(sig_structure(header.to_bytes(), b"", payload))
    signed = SignedCredential.build(header, payload, signature)
    dynamic = DynamicPart.build(
        Alg.ES256, cbor.dumps(dynamic_claims), DEVICE[Alg.ES256].sign, signed
    )
    return encode_text(Envelope(signed, dynamic).to_bytes())


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(_CLAIM_NAMES), _VALUES, max_size=8),
    st.dictionaries(st.sampled_from(["ts", "ctr"]), _VALUES, max_size=2),
)
def test_signed_claims_of_any_shape_are_refused_cleanly(claims: Any, dynamic: Any) -> None:
    base = cbor.loads(SignedCredential.parse(credential()).payload, "claims")
    for candidate in (claims, {**base, **claims}):
        try:
            verify_code(
                _signed_code(candidate, dynamic), TRUST, NOW, audience_keys={"k": HOTEL_KEY}
            )
        except QrRefused as exc:
            assert exc.reason in {
                QrReason.BAD_ENCODING,
                QrReason.NOT_YET_VALID,
                QrReason.EXPIRED,
                QrReason.BAD_SIGNATURE,
                QrReason.OUTSIDE_WINDOW,
            }


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["kid", "alg", "iv", "ct", "x"]), _VALUES, max_size=5))
def test_an_identity_blob_of_any_shape_is_refused_or_ignored(idn: Any) -> None:
    base = cbor.loads(SignedCredential.parse(credential()).payload, "claims")
    idn = {**{"kid": "k", "alg": "A256GCM", "iv": bytes(12), "ct": bytes(40)}, **idn}
    text = _signed_code({**base, "idn": idn}, {"ts": NOW, "ctr": 1})
    try:
        verified = verify_code(text, TRUST, NOW, audience_keys={"k": HOTEL_KEY})
    except QrRefused as exc:
        assert exc.reason is QrReason.BAD_ENCODING
    else:
        assert verified.identity is None  # nothing the platform sealed opens
