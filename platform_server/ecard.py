"""Opaque national e-card codes: the platform's decode table (``POST /v1/ecard/decode``).

``platform ecard issue --persona FILE`` stores a random code (``CNSSC`` + 32 Base32
characters, no meaning of its own) with the card's token, region, category and end of
validity, and the holder's identity; a terminal sends a scanned code and gets them back
(terminal/ecard_flow.py). The token is ``HMAC-SHA256(token key, "sscard-ecard-token/1|" +
canonical card id)``: stable per card, and nobody without the platform's token key can tell
the card from it. The identity is only answered to a terminal registered for the scenario it
names, when that scenario may read identity (an audience key serves it).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select

from offline_store.errors import StoreError
from offline_store.identity import canonical_card_id
from platform_server.db import ecard_code
from platform_server.errors import InvalidInput, PlatformError
from platform_server.keys import PlatformKeys
from platform_server.terminals import TerminalInfo
from sync.wire import CATEGORY, CONTROL, SCENARIO, quote

__all__ = [
    "CODE_PREFIX",
    "DecodeRefusal",
    "DecodeRefused",
    "DecodeRequest",
    "IssuedCode",
    "decode",
    "issue",
    "token_for",
]

log = logging.getLogger(__name__)

CODE_PREFIX = "CNSSC"
CODE_RANDOM_BYTES = 20
CODE_TEXT_MAX = 4096  # terminal/ecard_flow.py refuses longer texts before asking
TERMINAL_ID_MAX = 64
TOKEN_LABEL = "sscard-ecard-token/1|"
IDENTITY_FIELDS = ("name", "ssn", "sex", "birth_date", "ethnicity")
DEFAULT_CODE_VALIDITY_S = 24 * 3600
DECODE_KEYS = frozenset({"code", "terminal_id", "scenario"})


class DecodeRefusal(StrEnum):
    """Why the platform does not decode a code (the ``reason`` of a 422 answer)."""

    UNKNOWN_CODE = "unknown_code"  # the platform never issued this code
    CODE_EXPIRED = "code_expired"  # the code is past its end of validity
    # the request names another terminal than the one that signed it
    TERMINAL_MISMATCH = "terminal_mismatch"
    # the terminal is not registered for the request's scenario
    SCENARIO_NOT_ALLOWED = "scenario_not_allowed"


class DecodeRefused(PlatformError):
    """A well-formed decode request the platform answers with ``{"ok": false}``.

    :param reason: the refusal
    """

    def __init__(self, reason: DecodeRefusal) -> None:
        self.reason = reason
        super().__init__(f"decode refused: {reason}", str(reason))


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A code ``platform ecard issue`` stored.

    :param code: the code's text (what the QR code holds)
    :param token: the card's token (what ``platform deny add --ecard-token`` takes)
    :param expires_at: the code is refused from then on, seconds since 1970
    """

    code: str
    token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class DecodeRequest:
    """The body of ``POST /v1/ecard/decode``.

    :param code: the scanned text
    :param terminal_id: the terminal that scanned it
    :param scenario: the scenario it runs
    """

    code: str
    terminal_id: str
    scenario: str

    @classmethod
    def parse(cls, data: object) -> DecodeRequest:
        """Check a decoded body.

        :param data: the JSON document
        :raises InvalidInput: other keys, or values of the wrong type or length
        """
        if not isinstance(data, dict) or data.keys() != DECODE_KEYS:
            raise InvalidInput(f"a decode request has exactly {sorted(DECODE_KEYS)}")
        code, terminal_id, scenario = data["code"], data["terminal_id"], data["scenario"]
        if not isinstance(code, str) or not 0 < len(code) <= CODE_TEXT_MAX or CONTROL.search(code):
            raise InvalidInput(f"code must be 1-{CODE_TEXT_MAX} characters without controls")
        if (
            not isinstance(terminal_id, str)
            or not 0 < len(terminal_id) <= TERMINAL_ID_MAX
            or CONTROL.search(terminal_id)
        ):
            raise InvalidInput(f"terminal_id must be 1-{TERMINAL_ID_MAX} characters")
        if not isinstance(scenario, str) or not SCENARIO.fullmatch(scenario):
            raise InvalidInput("scenario must be a lower-case scenario name")
        return cls(code, terminal_id, scenario)


def token_for(keys: PlatformKeys, canonical: str) -> str:
    """The e-card token of a card: keyed, stable, 64 hex characters.

    :param keys: the platform's keys (the token key)
    :param canonical: the card's canonical identifier (``ssc:440100:A01023450``)
    :raises: nothing
    """
    message = (TOKEN_LABEL + canonical).encode("utf-8")
    return hmac.new(keys.token_key, message, hashlib.sha256).hexdigest()


def issue(
    conn: Connection, keys: PlatformKeys, persona: Mapping[str, Any], *, now: float, valid_s: float
) -> IssuedCode:
    """Store a new opaque code for a persona's card and holder.

    :param conn: a connection in a write transaction
    :param keys: the platform's keys
    :param persona: a persona document (drivers/virtual/personas): ``[card]`` city_code,
        card_number, category, expiry_date; ``[holder]`` name, ssn, sex, birth_date, ethnicity
    :param now: the platform's clock
    :param valid_s: how long the code may be decoded (the default is
        :meth:`platform_server.Platform.issue_ecard`'s)
    :raises InvalidInput: ``invalid_persona``: missing or malformed card data
    """
    card = persona.get("card")
    if not isinstance(card, Mapping):
        raise InvalidInput("the persona has no [card] table", "invalid_persona")
    try:
        canonical = canonical_card_id(str(card.get("city_code", "")), str(card.get("card_number")))
    except StoreError as exc:
        raise InvalidInput(f"the persona's card: {exc}", "invalid_persona") from None
    category = str(card.get("category", "3"))
    expiry = card.get("expiry_date")
    if not CATEGORY.fullmatch(category) or not isinstance(expiry, dt.date):
        raise InvalidInput(
            "the persona's card needs category 1-4 and an expiry_date", "invalid_persona"
        )
    holder = persona.get("holder", {})
    identity = (
        {k: _text(holder[k]) for k in IDENTITY_FIELDS if k in holder}
        if isinstance(holder, Mapping)
        else {}
    )
    code = CODE_PREFIX + base64.b32encode(secrets.token_bytes(CODE_RANDOM_BYTES)).decode("ascii")
    issued = IssuedCode(code, token_for(keys, canonical), now + valid_s)
    conn.execute(
        insert(ecard_code).values(
            code=code,
            token=issued.token,
            region=canonical.split(":")[1],
            category=category,
            not_after=expiry.isoformat(),
            identity=json.dumps(identity, ensure_ascii=False) if identity else None,
            issued_at=now,
            expires_at=issued.expires_at,
        )
    )
    log.info("event=ecard_code_issued identity=%s", "yes" if identity else "no")
    return issued


def _text(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def decode(
    conn: Connection,
    keys: PlatformKeys,
    signer: TerminalInfo,
    request: DecodeRequest,
    now: float,
) -> dict[str, Any]:
    """Decode a code for a terminal.

    :param conn: a connection
    :param keys: the platform's keys (which scenarios may read identity)
    :param signer: the terminal that signed the request
    :param request: the request
    :param now: the platform's clock
    :returns: the 200 answer ``{"ok": true, "token", "region", "category", "not_after",
        "identity"?}``
    :raises DecodeRefused: the 422 answer's reason
    """
    if request.terminal_id != signer.terminal_id:
        raise DecodeRefused(DecodeRefusal.TERMINAL_MISMATCH)
    if request.scenario not in signer.scenarios:
        raise DecodeRefused(DecodeRefusal.SCENARIO_NOT_ALLOWED)
    row = conn.execute(select(ecard_code).where(ecard_code.c.code == request.code)).one_or_none()
    if row is None:
        raise DecodeRefused(DecodeRefusal.UNKNOWN_CODE)
    if now >= row.expires_at:
        raise DecodeRefused(DecodeRefusal.CODE_EXPIRED)
    answer: dict[str, Any] = {
        "ok": True,
        "token": row.token,
        "region": row.region,
        "category": row.category,
        "not_after": row.not_after,
    }
    with_identity = row.identity is not None and request.scenario in keys.identity_scenarios
    if with_identity:
        answer["identity"] = json.loads(row.identity)
    log.info(
        "event=ecard_decoded terminal=%s scenario=%s identity=%s",
        quote(signer.terminal_id),
        quote(request.scenario),
        "yes" if with_identity else "no",
    )
    return answer
