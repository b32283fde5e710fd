"""Write the e-card QR test vectors of docs/qr-format.md §10 into this folder.

    .venv/bin/python tests/vectors/qr/make_vectors.py [--out DIR]

Keys come from drivers/virtual/test_keys/ (qr-root-test.pem, qr-platform-*-test.pem,
qr-audience-hotel-test.key) and from keys/ here (device and unlisted-platform keys); any that
is missing is generated once and written (TEST KEYS: never deploy them). ES256 signatures are
deterministic (RFC 6979), so the ES256 files come out byte for byte the same on every run;
SM2 signatures and identity IVs are random, so those files differ on each run. The tests verify
the committed files, and check that the deterministic ones regenerate identically
(``vectors.json`` marks them ``"deterministic": true``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import zlib
from pathlib import Path
from typing import Any

from ecard import Alg, PrivateKey, cbor, issue_credential, load_private_key, make_code
from ecard.base45 import ALPHABET, b45encode
from ecard.format import (
    PREFIX,
    Credential,
    Dynamic,
    DynamicPart,
    Envelope,
    SignedCredential,
    decode_text,
    encode_text,
    sig_structure,
)
from ecard.trust import make_trust_list
from ecard.verify import replay_key

HERE = Path(__file__).resolve().parent
TEST_KEYS = HERE.parents[2] / "drivers" / "virtual" / "test_keys"
TEST_KEY_HEADER = (
    b"# TEST KEY of sscard-terminal (tests/vectors/qr): public in the repository, never deploy.\n"
)

NOW = 1796040000  # 2026-11-30T12:00:00Z: every valid code is valid at NOW (+ up to 30 s)
DAY = 86400
AUDIENCE_KID = "hotel-test"
IDENTITY = {
    "name": "测试持卡人",
    "ssn": "110000200001010015",
    "sex": "1",
    "birth_date": "2000-01-01",
}
TOKEN = hashlib.sha256(b"sscard test card 1").hexdigest()
REGION = "440100"
CATEGORY = "3"
COUNTER = 7


def private_key(path: Path, alg: Alg) -> PrivateKey:
    """Load a test key, or generate and write it (marked TEST KEY) when missing."""
    if path.exists():
        key = load_private_key(path.read_bytes())
        if key.alg is not alg:
            raise SystemExit(f"{path} is {key.alg}, expected {alg}")
        return key
    key = PrivateKey.generate(alg)
    path.write_bytes(TEST_KEY_HEADER + key.to_pem())
    print(f"generated {path}")
    return key


def audience_key(path: Path) -> bytes:
    """The 32-byte hotel audience key (64 hex characters in the file)."""
    if not path.exists():
        path.write_text(random.SystemRandom().randbytes(32).hex() + "\n", encoding="ascii")
        print(f"generated {path}")
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def reencode(text: str, change: Any) -> str:
    """Decode a valid code's envelope, let ``change`` edit its CBOR value, encode it again."""
    value = cbor.loads(decode_text(text), "envelope")
    return encode_text(cbor.dumps(change(value)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    out: Path = parser.parse_args().out
    (out / "keys").mkdir(parents=True, exist_ok=True)

    root = private_key(TEST_KEYS / "qr-root-test.pem", Alg.ES256)
    platform = {
        Alg.ES256: private_key(TEST_KEYS / "qr-platform-es256-test.pem", Alg.ES256),
        Alg.SM2: private_key(TEST_KEYS / "qr-platform-sm2-test.pem", Alg.SM2),
    }
    hotel = audience_key(TEST_KEYS / "qr-audience-hotel-test.key")
    keys = HERE / "keys"
    device = {
        Alg.ES256: private_key(keys / "device-es256-test.pem", Alg.ES256),
        Alg.SM2: private_key(keys / "device-sm2-test.pem", Alg.SM2),
    }
    other_device = private_key(keys / "device-other-es256-test.pem", Alg.ES256)
    unlisted = private_key(keys / "platform-unlisted-es256-test.pem", Alg.ES256)
    other_root = private_key(keys / "root-other-test.pem", Alg.ES256)
    if out != HERE:
        for path in keys.glob("*.pem"):
            (out / "keys" / path.name).write_bytes(path.read_bytes())

    manifest: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}

    def write(name: str, data: bytes | str) -> None:
        files[name] = data.encode("ascii") if isinstance(data, str) else data

    def credential(alg: Alg, **changes: Any) -> bytes:
        args: dict[str, Any] = {
            "token": TOKEN,
            "region": REGION,
            "category": CATEGORY,
            "not_before": NOW - DAY,
            "not_after": NOW + 30 * DAY,
            "device_public_key": device[alg].public_key,
        }
        args.update(changes)
        signer = args.pop("signer", platform[alg])
        return issue_credential(signer, **args)

    def code(name: str, text: str, expect: str, deterministic: bool, note: str, **extra: Any):
        write(name, text)
        entry = {
            "file": name,
            "now": extra.pop("now", NOW + 5),
            "window_s": 30,
            "skew_s": 5,
            "trust_list": extra.pop("trust_list", "trust-list.cbor"),
            "expect": expect,
            "deterministic": deterministic,
            "note": note,
        }
        entry.update(extra)
        manifest.append(entry)

    # --- trust lists -----------------------------------------------------------------------
    listed = [(platform[Alg.ES256].public_key, "platform ES256 (test)")]
    listed.append((platform[Alg.SM2].public_key, "platform SM2 (test)"))
    write("root-public.pem", TEST_KEY_HEADER + root.public_key.to_pem())
    trust = make_trust_list(listed, root, 1, NOW - 7 * DAY, NOW + 30 * DAY)
    write("trust-list.cbor", trust)
    write(
        "trust-list-v2-without-es256.cbor",
        make_trust_list(listed[1:], root, 2, NOW - DAY, NOW + 30 * DAY),
    )
    write(
        "trust-list-expired.cbor", make_trust_list(listed, root, 1, NOW - 60 * DAY, NOW - 30 * DAY)
    )
    write(
        "trust-list-other-root.cbor",
        make_trust_list(listed, other_root, 1, NOW - DAY, NOW + 30 * DAY),
    )
    signed, content = cbor.loads(trust, "trust list")
    entries = cbor.loads(content, "content")
    entries[0]["name"] = "platform ES256 (renamed)"
    write("trust-list-tampered.cbor", cbor.dumps([signed, cbor.dumps(entries)]))
    trust_lists = [
        {"file": "trust-list.cbor", "expect": "ok", "version": 1, "keys": 2},
        {"file": "trust-list-v2-without-es256.cbor", "expect": "ok", "version": 2, "keys": 1},
        {"file": "trust-list-expired.cbor", "expect": "stale_trust_list", "error": "QrRefused"},
        {
            "file": "trust-list-other-root.cbor",
            "expect": "stale_trust_list",
            "error": "TrustListError",
        },
        {
            "file": "trust-list-tampered.cbor",
            "expect": "stale_trust_list",
            "error": "TrustListError",
        },
    ]

    # --- valid codes -----------------------------------------------------------------------
    valid = {}
    for alg in (Alg.ES256, Alg.SM2):
        name = f"valid-{alg.lower()}.txt"
        valid[alg] = make_code(credential(alg), device[alg], timestamp=NOW, counter=COUNTER)
        code(
            name,
            valid[alg],
            "ok",
            alg is Alg.ES256,
            f"a valid {alg} code made at NOW",
            token=TOKEN,
            region=REGION,
            category=CATEGORY,
            timestamp=NOW,
            counter=COUNTER,
            not_before=NOW - DAY,
            not_after=NOW + 30 * DAY,
            replay_key=replay_key(platform[alg].kid, TOKEN, COUNTER),
        )
        sealed = credential(alg, identity=IDENTITY, audience=(AUDIENCE_KID, hotel))
        code(
            f"valid-{alg.lower()}-identity.txt",
            make_code(sealed, device[alg], timestamp=NOW, counter=COUNTER),
            "ok",
            False,
            f"valid {alg} code with an identity blob "
            f"({'SM4-GCM' if alg is Alg.SM2 else 'A256GCM'}) for audience {AUDIENCE_KID}",
            audience=AUDIENCE_KID,
            identity=IDENTITY,
            token=TOKEN,
            replay_key=replay_key(platform[alg].kid, TOKEN, COUNTER),
        )
    es256 = valid[Alg.ES256]

    # --- refusals --------------------------------------------------------------------------
    unlisted_credential = credential(Alg.ES256, signer=unlisted)
    code(
        "unknown-kid.txt",
        make_code(unlisted_credential, device[Alg.ES256], timestamp=NOW, counter=1),
        "unknown_kid",
        True,
        "signed by a platform key that is not on the trust list",
    )
    code(
        "removed-key.txt",
        es256,
        "unknown_kid",
        True,
        "valid-es256.txt against trust list v2, from which the ES256 key was removed",
        trust_list="trust-list-v2-without-es256.cbor",
    )

    def flip_credential_signature(env: list[Any]) -> list[Any]:
        cred = cbor.loads(env[0], "credential")
        cred[3] = cred[3][:-1] + bytes([cred[3][-1] ^ 0x01])
        return [cbor.dumps(cred), env[1]]

    code(
        "bad-signature.txt",
        reencode(es256, flip_credential_signature),
        "bad_signature",
        True,
        "the platform signature's last bit flipped",
    )

    def alter_region(env: list[Any]) -> list[Any]:
        cred = cbor.loads(env[0], "credential")
        claims = cbor.loads(cred[2], "claims")
        claims["region"] = "110100"
        cred[2] = cbor.dumps(claims)
        return [cbor.dumps(cred), env[1]]

    code(
        "altered-claims.txt",
        reencode(es256, alter_region),
        "bad_signature",
        True,
        "a valid platform signature over claims altered afterwards (region 440100 → 110100)",
    )
    good = SignedCredential.parse(credential(Alg.ES256))
    forged = DynamicPart.build(Alg.ES256, Dynamic(NOW, COUNTER).to_bytes(), other_device.sign, good)
    code(
        "bad-device-signature.txt",
        encode_text(Envelope(good, forged).to_bytes()),
        "bad_signature",
        True,
        "the dynamic part signed by another device key than the credential names",
    )
    code(
        "not-yet-valid.txt",
        make_code(
            credential(Alg.ES256, not_before=NOW + DAY, not_after=NOW + 30 * DAY),
            device[Alg.ES256],
            timestamp=NOW,
            counter=COUNTER,
        ),
        "not_yet_valid",
        True,
        "credential valid from NOW + 1 day",
    )
    code(
        "expired.txt",
        make_code(
            credential(Alg.ES256, not_before=NOW - 30 * DAY, not_after=NOW - 3600),
            device[Alg.ES256],
            timestamp=NOW,
            counter=COUNTER,
        ),
        "expired",
        True,
        "credential expired at NOW - 1 h",
    )
    code(
        "outside-window.txt",
        make_code(credential(Alg.ES256), device[Alg.ES256], timestamp=NOW - 120, counter=8),
        "outside_window",
        True,
        "dynamic part made 120 s before NOW (a screenshot)",
    )
    code(
        "stale-trust-list.txt",
        es256,
        "stale_trust_list",
        True,
        "valid-es256.txt checked 40 days later with trust list v1 (expired at NOW + 30 days)",
        now=NOW + 40 * DAY,
        trust_parsed_at=NOW,
    )

    # --- bad encodings ---------------------------------------------------------------------
    code(
        "zip-bomb.txt",
        PREFIX + b45encode(zlib.compress(bytes(1 << 20), 9)),
        "bad_encoding",
        True,
        "1 MiB of zeros in 1 KiB of zlib: stopped at the 4096-byte inflate cap",
    )
    code(
        "non-base45.txt",
        "SSC1:this is not base45, lower case and commas",
        "bad_encoding",
        True,
        "characters outside the Base45 alphabet",
    )
    rng = random.Random(45)
    code(
        "garbage-100k.txt",
        PREFIX + "".join(rng.choice(ALPHABET) for _ in range(100_000)),
        "bad_encoding",
        True,
        "100 000 random Base45 characters after the prefix",
    )
    envelope = decode_text(es256)
    code(
        "truncated-cbor.txt",
        PREFIX + b45encode(zlib.compress(envelope[:-10], 9)),
        "bad_encoding",
        True,
        "the envelope's CBOR cut 10 bytes short, then compressed properly",
    )
    code(
        "wrong-prefix.txt",
        "HC1:" + es256[len(PREFIX) :],
        "bad_encoding",
        True,
        "a valid code under another prefix",
    )

    def kid_unprotected(env: list[Any]) -> list[Any]:
        cred = cbor.loads(env[0], "credential")
        header = cbor.loads(cred[0], "header")
        cred[0] = cbor.dumps({1: header[1]})
        cred[1] = {4: header[4]}
        return [cbor.dumps(cred), env[1]]

    code(
        "kid-unprotected.txt",
        reencode(es256, kid_unprotected),
        "bad_encoding",
        True,
        "kid moved to the unprotected header",
    )
    # a correctly signed credential whose claims are not deterministic CBOR (keys unsorted)
    claims = cbor.loads(good.payload, "claims")
    unsorted = b"\xa6" + b"".join(
        cbor.dumps(k) + cbor.dumps(claims[k])
        for k in ("token", "region", "category", "nbf", "exp", "dev")
    )
    protected = good.protected
    signature = platform[Alg.ES256].sign(sig_structure(protected, b"", unsorted))
    odd = SignedCredential(
        protected,
        good.header,
        unsorted,
        signature,
        encoded=cbor.dumps([protected, {}, unsorted, signature]),
    )
    odd_dynamic = DynamicPart.build(
        Alg.ES256, Dynamic(NOW, COUNTER).to_bytes(), device[Alg.ES256].sign, odd
    )
    code(
        "noncanonical-claims.txt",
        encode_text(Envelope(odd, odd_dynamic).to_bytes()),
        "bad_encoding",
        True,
        "validly signed claims whose map keys are not in deterministic order",
    )
    Credential.from_claims(good.payload, good.header)  # the untouched claims do parse

    for name, data in files.items():
        (out / name).write_bytes(data)
    document = {
        "now": NOW,
        "root_public_key": "root-public.pem",
        "audience_keys": {AUDIENCE_KID: "../../keys/qr-audience-hotel-test.key"},
        "trust_lists": [dict(t, now=NOW) for t in trust_lists],
        "codes": manifest,
    }
    (out / "vectors.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(files) + 1} files to {out}")


if __name__ == "__main__":
    main()
