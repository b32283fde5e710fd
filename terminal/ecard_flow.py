"""Electronic social security card codes through the same pipeline as physical cards.

A scanned text is sorted by its syntax first (:func:`ecard.national.code_kind`,
docs/qr-format.md §14); anything that is neither kind is ``qr_bad_encoding`` and goes nowhere:

* the open, offline-verifiable format (``SSC1:``, docs/qr-format.md): verified here against
  the trust list in the offline store (an expired one under the profile's ``[degraded]
  trust_list`` policy), then the replay cache (the same credential and counter
  within the window is refused), then — as one more credential — the pipeline's checks and the
  scenario's rules: deny list (the card token, hashed like a card), category, catalogue, list
  age, fares, gates, registrations;
* the national platform's codes: a code this terminal already accepted is a replay; any other
  is sent to the platform's decode endpoint, once, with a short timeout, through the terminal's
  one transport to the platform (:meth:`sync.config.SyncConfig.transport`: signed, with the pin
  or the CA file of ``[sync]``, nothing from the environment). When the platform cannot be
  reached, :func:`defer_or_refuse` decides: refuse (hotels, hospitals: the service is the
  holder's identity), or (buses, gates) accept and journal the code as ``deferred``, its text
  kept encrypted in the journal for the platform to confirm at the next sync
  (:mod:`terminal.ecard_confirm`) — never more than the profile's ``max_deferred`` not yet
  confirmed, never the same code twice (docs/policy.md §7).

A code is remembered in the replay cache only when it is accepted (or deferred): a valid code
refused for another reason is decided afresh when it is shown again.

A verified code of either kind then goes through the pipeline's three steps as a card does
(:meth:`terminal.pipeline.Pipeline.decide_read`: base facts, PIN, personal fields), its side of
them being a :class:`terminal.card_read.CodeRead`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apdu.errors import SscardError
from ecard import (
    CodeKind,
    QrReason,
    QrRefused,
    TrustList,
    TrustListError,
    VerifiedCode,
    code_kind,
    load_public_key,
    verify_code,
)
from ecard.errors import KeyFormatError
from ecard.testkeys import RefusedTestKey, refuse_test_key
from offline_store.keys import read_private_file
from sync.config import SyncConfig
from sync.deferred import DEFERRED_FIELD, code_hash
from sync.errors import (
    SyncAuthError,
    SyncConfigError,
    SyncError,
    SyncProtocolError,
    SyncRefused,
)
from sync.transport import Exchange, SignedTransport
from terminal.card_read import CardFacts, CodeRead
from terminal.list_policy import trust_list_for_codes
from terminal.pipeline import DEFERRED, Decision, Pipeline, refuse
from terminal.reasons import Reason

log = logging.getLogger(__name__)

PREFIX = "SSC1:"
DECODE_PATH = "/v1/ecard/decode"
CODE_TEXT_MAX = 4096
#: how long a national code this terminal accepted (online or deferred) stays a replay: its
#: validity is not public; the reference platform's codes live 24 hours
NATIONAL_REPLAY_S = 24 * 3600.0
NATIONAL_REPLAY_LABEL = "national-ecard:"
DECODE_ANSWERS = frozenset({200, 422})  # 422: {"ok": false, "reason"} (sync/openapi.yaml)


class AudienceKeyError(SscardError):
    """An audience-key file that is unreadable, too open or malformed."""


def load_audience_keys(path: str | Path, *, production: bool = False) -> dict[str, bytes]:
    """Read this terminal's identity-blob keys: a 0600 TOML file of ``kid = "64 hex"`` lines.

    :param path: the file
    :param production: a production terminal: a TEST KEY (:mod:`ecard.testkeys`) is refused
    :raises AudienceKeyError: unreadable, readable by others, or a key that is not 32 bytes
    :raises RefusedTestKey: ``production`` and a key is a test key
    """
    raw = read_private_file(path, "audience key", AudienceKeyError)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AudienceKeyError(f"{path}: not valid TOML: {exc}") from exc
    keys: dict[str, bytes] = {}
    for kid, value in data.items():
        try:
            key = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise AudienceKeyError(f"{path}: {kid} must be 64 hex digits (a 32-byte key)")
        refuse_test_key(key, f"audience key {kid} in {path}", production=production, text=raw)
        keys[kid] = key
    return keys


@dataclass
class CodeVerifier:
    """What a terminal needs to verify codes (from the ``[ecard]`` and ``[sync]`` settings).

    :param root_key_pem: the pinned key trust lists are signed with, or ``None``
    :param audience_keys: audience key id → 32-byte key, for identity blobs
    :param transport: the terminal's one transport to the platform, or ``None`` (no platform:
        national codes are decided as if it were unreachable)
    :param decode_url: ``[ecard] decode_url`` when it is not the transport's base URL
    :param decode_timeout_s: connect and read timeout of the decode call (one attempt)
    :param production: a production terminal: TEST KEYS are refused on every trust-list load
    """

    root_key_pem: bytes | None = None
    audience_keys: Mapping[str, bytes] = field(default_factory=dict)
    transport: SignedTransport | None = None
    decode_url: str | None = None
    decode_timeout_s: float = 2.0
    production: bool = False

    def trust_list(self, pipeline: Pipeline, now: float) -> tuple[TrustList, tuple[str, ...]]:
        """The verified trust list from the store, under the profile's degraded policy for an
        expired or missing list (docs/policy.md §3), and the journal flags that go with it.

        :param pipeline: the pipeline (its store, profile, platform link and list watch)
        :param now: the wall clock
        :raises QrRefused: no usable list, no pinned root, or a list that does not verify (in
            production, also one holding a TEST KEY, whatever the policy)
        """
        if self.root_key_pem is None:
            raise QrRefused(QrReason.STALE_TRUST_LIST, "no [ecard] trust_root_key")
        try:
            return trust_list_for_codes(
                pipeline.store,
                pipeline.profile,
                self.root_key_pem,
                now,
                online=pipeline.online,
                watch=pipeline.watch,
                production=self.production,
            )
        except TrustListError as exc:
            log.warning("event=trust_list_unusable error=%s", exc.message)
            raise QrRefused(QrReason.STALE_TRUST_LIST, f"the stored trust list: {exc}") from exc

    def verify(
        self, pipeline: Pipeline, text: str, now: float
    ) -> tuple[VerifiedCode, tuple[str, ...]]:
        """Verify an open-format code offline, against :meth:`trust_list` under the profile's
        ``[qr]`` rules and with the audience keys; the verified code and the list's journal
        flags.

        :param pipeline: the pipeline (its store, profile, platform link and list watch)
        :param text: the scanned text
        :param now: the wall clock
        :raises QrRefused: no usable trust list (see :meth:`trust_list`), or the code fails a
            check (:func:`ecard.verify_code`)
        """
        trust, flags = self.trust_list(pipeline, now)
        rules = pipeline.profile.qr
        verified = verify_code(
            text,
            trust,
            now,
            window_s=rules.window_s,
            skew_s=rules.skew_s,
            audience_keys=self.audience_keys,
        )
        return verified, flags

    def decode_online(self, text: str, pipeline: Pipeline) -> dict[str, Any] | None:
        """Ask the platform to decode a national code: one signed attempt, no retry (a holder
        is waiting), through the terminal's one transport.

        :param text: the code (national syntax: checked by the caller)
        :param pipeline: the pipeline (terminal id, scenario)
        :returns: the platform's answer with its HTTP status under ``_status``, or ``None``
            when it cannot be reached, its certificate is refused (pin or CA file), it refuses
            this terminal's signature, or it answers off the contract
        """
        if self.transport is None:
            return None
        body = {
            "code": text,
            "terminal_id": pipeline.terminal_id,
            "scenario": pipeline.profile.name,
        }
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            exchange, answer = self.transport.request(
                "POST",
                DECODE_PATH,
                body=data,
                content_type="application/json",
                accept=DECODE_ANSWERS,
                check=_decode_answer,
                timeout_s=self.decode_timeout_s,
                attempts=1,
                base_url=self.decode_url,
            )
        except SyncAuthError as exc:
            log.warning("event=ecard_decode_unreachable error=SyncAuthError code=%s", exc.code)
            return None
        except SyncRefused as exc:
            return {"ok": False, "reason": exc.code or f"http_{exc.status}", "_status": exc.status}
        except SyncError as exc:
            log.warning("event=ecard_decode_unreachable error=%s", type(exc).__name__)
            return None
        assert answer is not None  # the check always returns one
        return {**answer, "_status": exchange.status}


def _decode_answer(exchange: Exchange) -> dict[str, Any]:
    """The decode answer's JSON object (anything else counts as no answer)."""
    out = exchange.json()
    if not isinstance(out, dict):
        raise SyncProtocolError("the decode answer is not a JSON object")
    return out


def national_replay_key(text: str) -> str:
    """The replay-cache key of a national code: its whole text (the cache keeps a hash).

    :param text: the code
    :raises: nothing
    """
    return NATIONAL_REPLAY_LABEL + text


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
    kind = code_kind(text)
    if kind is CodeKind.OPEN:
        return _open_code(pipeline, verifier, text, room)
    if kind is CodeKind.NATIONAL:
        return _national_code(pipeline, verifier, text, room)
    # neither format: never sent to the platform, never deferred (docs/qr-format.md §14)
    log.info("event=qr_refused reason=bad_encoding kind=unknown chars=%d", len(text))
    return pipeline.record(refuse(Reason.QR_BAD_ENCODING), None, "")


def _open_code(pipeline: Pipeline, verifier: CodeVerifier, text: str, room: str | None) -> Decision:
    rules = pipeline.profile.qr
    now = pipeline.clock()
    try:
        verified, flags = verifier.verify(pipeline, text, now)
    except QrRefused as exc:
        log.info("event=qr_refused reason=%s", exc.reason)
        return pipeline.record(pipeline.decide_error(exc), None, "")
    credential = verified.credential
    read = CodeRead(
        pipeline.profile,
        credential.token,
        credential.region,
        credential.category,
        credential.not_after.date(),
        verified.identity or {},
        module="ecard",
    )
    if pipeline.store.replay.seen(verified.replay_key):
        token_hash = pipeline.store.card_hash(read.credential_id())
        return pipeline.record(refuse(Reason.QR_REPLAY), None, token_hash)
    replay = (verified.replay_key, 2 * rules.window_s)
    return _decide(pipeline, read, room=room, flags=flags, replay=replay)


def _remember(pipeline: Pipeline, decision: Decision, key: str, ttl_s: float) -> Decision:
    """Record an accepted code in the replay cache — only an accepted one: a valid code
    refused for another reason (a full gate, anti-passback, the catalogue) is decided afresh
    when it is shown again (issue 11 §6)."""
    if decision.accepted and not pipeline.store.replay.check_and_add(key, ttl_s):
        return refuse(Reason.QR_REPLAY)
    return decision


def defer_or_refuse(pipeline: Pipeline, text: str) -> Decision:
    """Decide a national code the platform did not decode (unreachable, certificate refused,
    no platform configured): the one place that says defer or refuse.

    In order: the profile refuses (``opaque_offline = "refuse"``) → ``qr_online_unavailable``;
    the code was accepted here before → ``qr_replay``; the terminal already holds
    ``max_deferred`` deferred codes the platform has not confirmed → ``qr_deferred_limit``;
    what can be checked without the card (:meth:`Pipeline.decide_deferred`: the catalogue, a
    gate's capacity) refuses → that refusal; else the code is remembered in the replay cache
    and deferred (``qr_deferred``). The count falls as ``sscard sync`` has the platform
    confirm the deferred codes (docs/qr-format.md §14.4).

    :param pipeline: the scenario's pipeline (profile, store)
    :param text: the code (national syntax)
    :returns: the decision, not yet journaled
    :raises StoreError: the store failed
    """
    rules = pipeline.profile.qr
    if rules.opaque_offline != "defer":
        return refuse(Reason.QR_ONLINE_UNAVAILABLE)
    key = national_replay_key(text)
    if pipeline.store.replay.seen(key):
        return refuse(Reason.QR_REPLAY)
    held = pipeline.store.journal.count(outcome=DEFERRED, unconfirmed=True)
    if held >= rules.max_deferred:
        log.warning("event=qr_deferred_limit held=%d max_deferred=%d", held, rules.max_deferred)
        return refuse(Reason.QR_DEFERRED_LIMIT, deferred=held, max_deferred=rules.max_deferred)
    return _remember(pipeline, pipeline.decide_deferred(), key, NATIONAL_REPLAY_S)


def _national_code(
    pipeline: Pipeline, verifier: CodeVerifier, text: str, room: str | None
) -> Decision:
    hashed = code_hash(text)  # what a deferred row names its code by (sync.deferred)
    if pipeline.store.replay.seen(national_replay_key(text)):
        return pipeline.record(refuse(Reason.QR_REPLAY), None, hashed)
    answer = verifier.decode_online(text, pipeline)
    if answer is None:
        decision = defer_or_refuse(pipeline, text)
        if decision.reason != Reason.QR_DEFERRED:
            return pipeline.record(decision, None, hashed)
        facts = CardFacts("", None, None, None, None, genuine=False, personal={})
        facts = replace(facts, personal={DEFERRED_FIELD: text})
        return pipeline.record(decision, facts, hashed)
    if answer.get("_status") != 200 or answer.get("ok") is not True:
        reason = str(answer.get("reason", "refused"))[:64]
        return pipeline.record(refuse(Reason.QR_ONLINE_REFUSED, platform_reason=reason), None, "")
    try:
        token = str(answer["token"])
        region = str(answer["region"])
        category = str(answer["category"])
        not_after = dt.date.fromisoformat(str(answer["not_after"]))
    except (KeyError, ValueError):
        log.warning("event=ecard_decode_bad_answer fields=%s", sorted(answer))
        return pipeline.record(refuse(Reason.QR_ONLINE_UNAVAILABLE), None, hashed)
    identity = answer.get("identity")
    read = CodeRead(
        pipeline.profile,
        token,
        region,
        category,
        not_after,
        identity if isinstance(identity, dict) else {},
        module="platform",
    )
    replay = (national_replay_key(text), NATIONAL_REPLAY_S)
    return _decide(pipeline, read, room=room, flags=(), replay=replay)


def _decide(
    pipeline: Pipeline,
    read: CodeRead,
    *,
    room: str | None,
    flags: tuple[str, ...],
    replay: tuple[str, float],
) -> Decision:
    """A verified code through the pipeline's three steps, as a card: refused at once when it
    lacks an identity item the profile reads; an accept remembered in the replay cache (its
    key and lifetime in ``replay``); the decision journaled and signalled."""
    if read.missing:
        token_hash = pipeline.store.card_hash(read.credential_id())
        decision = refuse(Reason.QR_IDENTITY_UNAVAILABLE, missing=read.missing)
        return pipeline.record(decision, read.base(), token_hash)

    def settle(decision: Decision) -> Decision:
        decision = _remember(pipeline, decision, *replay)
        return replace(decision, detail={**decision.detail, **read.detail})

    return pipeline.process(read, room=room, flags=flags, settle=settle)


def verifier_from_settings(settings: Any, transport: SignedTransport | None = None) -> CodeVerifier:
    """Build the verifier from the ``[ecard]`` and ``[sync]`` settings.

    National codes go to ``[ecard] decode_url``, else ``[sync] url``; either way through the
    terminal's one transport to the platform, signed with the ``[sync]`` key and held to its
    pin or CA file. On a production terminal a TEST KEY as the trust root or an audience key
    is refused here, before any code is read.

    :param settings: :class:`config.settings.Settings`
    :param transport: the terminal's transport when the caller has one (shared with the
        sync); default: one made from the settings when a platform is configured
    :raises SscardError: an unreadable root key or audience-key file
    :raises SyncConfigError: a platform URL without the ``[sync]`` url, key file and key id
        that sign its requests, or a plain-HTTP URL with a pin or CA file
    :raises RefusedTestKey: ``production = true`` and a TEST KEY as root or audience key
    """
    production = bool(settings.production)
    ecard = settings.ecard
    root = None
    if ecard.trust_root_key is not None:
        try:
            root = Path(ecard.trust_root_key).read_bytes()
        except OSError as exc:
            raise SscardError(f"cannot read trust root {ecard.trust_root_key}: {exc}") from exc
        _refuse_test_root(root, f"[ecard] trust_root_key {ecard.trust_root_key}", production)
    keys = (
        load_audience_keys(ecard.audience_keys, production=production)
        if ecard.audience_keys
        else {}
    )
    url = ecard.decode_url or settings.sync_url
    decode_url = None
    if url is not None:
        if transport is None:
            try:
                config = SyncConfig.from_settings(settings)
            except SyncConfigError as exc:
                raise SyncConfigError(
                    f"national codes are decoded by the platform, with signed requests: {exc}"
                ) from None
            transport = config.transport()
        if url.rstrip("/") != transport.base_url:
            transport.check_url(url)  # [ecard] decode_url, held to the same pin and CA file
            decode_url = url
    return CodeVerifier(
        root,
        keys,
        transport if url is not None else None,
        decode_url,
        ecard.decode_timeout_s,
        production=production,
    )


def _refuse_test_root(pem: bytes, what: str, production: bool) -> None:
    """Refuse a TEST KEY as the pinned trust root on a production terminal (a malformed PEM
    is left to the trust list's own check, which names the problem)."""
    if not production:
        return
    try:
        spki = load_public_key(pem).spki
    except KeyFormatError:
        spki = b""
    refuse_test_key(spki, what, production=production, text=pem)


__all__ = [
    "DEFERRED_FIELD",
    "NATIONAL_REPLAY_S",
    "PREFIX",
    "AudienceKeyError",
    "CodeVerifier",
    "RefusedTestKey",
    "defer_or_refuse",
    "load_audience_keys",
    "national_replay_key",
    "process_code",
    "verifier_from_settings",
]
