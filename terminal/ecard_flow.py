"""Electronic social security card codes through the same pipeline as physical cards.

Two kinds of code arrive at a scanner:

* the open, offline-verifiable format (``SSC1:``, docs/qr-format.md): verified here against
  the trust list in the offline store, then the replay cache (the same credential and counter
  within the window is refused), then — as one more credential — the pipeline's checks and the
  scenario's rules: deny list (the card token, hashed like a card), category, catalogue, list
  age, fares, gates, registrations;
* the national platform's opaque codes: sent to the platform's decode endpoint with a short
  timeout. When the platform cannot be reached the profile decides: refuse, or (low-risk
  services) accept and journal the code as ``deferred``, its text kept encrypted in the journal
  for verification at the next sync.

Both end in :class:`terminal.card_read.CardFacts` and a :class:`terminal.pipeline.Decision`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from apdu.errors import SscardError
from offline_store import canonical_ecard_id
from sync.auth import sign_request
from sync.config import load_terminal_key
from terminal.card_read import CardFacts
from terminal.ecard import (
    QrReason,
    QrRefused,
    TrustList,
    TrustListError,
    parse_trust_list,
    verify_code,
)
from terminal.pipeline import ACCEPT, Decision, Pipeline, refuse
from terminal.reasons import Reason

log = logging.getLogger(__name__)

PREFIX = "SSC1:"
DECODE_PATH = "/v1/ecard/decode"
CODE_TEXT_MAX = 4096
#: the personal field that keeps a deferred code's text (encrypted) for the next sync
DEFERRED_FIELD = "ecard_code"

QR_REASONS: dict[QrReason, Reason] = {
    QrReason.BAD_ENCODING: Reason.QR_BAD_ENCODING,
    QrReason.UNKNOWN_KID: Reason.QR_UNKNOWN_KEY,
    QrReason.BAD_SIGNATURE: Reason.QR_BAD_SIGNATURE,
    QrReason.NOT_YET_VALID: Reason.QR_NOT_YET_VALID,
    QrReason.EXPIRED: Reason.QR_EXPIRED,
    QrReason.OUTSIDE_WINDOW: Reason.QR_OUTSIDE_WINDOW,
    QrReason.STALE_TRUST_LIST: Reason.QR_STALE_TRUST_LIST,
}


class AudienceKeyError(SscardError):
    """An audience-key file that is unreadable, too open or malformed."""


def load_audience_keys(path: str | Path) -> dict[str, bytes]:
    """Read this terminal's identity-blob keys: a 0600 TOML file of ``kid = "64 hex"`` lines.

    :param path: the file
    :raises AudienceKeyError: unreadable, readable by others, or a key that is not 32 bytes
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AudienceKeyError(f"cannot read audience keys {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AudienceKeyError(f"{path}: not valid TOML: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AudienceKeyError(
            f"audience keys {path} have mode {stat.S_IMODE(mode):04o}; they must be 0600"
        )
    keys: dict[str, bytes] = {}
    for kid, value in data.items():
        try:
            key = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise AudienceKeyError(f"{path}: {kid} must be 64 hex digits (a 32-byte key)")
        keys[kid] = key
    return keys


@dataclass
class CodeVerifier:
    """What a terminal needs to verify codes (from the ``[ecard]`` settings).

    :param root_key_pem: the pinned key trust lists are signed with, or ``None``
    :param audience_keys: audience key id → 32-byte key, for identity blobs
    :param decode_url: the platform that decodes national codes, or ``None``
    :param decode_timeout_s: connect and read timeout of the decode call
    :param session: the HTTP session (tests give their own)
    :param signer: signs a request (method, path, body) → headers, as every platform call is
        signed (docs/sync.md); ``None`` sends it unsigned (a decode service of its own)
    """

    root_key_pem: bytes | None = None
    audience_keys: Mapping[str, bytes] = field(default_factory=dict)
    decode_url: str | None = None
    decode_timeout_s: float = 2.0
    session: requests.Session = field(default_factory=requests.Session)
    signer: Callable[[str, str, bytes], Mapping[str, str]] | None = None

    def trust_list(self, pipeline: Pipeline, now: float) -> TrustList:
        """The verified trust list from the store.

        :param pipeline: the pipeline (its store)
        :param now: the wall clock
        :raises QrRefused: no list, no pinned root, or a list that is stale or does not verify
        """
        raw = pipeline.store.trust.load()
        if raw is None or self.root_key_pem is None:
            missing = "no trust list imported" if raw is None else "no [ecard] trust_root_key"
            raise QrRefused(QrReason.STALE_TRUST_LIST, missing)
        try:
            return parse_trust_list(raw, self.root_key_pem, now)
        except TrustListError as exc:
            raise QrRefused(QrReason.STALE_TRUST_LIST, f"the stored trust list: {exc}") from exc

    def decode_online(self, text: str, pipeline: Pipeline) -> dict[str, Any] | None:
        """Ask the platform to decode a national code.

        :param text: the code
        :param pipeline: the pipeline (terminal id, scenario)
        :returns: the platform's answer, or ``None`` when it cannot be reached
        """
        if self.decode_url is None:
            return None
        url = self.decode_url.rstrip("/") + DECODE_PATH
        body = {
            "code": text,
            "terminal_id": pipeline.terminal_id,
            "scenario": pipeline.profile.name,
        }
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            headers.update(self.signer("POST", urlsplit(url).path, data))
        try:
            answer = self.session.post(
                url, data=data, headers=headers, timeout=self.decode_timeout_s
            )
        except requests.RequestException as exc:
            log.warning("event=ecard_decode_unreachable error=%s", type(exc).__name__)
            return None
        if answer.status_code >= 500:
            log.warning("event=ecard_decode_unreachable status=%d", answer.status_code)
            return None
        try:
            out = answer.json()
        except ValueError:
            log.warning("event=ecard_decode_bad_answer status=%d", answer.status_code)
            return None
        if not isinstance(out, dict):
            return None
        out["_status"] = answer.status_code
        return out


def _code_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def process_code(
    pipeline: Pipeline, verifier: CodeVerifier, text: str, *, room: str | None = None
) -> Decision:
    """Decide a scanned code, journal it, signal it.

    :param pipeline: the scenario's pipeline
    :param verifier: the terminal's code verification settings
    :param text: the scanned text
    :param room: the hotel room number
    """
    text = text.strip()
    if len(text) > CODE_TEXT_MAX:
        return pipeline.record(refuse(Reason.QR_BAD_ENCODING, length=len(text)), None, "")
    if text.startswith(PREFIX):
        return _open_code(pipeline, verifier, text, room)
    return _opaque_code(pipeline, verifier, text, room)


def _open_code(pipeline: Pipeline, verifier: CodeVerifier, text: str, room: str | None) -> Decision:
    rules = pipeline.profile.qr
    now = pipeline.clock()
    try:
        trust = verifier.trust_list(pipeline, now)
        verified = verify_code(
            text,
            trust,
            now,
            window_s=rules.window_s,
            skew_s=rules.skew_s,
            audience_keys=verifier.audience_keys,
        )
    except QrRefused as exc:
        log.info("event=qr_refused reason=%s", exc.reason)
        return pipeline.record(refuse(QR_REASONS[exc.reason]), None, "")
    credential = verified.credential
    token_hash = pipeline.store.card_hash(canonical_ecard_id(credential.token))
    if not pipeline.store.replay.check_and_add(verified.replay_key, 2 * rules.window_s):
        return pipeline.record(refuse(Reason.QR_REPLAY), None, token_hash)
    identity = verified.identity or {}
    wanted = pipeline.profile.holder_fields
    missing = sorted(set(wanted) - set(identity))
    facts = CardFacts(
        region_code=credential.region,
        card_number=None,
        category=credential.category,
        expiry_date=credential.not_after.date(),
        generation=None,
        genuine=True,
        module="ecard",
        personal={k: identity[k] for k in wanted if k in identity},
        birth_date=_date(identity.get("birth_date")) if "birth_date" in wanted else None,
    )
    if missing:
        decision = refuse(Reason.QR_IDENTITY_UNAVAILABLE, missing=missing)
        return pipeline.record(decision, replace(facts, personal={}), token_hash)
    decision = pipeline.decide(facts, token_hash, room=room)
    decision = replace(decision, detail={**decision.detail, "credential": "ecard"})
    return pipeline.record(decision, facts, token_hash)


def _opaque_code(
    pipeline: Pipeline, verifier: CodeVerifier, text: str, room: str | None
) -> Decision:
    answer = verifier.decode_online(text, pipeline)
    if answer is None:
        if pipeline.profile.qr.opaque_offline == "defer":
            facts = CardFacts("", None, None, None, None, genuine=False, personal={})
            facts = replace(facts, personal={DEFERRED_FIELD: text})
            decision = Decision(ACCEPT, Reason.QR_DEFERRED, {"credential": "national"})
            return pipeline.record(decision, facts, _code_hash(text))
        return pipeline.record(refuse(Reason.QR_ONLINE_UNAVAILABLE), None, _code_hash(text))
    if answer.get("_status") != 200 or not answer.get("ok"):
        reason = str(answer.get("reason", "refused"))[:64]
        return pipeline.record(refuse(Reason.QR_ONLINE_REFUSED, platform_reason=reason), None, "")
    try:
        token = str(answer["token"])
        region = str(answer["region"])
        category = str(answer["category"])
        not_after = dt.date.fromisoformat(str(answer["not_after"]))
    except (KeyError, ValueError):
        log.warning("event=ecard_decode_bad_answer fields=%s", sorted(answer))
        return pipeline.record(refuse(Reason.QR_ONLINE_UNAVAILABLE), None, _code_hash(text))
    identity = answer.get("identity") or {}
    wanted = pipeline.profile.holder_fields
    facts = CardFacts(
        region_code=region,
        card_number=None,
        category=category,
        expiry_date=not_after,
        generation=None,
        genuine=True,
        module="platform",
        personal={k: str(identity[k]) for k in wanted if k in identity},
        birth_date=_date(identity.get("birth_date")) if "birth_date" in wanted else None,
    )
    token_hash = pipeline.store.card_hash(canonical_ecard_id(token))
    missing = sorted(set(wanted) - set(facts.personal))
    if missing:
        decision = refuse(Reason.QR_IDENTITY_UNAVAILABLE, missing=missing)
        return pipeline.record(decision, replace(facts, personal={}), token_hash)
    decision = pipeline.decide(facts, token_hash, room=room)
    decision = replace(decision, detail={**decision.detail, "credential": "national"})
    return pipeline.record(decision, facts, token_hash)


def _date(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def verifier_from_settings(settings: Any) -> CodeVerifier:
    """Build the verifier from the ``[ecard]`` settings.

    :param settings: :class:`config.settings.Settings`
    :raises SscardError: an unreadable root key or audience-key file
    """
    root = None
    if settings.trust_root_key is not None:
        try:
            root = Path(settings.trust_root_key).read_bytes()
        except OSError as exc:
            raise SscardError(f"cannot read trust root {settings.trust_root_key}: {exc}") from exc
    keys = load_audience_keys(settings.audience_keys) if settings.audience_keys else {}
    signer = None
    if settings.sync_key_file is not None and settings.sync_key_id:
        secret = load_terminal_key(settings.sync_key_file)
        signer = functools.partial(
            _sign, terminal_id=settings.terminal_id, key_id=settings.sync_key_id, secret=secret
        )
    url = settings.decode_url or settings.sync_url
    return CodeVerifier(root, keys, url, settings.decode_timeout_s, signer=signer)


def _sign(
    method: str, path: str, body: bytes, *, terminal_id: str, key_id: str, secret: bytes
) -> dict[str, str]:
    return sign_request(method, path, body, terminal_id=terminal_id, key_id=key_id, secret=secret)


__all__ = [
    "DEFERRED_FIELD",
    "PREFIX",
    "AudienceKeyError",
    "CodeVerifier",
    "load_audience_keys",
    "process_code",
    "verifier_from_settings",
]
