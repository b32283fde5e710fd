"""Deferred national e-card codes on the platform: the verdict a terminal asks for at its sync
(``POST /v1/ecard/confirm``, docs/sync.md §12), and the operator's report of every deferred
code and what became of it (``sscard platform ecard deferred``).

A terminal deferred a code it could not have decoded while the holder waited, journaled a
``deferred`` row naming the code by its SHA-256, and uploaded it. It then sends the code with
the row's seq; the platform checks the code against the stored row (the row is the signer's,
``deferred``, and names this very text) and judges it **as of the row's wall time** — the
moment the holder was let through — never as of now: a code its holder showed within its
validity stays valid however late the terminal syncs. In order:

1. a code the platform never issued → ``unknown_code``;
2. a code whose validity had ended at the scan → ``code_expired``;
3. a row of a scenario the terminal is not registered for → ``scenario_not_allowed``;
4. a card whose validity had ended that day → ``card_expired``;
5. a card on the platform's deny list with an entry effective by that day → ``deny_<reason>``
   (a card reported lost after the ride does not make the ride invalid).

The terminal journals the verdict as a follow-up row (``ref_seq`` = the deferred row's seq:
``ecard_confirmed``, or ``ecard_invalid`` flagged ``invalid:<reason>``), which the platform
stores like any other row; :func:`deferred_codes` pairs each deferred row with it.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from offline_store.denyfile import DenyReason
from offline_store.identity import canonical_ecard_id, keyed_card_hash
from platform_server import cards
from platform_server.db import ecard_code, journal
from platform_server.errors import InvalidInput, NotFound
from platform_server.keys import PlatformKeys
from platform_server.terminals import TerminalInfo
from sync.deferred import CONFIRMED, INVALID, Confirmation, ConfirmRequest, Invalidity, code_hash
from sync.wire import quote

__all__ = ["DeferredCode", "confirm", "deferred_codes", "parse_request"]

log = logging.getLogger(__name__)

#: each reason a card is on the deny list, and its invalidity ``deny_<reason>``
DENIED = {str(reason): Invalidity(f"deny_{reason}") for reason in DenyReason}
WAITING = "waiting"
INVALID_PREFIX = "invalid:"


def parse_request(body: object) -> ConfirmRequest:
    """The confirm request of a body.

    :param body: the parsed JSON body
    :raises InvalidInput: ``invalid_body``, naming what is wrong (never the code)
    """
    try:
        return ConfirmRequest.parse(body)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def confirm(
    conn: Connection, keys: PlatformKeys, signer: TerminalInfo, request: ConfirmRequest
) -> Confirmation:
    """Judge a deferred code as of its scan (the module docstring's order).

    :param conn: a connection
    :param keys: the platform's keys (the pepper of the card's keyed hash)
    :param signer: the terminal that signed the request
    :param request: the deferred row's seq and the code
    :raises NotFound: ``not_deferred`` (the signer has no stored deferred row with that seq:
        not uploaded yet, or another row) or ``code_mismatch`` (the row names another code)
    """
    row = conn.execute(
        select(journal.c.outcome, journal.c.wall_time_us, journal.c.scenario, journal.c.record)
        .where(journal.c.terminal_id == signer.terminal_id)
        .where(journal.c.seq == request.seq)
    ).one_or_none()
    if row is None or row.outcome != "deferred":
        raise NotFound(f"no deferred row {request.seq} of this terminal is stored", "not_deferred")
    named = str(json.loads(row.record).get("credential_token", ""))
    if not hmac.compare_digest(named, code_hash(request.code)):
        raise NotFound(f"deferred row {request.seq} names another code", "code_mismatch")
    scanned = row.wall_time_us / 1_000_000
    verdict = _judge(conn, keys, signer, request, scenario=row.scenario, scanned=scanned)
    log.info(
        "event=ecard_deferred_judged terminal=%s seq=%d valid=%s reason=%s",
        quote(signer.terminal_id),
        request.seq,
        "yes" if verdict.valid else "no",
        verdict.reason or "-",
    )
    return verdict


def _judge(
    conn: Connection,
    keys: PlatformKeys,
    signer: TerminalInfo,
    request: ConfirmRequest,
    *,
    scenario: str,
    scanned: float,
) -> Confirmation:
    seq = request.seq
    issued = conn.execute(select(ecard_code).where(ecard_code.c.code == request.code)).one_or_none()
    if issued is None:
        return Confirmation(seq, False, Invalidity.UNKNOWN_CODE)
    if scanned >= issued.expires_at:
        return Confirmation(seq, False, Invalidity.CODE_EXPIRED)
    if scenario not in signer.scenarios:
        return Confirmation(seq, False, Invalidity.SCENARIO_NOT_ALLOWED)
    day = dt.date.fromtimestamp(scanned)  # the platform's local date, as the terminal's own
    not_after = dt.date.fromisoformat(issued.not_after)
    if day > not_after:
        return Confirmation(seq, False, Invalidity.CARD_EXPIRED)
    card_hash = keyed_card_hash(keys.pepper, canonical_ecard_id(issued.token))
    status = cards.status(conn, card_hash)
    if status.refuses_on(day) and status.reason in DENIED:
        return Confirmation(seq, False, DENIED[status.reason])
    return Confirmation(seq, True, None, issued.token, issued.region, issued.category, not_after)


@dataclass(frozen=True, slots=True)
class DeferredCode:
    """A deferred row and what became of its code, as ``platform ecard deferred`` shows it.

    :param terminal_id: the terminal
    :param seq: the deferred row's seq
    :param wall_time_us: when the holder was let through (the terminal's clock)
    :param scenario: its scenario
    :param status: ``waiting`` (no follow-up row stored yet), ``confirmed`` or ``invalid``
    :param reason: why invalid (``unknown_code`` …), else ``None``
    :param follow_up_seq: the follow-up row's seq, ``None`` while waiting
    :param amount: the fare the follow-up row carries (a bus ride), in fen
    """

    terminal_id: str
    seq: int
    wall_time_us: int
    scenario: str
    status: str
    reason: str | None
    follow_up_seq: int | None
    amount: int | None


def deferred_codes(conn: Connection, terminal_id: str | None, limit: int) -> list[DeferredCode]:
    """The newest ``limit`` deferred rows (of one terminal, or of all), oldest first, each with
    its follow-up row when one is stored.

    :param conn: a connection
    :param terminal_id: one terminal, or ``None`` for all
    :param limit: how many deferred rows
    :raises: nothing beyond the database's own errors
    """
    query = select(
        journal.c.terminal_id, journal.c.seq, journal.c.wall_time_us, journal.c.scenario
    ).where(journal.c.outcome == "deferred")
    if terminal_id is not None:
        query = query.where(journal.c.terminal_id == terminal_id)
    query = query.order_by(journal.c.wall_time_us.desc(), journal.c.seq.desc()).limit(limit)
    deferred = list(reversed(conn.execute(query).all()))
    follow_ups = _follow_ups(conn, {row.terminal_id for row in deferred})
    out = []
    for row in deferred:
        status, reason, follow_up_seq, amount = WAITING, None, None, None
        found = follow_ups.get((row.terminal_id, row.seq))
        if found is not None:
            follow_up_seq, reason_code, flags, amount = found
            reasons = [f[len(INVALID_PREFIX) :] for f in flags if f.startswith(INVALID_PREFIX)]
            status = "confirmed" if reason_code == CONFIRMED else "invalid"
            reason = reasons[0] if reasons else None
        out.append(
            DeferredCode(
                row.terminal_id,
                row.seq,
                row.wall_time_us,
                row.scenario,
                status,
                reason,
                follow_up_seq,
                amount,
            )
        )
    return out


def _follow_ups(
    conn: Connection, terminals: set[str]
) -> dict[tuple[str, int], tuple[int, str, list[str], int | None]]:
    """(terminal, deferred seq) → (follow-up seq, reason code, flags, amount)."""
    if not terminals:
        return {}
    rows = conn.execute(
        select(
            journal.c.terminal_id,
            journal.c.seq,
            journal.c.reason_code,
            journal.c.amount,
            journal.c.record,
        ).where(
            journal.c.terminal_id.in_(sorted(terminals)),
            journal.c.reason_code.in_((CONFIRMED, INVALID)),
        )
    )
    found: dict[tuple[str, int], tuple[int, str, list[str], int | None]] = {}
    for terminal_id, seq, reason_code, amount, record in rows:
        fields: dict[str, Any] = json.loads(record)
        ref = fields.get("ref_seq")
        if isinstance(ref, str) and ref.isdigit():
            found.setdefault(
                (terminal_id, int(ref)), (seq, reason_code, fields.get("flags", []), amount)
            )
    return found
