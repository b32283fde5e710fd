"""A purchase's facts on a journal row (``payment``), and the purchases still open on this
terminal (``store.payments``: the ``payment_open`` table), issue 15.

**The payment object** — the contract the platform's clearing reads (docs/payments.md §6)::

    {"kind": "transit", "state": "done", "amount_fen": 200,
     "balance_before": 5000, "balance_after": 4800,
     "card_sequence": 17, "terminal_sequence": 305, "tac": "1A2B3C4D",
     "time": "20261129075803", "terminal_number": "012345678901",
     "card_serial": "<20 hex>", "issuer": "<16 hex>"}

``kind`` is ``transit`` or ``medical``; ``state`` ``pending`` (journaled, synced to disk,
before the DEBIT is sent), ``done`` (the card debited: MAC2 checked, or the proof recovered),
``torn`` (the card left while the DEBIT was in flight) or ``void`` (nothing was debited).
Integers are JSON numbers; a fact not known yet (the TAC of a pending purchase) is ``null``.
``card_sequence`` is the card's offline sequence the purchase used (what INITIALIZE returned),
``terminal_sequence`` the PSAM's. ``card_serial`` is the transit application serial of EF 0015
(20 hex) or the medical 卡识别码 (32 hex); ``issuer`` the transit issuer id of EF 0015 (16 hex),
``null`` for medical. A medical payment adds ``self_pay_fen`` and ``pooled_fen`` (its TAC
covers them; ``amount_fen`` is the personal account's part).

Rows are immutable: a purchase's later state is a new row carrying the whole object again; the
platform keeps the latest per (kind, card_serial, card_sequence).

**Personal data.** The card serial names one card as surely as its card number, which the
store never keeps in clear. So the object is encrypted at rest with the journal key
(AES-256-GCM, bound to its row like the personal fields) and a payment row needs a journal key.
The chain hash covers the object's digest (:func:`offline_store.chain.payment_digest`), kept in
clear beside it: the terminal verifies its chain without the key, and the platform — the
issuer's side, which needs the serial to check the TAC and clear by issuer — receives the
object and checks the chain on its digest.

**Open purchases.** A purchase ``pending`` or ``torn`` here has a ``payment_open`` row keyed by
an HMAC of its card (the journal key's, so the table names no card), written in the journal
row's transaction; it holds what the recovery needs (encrypted) and goes when the purchase
ends ``done`` or ``void``. A ``done`` row also adds its amount to the card's day in
``payment_day`` (same key): what it paid here today and when last, for the transit profile's
daily cap and transfer discount (:mod:`terminal.fares`); earlier days are dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from offline_store.daycount import local_day
from offline_store.db import StoreDb
from offline_store.errors import JournalError
from offline_store.payment_object import KINDS, MEDICAL_ONLY, STATES, PaymentFacts, problems

__all__ = [
    "KINDS",
    "STATES",
    "DaySpend",
    "OpenPurchase",
    "OpenPurchases",
    "Payment",
    "PaymentRow",
    "open_sealed",
    "seal",
    "seal_object",
]

NONCE_LEN = 12


@dataclass(frozen=True, slots=True)
class Payment(PaymentFacts):
    """A purchase's facts as one journal row states them (see the module docstring and
    :class:`offline_store.payment_object.PaymentFacts` for each fact)."""

    def to_json(self) -> dict[str, Any]:
        """The payment object of the journal row (medical parts only for medical)."""
        out = asdict(self)
        if self.kind != "medical":
            for name in MEDICAL_ONLY:
                del out[name]
        return out

    @classmethod
    def from_json(cls, raw: object) -> Payment:
        """Parse and check a payment object.

        :param raw: what :meth:`to_json` gave
        :raises JournalError: not a payment object of the contract
        """
        if not isinstance(raw, Mapping):
            raise JournalError("a payment is a JSON object")
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - names)
        if unknown:
            raise JournalError(f"payment: unknown keys {unknown[:5]}")
        try:
            payment = cls(**raw)
        except TypeError:
            raise JournalError(f"payment: missing keys {sorted(names - set(raw))}") from None
        payment.check()
        return payment

    def check(self) -> Payment:
        """Check every fact's type and format; return the payment.

        :raises JournalError: the first fact off the contract
            (:func:`offline_store.payment_object.problems`), a transit payment with medical
            parts, or a ``done`` one without its TAC and card sequence
        """
        for name, rule in problems({name: getattr(self, name) for name in _FACTS}):
            raise JournalError(f"payment {name} {rule}")
        if self.kind == "transit" and any(getattr(self, name) is not None for name in MEDICAL_ONLY):
            raise JournalError("a transit payment has no medical parts")
        if self.state == "done" and (self.tac is None or self.card_sequence is None):
            raise JournalError("a done payment has its TAC and card sequence")
        return self


_FACTS = tuple(Payment.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """What a purchase adds to its journal row.

    :param payment: the payment object
    :param recovery: for ``pending`` and ``torn``: what the recovery needs (``payment_open``)
    :param ref_seq: the purchase's ``pending`` row, which this one follows up
    """

    payment: Payment
    recovery: dict[str, Any] | None = None
    ref_seq: int | None = None


def _aad(seq: int, row_uuid: str) -> bytes:
    return f"sscard-payment/1 seq={seq} uuid={row_uuid}".encode("ascii")


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(aead: AESGCM, seq: int, row_uuid: str, payment: Payment) -> bytes:
    """The payment object encrypted for its row: nonce ‖ ciphertext ‖ tag.

    :param aead: the journal key
    :param seq: the row's sequence number
    :param row_uuid: the row's uuid
    :param payment: the facts
    """
    return seal_object(aead, seq, row_uuid, payment.to_json())


def seal_object(aead: AESGCM, seq: int, row_uuid: str, payment: Mapping[str, Any]) -> bytes:
    """A payment object as uploaded (a row re-fetched from the platform, docs/offline-store.md
    §5.8) encrypted for its row, as :func:`seal` encrypts the facts.

    :param aead: the journal key
    :param seq: the row's sequence number
    :param row_uuid: the row's uuid
    :param payment: the object (:meth:`Payment.to_json`)
    """
    nonce = os.urandom(NONCE_LEN)
    return nonce + aead.encrypt(nonce, _canonical(payment), _aad(seq, row_uuid))


def open_sealed(aead: AESGCM | None, seq: int, row_uuid: str, sealed: bytes) -> dict[str, Any]:
    """Decrypt a row's payment object (as stored: the JSON object of :meth:`Payment.to_json`).

    :raises JournalError: no journal key, or a ciphertext that does not decrypt for this row
    """
    if aead is None:
        raise JournalError(f"journal row {seq} holds a payment: it needs the journal key")
    try:
        plain = aead.decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], _aad(seq, row_uuid))
    except InvalidTag:
        raise JournalError(
            f"journal row {seq}: the payment does not decrypt (wrong journal key or altered)"
        ) from None
    value = json.loads(plain)
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True, slots=True)
class OpenPurchase:
    """A purchase still ``pending`` or ``torn`` on this terminal.

    :param seq: the journal row of its latest state
    :param kind: ``transit`` or ``medical``
    :param state: ``pending`` or ``torn``
    :param opened_us: when it was opened, microseconds since the epoch
    :param record: what its recovery needs (the terminal's own JSON object)
    """

    seq: int
    kind: str
    state: str
    opened_us: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DaySpend:
    """What one card paid on this terminal on one day.

    :param spent_fen: the sum of its ``done`` purchases
    :param rides: how many
    :param last_us: the wall time of the last one, microseconds since the epoch
    """

    spent_fen: int
    rides: int
    last_us: int


class OpenPurchases:
    """The ``payment_open`` table (``store.payments``).

    :param store_db: the open store
    :param key: the journal key; ``None`` refuses every payment
    """

    def __init__(self, store_db: StoreDb, key: bytes | None) -> None:
        self._db = store_db
        self._key = key
        self._aead = AESGCM(key) if key is not None else None

    def card_key(self, kind: str, card_serial: str) -> str:
        """The table's key for one card: ``HMAC-SHA256(journal key, kind:serial)``, hex.

        :raises JournalError: no journal key
        """
        if self._key is None:
            raise JournalError("no journal key: refusing to store payments")
        message = f"payment-open:{kind}:{card_serial}".encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def put(
        self,
        conn: sqlite3.Connection,
        seq: int,
        payment: Payment,
        record: Mapping[str, Any] | None,
        now_us: int,
    ) -> None:
        """Within a journal append's transaction: open, update or close the card's purchase.

        ``pending`` and ``torn`` with a ``record`` keep (or replace) the row; ``done``,
        ``void`` and a ``torn`` without one (left to the platform) delete it.

        :param conn: the journal append's connection (its transaction)
        :param seq: the journal row just written
        :param payment: its payment object
        :param record: what the recovery needs
        :param now_us: the row's wall time
        """
        key = self.card_key(payment.kind, payment.card_serial)
        if payment.state in ("done", "void") or record is None:
            conn.execute("DELETE FROM payment_open WHERE card_key = ?", (key,))
            if payment.state == "done":
                self._spend(conn, key, payment.amount_fen, now_us)
            return
        assert self._aead is not None
        nonce = os.urandom(NONCE_LEN)
        sealed = nonce + self._aead.encrypt(nonce, _canonical(record), key.encode("ascii"))
        conn.execute(
            "INSERT INTO payment_open (card_key, kind, state, seq, opened_us, record_ct) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (card_key) DO UPDATE SET "
            "state = excluded.state, seq = excluded.seq, record_ct = excluded.record_ct",
            (key, payment.kind, payment.state, seq, now_us, sealed),
        )

    @staticmethod
    def _spend(conn: sqlite3.Connection, key: str, amount: int, now_us: int) -> None:
        day = local_day(now_us / 1_000_000).isoformat()
        conn.execute("DELETE FROM payment_day WHERE day < ?", (day,))
        conn.execute(
            "INSERT INTO payment_day (day, card_key, spent_fen, rides, last_us) "
            "VALUES (?, ?, ?, 1, ?) ON CONFLICT (day, card_key) DO UPDATE SET "
            "spent_fen = spent_fen + excluded.spent_fen, rides = rides + 1, "
            "last_us = excluded.last_us",
            (day, key, amount, now_us),
        )

    def day_spend(self, kind: str, card_serial: str, wall_time: float) -> DaySpend:
        """What the card paid here on the local day of ``wall_time`` (zeros when nothing).

        :raises JournalError: no journal key
        """
        key = self.card_key(kind, card_serial)
        day = local_day(wall_time).isoformat()
        found = self._db.fetch_one(
            "SELECT spent_fen, rides, last_us FROM payment_day WHERE day = ? AND card_key = ?",
            (day, key),
        )
        return DaySpend(0, 0, 0) if found is None else DaySpend(*found)

    def find(self, kind: str, card_serial: str) -> OpenPurchase | None:
        """The card's open purchase on this terminal, if any.

        :raises JournalError: no journal key, or a record that does not decrypt
        """
        key = self.card_key(kind, card_serial)
        raw = self._db.fetch_one(
            "SELECT card_key, kind, state, seq, opened_us, record_ct FROM payment_open "
            "WHERE card_key = ?",
            (key,),
        )
        return None if raw is None else self._open(raw)

    def all(self) -> Iterator[OpenPurchase]:
        """Every open purchase, oldest first (the daemon's start turns pending into torn)."""
        rows = self._db.fetch_all(
            "SELECT card_key, kind, state, seq, opened_us, record_ct FROM payment_open "
            "ORDER BY opened_us, seq"
        )
        return (self._open(raw) for raw in rows)

    def _open(self, raw: tuple[Any, ...]) -> OpenPurchase:
        key, kind, state, seq, opened_us, sealed = raw
        if self._aead is None:
            raise JournalError("no journal key: open purchases cannot be read")
        try:
            plain = self._aead.decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], key.encode("ascii"))
        except InvalidTag:
            raise JournalError("an open purchase does not decrypt (wrong journal key)") from None
        return OpenPurchase(seq, kind, state, opened_us, json.loads(plain))
