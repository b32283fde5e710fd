"""Purchases the terminals journal: the ``payment`` object of a row, its TAC checked with the
issuer's roots, and the one ``payment`` row per purchase the clearing counts (issue 15;
docs/sync.md §5.7, docs/clearing.md).

**The payment object** (the terminal's ``offline_store.payment``; ``sync/openapi.yaml``
``Payment``): ``kind`` (``transit`` | ``medical``), ``state`` (``pending`` | ``done`` | ``torn``
| ``void``), ``amount_fen``, ``balance_before``, ``balance_after``, ``card_sequence`` (the card's
offline sequence the purchase used), ``terminal_sequence`` (the PSAM's), ``tac`` (8 upper-case
hex), ``time`` (``YYYYMMDDhhmmss``, as sent to the card), ``terminal_number`` (the PSAM's 12
digits), ``card_serial`` (transit: the 20-hex application serial of EF 0015; medical: the 32-hex
卡识别码), ``issuer`` (transit: the 16-hex issuer id of EF 0015; medical: ``null``); a medical
object adds ``self_pay_fen`` and ``pooled_fen``. Integers are JSON numbers; a fact not known yet
is ``null``. Any other key, or a value off its format, refuses the whole batch (400).

**One purchase, many rows.** Journal rows are immutable, so a purchase appears as ``pending``,
then ``done`` — or ``torn``, then a recovery row ``done`` or ``void``. The platform keys a
purchase as the card does: (kind, card_serial, card_sequence), and keeps the facts of the
**latest** row that states it: of the same terminal, the higher journal seq; of another
terminal, the later ``wall_time_us``. A row the platform already holds (same terminal and
seq) changes nothing, so uploads stay idempotent. A void purchase and the retry that the same
tap charged share a card sequence (the card never moved): the retry's rows come later and win.
A row without a card sequence never reached the card and names no purchase.

**The TAC** (``tac_status``): ``ok``; ``mismatch`` — stored and counted, never dropped;
``no_key`` — no root for the card's issuer (or no ``payment-roots.toml``); ``incomplete`` — a
fact the TAC covers is missing (a ``done`` row without its TAC, a medical row without its
self-paid or pooled part): said so, never guessed; ``none`` — a row with no TAC to check yet.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from apdu import crypto, medical_payment, purse
from apdu.payment import Charge
from offline_store.payment_object import INT_RANGES, KINDS, MEDICAL_ONLY, PaymentFacts, problems
from platform_server.db import payment
from platform_server.errors import InvalidInput
from platform_server.payment_keys import PaymentRoots
from sync.wire import quote

__all__ = [
    "TAC_STATUSES",
    "PaymentFact",
    "parse_payment",
    "record",
    "tac_status",
]

log = logging.getLogger(__name__)

TAC_STATUSES = ("ok", "mismatch", "no_key", "incomplete", "none")
_COMMON = tuple(f.name for f in fields(PaymentFacts) if f.name not in MEDICAL_ONLY)
MEDICAL_CITY_DIGITS = 6  # the 卡识别码 opens with the card's city code (3 bytes BCD)


@dataclass(frozen=True, slots=True)
class PaymentFact(PaymentFacts):
    """One row's payment object, checked (see the module docstring and
    :class:`offline_store.payment_object.PaymentFacts` for each fact)."""

    @property
    def when(self) -> dt.datetime:
        """The transaction time (the card's, local)."""
        return dt.datetime.strptime(self.time, "%Y%m%d%H%M%S")

    @property
    def day(self) -> str:
        """The clearing day, ``YYYY-MM-DD``: the day of the transaction time."""
        return f"{self.time[0:4]}-{self.time[4:6]}-{self.time[6:8]}"

    @property
    def clearing_issuer(self) -> str:
        """Whom the purchase is cleared with: the transit issuer id; for a medical payment,
        the city code the 卡识别码 opens with (the card's issuing region).
        """
        if self.kind == "transit" and self.issuer is not None:
            return self.issuer
        return self.card_serial[:MEDICAL_CITY_DIGITS]


def parse_payment(raw: object, where: str) -> PaymentFact:
    """Check a row's ``payment`` object.

    :param raw: the decoded JSON value
    :param where: the row, for messages (``rows[3]``)
    :raises InvalidInput: not an object of the contract (naming the key, never its value)
    """
    where = f"{where}.payment"
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where} must be an object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{where}.kind must be one of {list(KINDS)}")
    expected = set(_COMMON) | (set(MEDICAL_ONLY) if kind == "medical" else set())
    if set(raw) != expected:
        missing = sorted(expected - set(raw))
        unknown = sorted(set(raw) - expected)
        raise InvalidInput(f"{where}: keys: missing {missing}, unknown {unknown[:5]}")
    values: dict[str, Any] = {
        name: _integral(raw[name]) if name in INT_RANGES else raw[name] for name in expected
    }
    for name, rule in problems(values):
        raise InvalidInput(f"{where}.{name} {rule} (docs/sync.md §5.7)")
    return PaymentFact(**values)


def _integral(value: object) -> object:
    """``885.0`` is the integer 885, as JSON Schema says (a terminal writes ``885``; the row's
    hash covers whichever was sent); any other value as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def tac_status(fact: PaymentFact, roots: PaymentRoots | None) -> str:
    """Check a payment's TAC with the issuer's root (see the module docstring).

    :param fact: the payment
    :param roots: the platform's TAC roots, or ``None``
    :raises: nothing
    """
    if fact.tac is None:
        return "incomplete" if fact.state == "done" else "none"
    if fact.terminal_sequence is None:
        return "incomplete"
    try:
        when = fact.when
    except ValueError:  # a 30 February: no card made this TAC
        return "mismatch"
    if fact.kind == "transit":
        assert fact.issuer is not None
        root = roots.transit_root(fact.issuer) if roots is not None else None
        if root is None:
            return "no_key"
        serial = bytes.fromhex(fact.card_serial)
        # card level first, as the purse's keys were made: card serial (its last 8 bytes), issuer
        factors: tuple[bytes, ...] = (serial[-purse.FACTOR_LEN :], bytes.fromhex(fact.issuer))
        data = purse.tac_data(
            fact.amount_fen,
            purse.TYPE_PURCHASE,
            fact.terminal_number,
            fact.terminal_sequence,
            when,
        )
    else:
        root = roots.medical_dtk if roots is not None else None
        if root is None:
            return "no_key"
        if fact.self_pay_fen is None or fact.pooled_fen is None:
            return "incomplete"  # the medical TAC covers all three amounts
        factors = medical_payment.medical_factors(bytes.fromhex(fact.card_serial))
        charge = Charge(fact.amount_fen, fact.self_pay_fen, fact.pooled_fen)
        data = medical_payment.tac_data(charge, fact.terminal_number, fact.terminal_sequence, when)
    dtk = _card_dtk(root, factors)
    return "ok" if purse.tac(dtk, data).hex().upper() == fact.tac else "mismatch"


@functools.lru_cache(maxsize=4096)
def _card_dtk(root: bytes, factors: tuple[bytes, ...]) -> bytes:
    """A card's DTK from a root and its factors (card level first); cached, since a card pays
    many times a day and the derivation is most of a TAC check's cost."""
    return crypto.diversify_levels(crypto.Algorithm.DES, root, factors[::-1])


def record(
    conn: Connection,
    terminal_id: str,
    rows: Iterable[tuple[int, int, PaymentFact]],
    roots: PaymentRoots | None,
) -> int:
    """Store the purchases of newly stored journal rows (in the batch's transaction).

    The batch is folded in memory first (its rows come in seq order: the last one stating a
    purchase is its latest here), then the purchases already stored are read in a few
    queries and written back in three statements — one per row would cost the upload of a
    day's journal minutes.

    :param conn: a connection in a write transaction
    :param terminal_id: the terminal whose rows they are
    :param rows: ``(seq, wall_time_us, payment)`` of each row the batch stored, in seq order
    :param roots: the TAC roots
    :returns: how many rows named a purchase
    :raises: nothing beyond the database's own errors
    """
    latest: dict[Key, tuple[int, int, PaymentFact]] = {}
    counts: Counter[Key] = Counter()
    for seq, wall_time_us, fact in rows:
        if fact.card_sequence is None:
            continue  # the purchase never reached the card: no purchase to name
        key = (fact.kind, fact.card_serial, fact.card_sequence)
        counts[key] += 1
        latest[key] = (seq, wall_time_us, fact)
    if not latest:
        return 0
    stored = _stored(conn, list(latest))
    inserts: list[dict[str, Any]] = []
    replaces: list[dict[str, Any]] = []
    recounts: list[dict[str, Any]] = []
    for key, (seq, wall_time_us, fact) in latest.items():
        before = stored.get(key)
        where = {"k_kind": key[0], "k_serial": key[1], "k_sequence": key[2]}
        rows_now = counts[key] + (before.rows if before is not None else 0)
        if before is not None and not _later(terminal_id, seq, wall_time_us, before):
            recounts.append({**where, "v_rows": rows_now})
            continue
        status = tac_status(fact, roots)
        values = _values(fact, status, terminal_id, seq, wall_time_us) | {"rows": rows_now}
        if before is None:
            inserts.append(values)
        else:
            changed = {f"v_{name}": v for name, v in values.items() if name not in _KEY_COLUMNS}
            replaces.append(where | changed)
        if status == "mismatch":
            log.warning(
                "event=payment_tac_mismatch terminal=%s seq=%d kind=%s amount=%d",
                quote(terminal_id),
                seq,
                fact.kind,
                fact.amount_fen,
            )
    if inserts:
        conn.execute(insert(payment), inserts)
    if replaces:
        names = [name for name in replaces[0] if name.startswith("v_")]
        values_of: dict[str, Any] = {name[2:]: bindparam(name) for name in names}
        conn.execute(update(payment).where(*_KEY_MATCH).values(values_of), replaces)
    if recounts:
        conn.execute(update(payment).where(*_KEY_MATCH).values(rows=bindparam("v_rows")), recounts)
    return sum(counts.values())


Key = tuple[str, str, int]
_KEY_COLUMNS = frozenset({"kind", "card_serial", "card_sequence"})
LOOKUP_CHUNK = 300  # purchases looked up per query (3 parameters each)
_KEY_MATCH = (
    payment.c.kind == bindparam("k_kind"),
    payment.c.card_serial == bindparam("k_serial"),
    payment.c.card_sequence == bindparam("k_sequence"),
)


def _stored(conn: Connection, keys: list[Key]) -> dict[Key, Any]:
    """The stored purchases among ``keys`` (locked for the transaction on PostgreSQL)."""
    columns = (payment.c.kind, payment.c.card_serial, payment.c.card_sequence)
    found: dict[Key, Any] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start : start + LOOKUP_CHUNK]
        query = (
            select(*columns, payment.c.terminal_id, payment.c.seq, payment.c.wall_time_us)
            .add_columns(payment.c.rows)
            .where(tuple_(*columns).in_(chunk))
            .with_for_update()
        )
        for row in conn.execute(query):
            found[(row.kind, row.card_serial, row.card_sequence)] = row
    return found


def _later(terminal_id: str, seq: int, wall_time_us: int, stored: Any) -> bool:
    """Whether a row states a purchase after the row stored for it."""
    if stored.terminal_id == terminal_id:
        return seq > stored.seq
    return (wall_time_us, terminal_id, seq) > (stored.wall_time_us, stored.terminal_id, stored.seq)


def _values(
    fact: PaymentFact, status: str, terminal_id: str, seq: int, wall_time_us: int
) -> dict[str, Any]:
    return {
        "kind": fact.kind,
        "card_serial": fact.card_serial,
        "card_sequence": fact.card_sequence,
        "state": fact.state,
        "amount_fen": fact.amount_fen,
        "self_pay_fen": fact.self_pay_fen,
        "pooled_fen": fact.pooled_fen,
        "balance_before": fact.balance_before,
        "balance_after": fact.balance_after,
        "terminal_sequence": fact.terminal_sequence,
        "tac": fact.tac,
        "time": fact.time,
        "day": fact.day,
        "terminal_number": fact.terminal_number,
        "issuer": fact.clearing_issuer,
        "tac_status": status,
        "terminal_id": terminal_id,
        "seq": seq,
        "wall_time_us": wall_time_us,
    }
