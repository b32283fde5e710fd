"""The journal (流水): every decision the terminal takes, append-only and hash-chained.

Each row gets the next sequence number (never reused, even after pruning), a uuid4, the wall
and monotonic clocks, and ``hash = SHA-256(prev_hash ‖ canonical serialisation)`` over its
fields, the ciphertext of its personal fields included; row 1 chains to 64 zeros. A row is
committed with ``synchronous=FULL`` before :meth:`Journal.append` returns, so an acknowledged
row survives a crash or a power cut.

Personal fields a scenario may keep are encrypted with AES-256-GCM (the journal key) and bound
to their row by the associated data; only their names are stored in clear. Reading them back
(:meth:`Journal.read_personal`) leaves an audit row.

Rows leave only after the platform acknowledged them (:meth:`Journal.acknowledge`, then
:meth:`Journal.prune`); the hash of the last pruned row stays as the anchor the chain starts
from. A deferred e-card code stays until a later row confirms it (``ref_seq``, schema 5): its
text, encrypted in the row, is what the confirmation sends to the platform. A size cap never
drops anything: above it :meth:`Journal.alarm` says a sync is needed. The row and its chain are
in :mod:`offline_store.chain`; docs/offline-store.md §5 specifies the serialisation byte for
byte; the entry to append and its checks, in :mod:`offline_store.entry`. A row may carry
flags — the circumstances of its decision, such as ``stale_list:deny_list`` for a card
accepted while the deny list was stale (schema 3).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from offline_store import integrity
from offline_store.audit import AuditLog
from offline_store.chain import (
    ChainReport,
    JournalRow,
    new_row,
    payment_digest,
    personal_aad,
    row_from_columns,
)
from offline_store.daycount import add_counts, check_count_keys, local_day
from offline_store.db import StoreDb
from offline_store.entry import (
    JournalEntry,
    JournalOutcome,
    check_entry,
    check_flags,
    personal_plaintext,
)
from offline_store.errors import JournalError
from offline_store.payment import OpenPurchases, open_sealed, seal

__all__ = ["LOST_IN", "Journal", "JournalBacklog", "JournalEntry", "JournalOutcome"]

log = logging.getLogger(__name__)

NONCE_LEN = 12
PAGE_ROWS = 500
_COLUMNS = (
    "seq, uuid, wall_time_us, monotonic_ns, scenario, catalogue_item, credential_token, outcome, "
    "reason_code, amount, terminal_id, personal_fields, personal_ct, prev_hash, hash, uploaded, "
    "flags, ref_seq, lost, payment_sha256, payment_ct"
)
#: how many seqs the gap rows after ``?`` and up to ``?`` declare lost (docs/offline-store.md
#: §5.8): the journal never held them (a range scan of those rows: pruning reads them anyway)
LOST_IN = (
    "SELECT COALESCE(SUM(json_extract(lost, '$[1]') - json_extract(lost, '$[0]') + 1), 0) "
    "FROM journal WHERE seq > ? AND seq <= ? AND lost IS NOT NULL"
)
#: a deferred row no later row follows up yet (``j`` names the journal table)
_UNCONFIRMED = (
    "j.outcome = 'deferred' AND NOT EXISTS (SELECT 1 FROM journal f WHERE f.ref_seq = j.seq)"
)


@dataclass(frozen=True, slots=True)
class JournalBacklog:
    """The journal's cursors (docs/offline-store.md §5.4).

    :param last_seq: the last seq ever appended (0: none)
    :param acked_seq: the platform's acknowledgement cursor
    :param anchor_seq: the last pruned seq (0: none)
    """

    last_seq: int
    acked_seq: int
    anchor_seq: int

    @property
    def pending(self) -> int:
        """Rows appended and not yet acknowledged by the platform."""
        return self.last_seq - self.acked_seq


class Journal:
    """The journal of one store (``store.journal``).

    :param store_db: the open store
    :param audit: the access audit, written by :meth:`read_personal`
    :param key: the 32-byte AES-256-GCM key, ``None`` to refuse personal fields
    :param cap_rows: the row count above which :meth:`alarm` reports
    :param clock: wall clock, seconds since the epoch
    :param monotonic: monotonic clock, nanoseconds
    :param payments: the open purchases a payment row opens or closes, in its transaction
    """

    def __init__(
        self,
        store_db: StoreDb,
        *,
        audit: AuditLog,
        key: bytes | None,
        cap_rows: int,
        clock: Callable[[], float],
        monotonic: Callable[[], int],
        payments: OpenPurchases | None = None,
    ) -> None:
        self._db = store_db
        self._audit = audit
        self._payments = payments or OpenPurchases(store_db, key)
        self._aead = AESGCM(key) if key is not None else None
        self._cap = cap_rows
        self._clock = clock
        self._monotonic = monotonic

    # --- writing ----------------------------------------------------------------------------

    def append(
        self,
        entry: JournalEntry,
        *,
        counts: Sequence[str] = (),
        recovery: dict[str, Any] | None = None,
    ) -> JournalRow:
        """Append a row; it is committed and synced to disk before this returns.

        :param entry: the decision
        :param counts: day counters (:mod:`offline_store.daycount`) this row adds one to, for
            the local day of its wall-clock time, in the row's own transaction: a daily limit
            counted on them survives the row's pruning
        :raises JournalError: a malformed entry or counter key, personal fields without a
            journal key, or a ``ref_seq`` that is not an earlier row
        :raises StoreError: the database failed (nothing was written)
        """
        names = check_entry(entry)
        flags = check_flags(entry.flags)
        count_keys = check_count_keys(counts, JournalError)
        if names and self._aead is None:
            raise JournalError("no journal key: refusing to store personal fields")
        if entry.payment is not None and self._aead is None:
            raise JournalError("no journal key: refusing to store a payment")
        plaintext = personal_plaintext(entry.personal) if names else None
        with self._db.write() as conn:
            last_seq, last_hash = conn.execute(
                "SELECT last_seq, last_hash FROM journal_state WHERE id = 1"
            ).fetchone()
            seq = last_seq + 1
            if entry.ref_seq is not None and not 1 <= entry.ref_seq < seq:
                raise JournalError(f"ref_seq {entry.ref_seq} is not an earlier row (next is {seq})")
            row_uuid = str(uuid.uuid4())
            ciphertext = None
            if plaintext is not None and self._aead is not None:
                nonce = os.urandom(NONCE_LEN)
                ciphertext = nonce + self._aead.encrypt(
                    nonce, plaintext, personal_aad(seq, row_uuid)
                )
            payment_ct = None
            if entry.payment is not None and self._aead is not None:
                payment_ct = seal(self._aead, seq, row_uuid, entry.payment)
            wall_time_us = round(self._clock() * 1_000_000)
            payment = None if entry.payment is None else entry.payment.to_json()
            row = new_row(
                entry,
                last_hash,
                seq=seq,
                uuid=row_uuid,
                wall_time_us=wall_time_us,
                monotonic_ns=self._monotonic(),
                personal_fields=names,
                terminal_id=entry.terminal_id,
                personal_ciphertext=ciphertext,
                flags=flags,
                ref_seq=entry.ref_seq,
                payment=payment,
                payment_sha256=None if payment is None else payment_digest(payment),
            )
            conn.execute(
                f"INSERT INTO journal ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL, ?, ?)",
                (
                    row.seq,
                    row.uuid,
                    row.wall_time_us,
                    row.monotonic_ns,
                    row.scenario,
                    row.catalogue_item,
                    row.credential_token,
                    row.outcome,
                    row.reason_code,
                    row.amount,
                    row.terminal_id,
                    json.dumps(list(names)),
                    row.personal_ciphertext,
                    row.prev_hash,
                    row.hash,
                    json.dumps(list(flags)),
                    row.ref_seq,
                    row.payment_sha256,
                    payment_ct,
                ),
            )
            if entry.payment is not None:
                self._payments.put(conn, seq, entry.payment, recovery, wall_time_us)
            conn.execute(
                "UPDATE journal_state SET last_seq = ?, last_hash = ? WHERE id = 1",
                (row.seq, row.hash),
            )
            add_counts(conn, local_day(row.wall_time), count_keys)
            held = (
                seq - conn.execute("SELECT anchor_seq + lost_held FROM journal_state").fetchone()[0]
            )
        log.debug(
            "event=journal_append seq=%d scenario=%s outcome=%s", seq, row.scenario, row.outcome
        )
        if held == self._cap + 1:
            log.warning("event=journal_over_cap rows=%d cap=%d", held, self._cap)
        return row

    def acknowledge(self, up_to_seq: int) -> int:
        """Record that the platform holds every row up to ``up_to_seq`` and mark them uploaded.

        :param up_to_seq: the platform's acknowledgement cursor
        :returns: the number of rows newly marked (0 for a repeated or older acknowledgement)
        :raises JournalError: ``up_to_seq`` is beyond the last row ever appended
        """
        with self._db.write() as conn:
            last_seq, acked = conn.execute(
                "SELECT last_seq, acked_seq FROM journal_state WHERE id = 1"
            ).fetchone()
            if up_to_seq > last_seq:
                raise JournalError(
                    f"cannot acknowledge seq {up_to_seq}: the journal ends at {last_seq}"
                )
            if up_to_seq <= acked:
                return 0
            marked = conn.execute(
                "UPDATE journal SET uploaded = 1 WHERE seq > ? AND seq <= ?", (acked, up_to_seq)
            ).rowcount
            conn.execute("UPDATE journal_state SET acked_seq = ? WHERE id = 1", (up_to_seq,))
        log.info("event=journal_acknowledged up_to_seq=%d rows=%d", up_to_seq, marked)
        return int(marked)

    def prune(self) -> int:
        """Delete the acknowledged rows; the last one's hash becomes the chain's anchor.

        A deferred e-card code no later row confirms yet is kept, and every row after it (the
        anchor is one seq): its text is still to be sent to the platform for confirmation.
        The seqs a declared gap names lost (§5.8) were never held: they are not counted.

        :returns: the number of rows deleted
        :raises JournalError: acknowledged rows are missing or not marked uploaded (the file was
            altered: run :meth:`verify_chain`); nothing is deleted then
        """
        with self._db.write() as conn:
            anchor_seq, acked = conn.execute(
                "SELECT anchor_seq, acked_seq FROM journal_state WHERE id = 1"
            ).fetchone()
            (open_seq,) = conn.execute(
                f"SELECT MIN(j.seq) FROM journal j WHERE {_UNCONFIRMED}"
            ).fetchone()
            upto = acked if open_seq is None else min(acked, open_seq - 1)
            if upto <= anchor_seq:
                return 0
            last = conn.execute("SELECT hash FROM journal WHERE seq = ?", (upto,)).fetchone()
            (lost,) = conn.execute(LOST_IN, (anchor_seq, upto)).fetchone()
            deleted = conn.execute(
                "DELETE FROM journal WHERE seq <= ? AND uploaded = 1", (upto,)
            ).rowcount
            if last is None or deleted != upto - anchor_seq - lost:
                raise JournalError(
                    f"journal rows {anchor_seq + 1}…{upto} are acknowledged but not all present "
                    "and marked uploaded: nothing pruned, run verify_chain"
                )
            conn.execute(
                "UPDATE journal_state SET anchor_seq = ?, anchor_hash = ?, "
                "lost_held = lost_held - ? WHERE id = 1",
                (upto, last[0], lost),
            )
        log.info(
            "event=journal_pruned rows=%d anchor_seq=%d kept_from=%s",
            deleted,
            upto,
            "-" if open_seq is None or open_seq > acked else open_seq,
        )
        return int(deleted)

    # --- reading ----------------------------------------------------------------------------

    def rows(self, after_seq: int = 0, limit: int | None = None) -> Iterator[JournalRow]:
        """Yield rows in sequence order (fetched in pages; the lock is not held between them).

        :param after_seq: start after this sequence number
        :param limit: stop after this many rows
        :raises StoreError: the database failed
        """
        left = limit
        cursor = after_seq
        while left is None or left > 0:
            page = PAGE_ROWS if left is None else min(PAGE_ROWS, left)
            fetched = self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (cursor, page),
            )
            for raw in fetched:
                yield self._row(raw)
            if len(fetched) < page:
                return
            cursor = fetched[-1][0]
            if left is not None:
                left -= len(fetched)

    def pending(self, limit: int) -> list[JournalRow]:
        """The rows not yet acknowledged, oldest first.

        :param limit: at most this many
        :raises StoreError: the database failed
        """
        fetched = self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM journal WHERE seq > "
            "(SELECT acked_seq FROM journal_state WHERE id = 1) ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [self._row(raw) for raw in fetched]

    def unconfirmed_deferred(
        self, *, acknowledged: bool = False, limit: int | None = None
    ) -> list[JournalRow]:
        """The deferred e-card codes no later row confirms yet (``ref_seq``), oldest first.

        :param acknowledged: only those the platform holds already (up to the upload cursor):
            the ones it can confirm
        :param limit: at most this many
        :raises StoreError: the database failed
        """
        where = _UNCONFIRMED
        if acknowledged:
            where += " AND j.seq <= (SELECT acked_seq FROM journal_state WHERE id = 1)"
        columns = ", ".join(f"j.{c.strip()}" for c in _COLUMNS.split(","))
        fetched = self._db.fetch_all(
            f"SELECT {columns} FROM journal j WHERE {where} ORDER BY j.seq LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [self._row(raw) for raw in fetched]

    def backlog(self) -> JournalBacklog:
        """Where the upload stands: the last row appended, the acknowledgement cursor, the anchor.

        :raises StoreError: the database failed
        """
        last_seq, acked_seq, anchor_seq = self._db.fetch_one(
            "SELECT last_seq, acked_seq, anchor_seq FROM journal_state WHERE id = 1"
        )
        return JournalBacklog(int(last_seq), int(acked_seq), int(anchor_seq))

    def readable_rows(self, after_seq: int, up_to_seq: int) -> Iterator[JournalRow]:
        """The rows after ``after_seq`` (up to ``up_to_seq``) that SQLite can still read from a
        damaged file, in seq order (:func:`offline_store.integrity.readable_rows`).

        :param after_seq: the last row the chain walk vouched for
        :param up_to_seq: the journal's last seq
        :raises: nothing: a part that cannot be read is passed over
        """
        return integrity.readable_rows(self._db, _COLUMNS, self._row, after_seq, up_to_seq)

    def hash_at(self, seq: int) -> str:
        """The hash a row after ``seq`` chains to: row ``seq``'s, or the anchor's when ``seq``
        is the anchor (64 zeros before any prune).

        :param seq: a held row, or the anchor's seq
        :raises JournalError: ``seq`` is neither
        :raises StoreError: the database failed
        """
        with self._db.read() as conn:
            anchor_seq, anchor_hash = conn.execute(
                "SELECT anchor_seq, anchor_hash FROM journal_state WHERE id = 1"
            ).fetchone()
            if seq == anchor_seq:
                return str(anchor_hash)
            found = conn.execute("SELECT hash FROM journal WHERE seq = ?", (seq,)).fetchone()
        if found is None:
            raise JournalError(f"journal row {seq} is not held (pruned or never written)")
        return str(found[0])

    def last(self) -> JournalRow | None:
        """The newest row held, ``None`` when the journal holds none.

        :raises StoreError: the database failed
        """
        raw = self._db.fetch_one(f"SELECT {_COLUMNS} FROM journal ORDER BY seq DESC LIMIT 1")
        return self._row(raw) if raw else None

    def read_personal(self, seq: int, who: str, purpose: str = "") -> dict[str, str]:
        """Decrypt a row's personal fields; an audit row records who read which fields.

        The audit row is committed before the values are returned.

        :param seq: the row
        :param who: the person or service reading (an operator id, ``sync``)
        :param purpose: why; default ``journal row <seq>``
        :raises JournalError: no journal key, no such row, or the ciphertext does not decrypt
            (wrong key or an altered row)
        """
        if self._aead is None:
            raise JournalError("no journal key: personal fields cannot be read")
        raw = self._db.fetch_one(
            "SELECT uuid, scenario, terminal_id, personal_fields, personal_ct FROM journal "
            "WHERE seq = ?",
            (seq,),
        )
        if raw is None:
            raise JournalError(f"journal row {seq} does not exist (pruned or never written)")
        row_uuid, scenario, terminal_id, names_json, ciphertext = raw
        names = tuple(json.loads(names_json))
        values: dict[str, str] = {}
        if ciphertext is not None:
            try:
                plaintext = self._aead.decrypt(
                    ciphertext[:NONCE_LEN], ciphertext[NONCE_LEN:], personal_aad(seq, row_uuid)
                )
            except InvalidTag:
                raise JournalError(
                    f"journal row {seq}: personal fields do not decrypt (wrong journal key or "
                    "an altered row)"
                ) from None
            values = json.loads(plaintext)
        self._audit.record(who, terminal_id, scenario, names, purpose or f"journal row {seq}")
        log.info("event=journal_personal_read seq=%d fields=%s", seq, ",".join(names))
        return values

    def verify_chain(self) -> ChainReport:
        """Walk the rows from the anchor and check every link and hash, and the head
        (:func:`offline_store.integrity.verify_chain`).

        :raises StoreError: the database failed before the walk (the file cannot be read)
        """
        return integrity.verify_chain(self._db, _COLUMNS, self._row)

    def check_sound(self) -> ChainReport:
        """What the daemon checks at start: SQLite's ``quick_check`` of the file, then the
        chain (:func:`offline_store.integrity.check_sound`).

        :raises: nothing: a file that cannot be read at all is a break at the first row held
        """
        return integrity.check_sound(self._db, _COLUMNS, self._row)

    def count(
        self,
        *,
        scenario: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        unacknowledged: bool = False,
        unconfirmed: bool = False,
    ) -> int:
        """The number of rows held (appended and not pruned), optionally filtered.

        Pruned rows are not counted: a count over a period is only complete while the period's
        rows are held. A daily limit (a gate's capacity, a holder's meals) is counted on the day
        counters instead (``counts=`` of :meth:`append`, ``store.day_counts``), which pruning
        leaves alone.

        :param scenario: only rows of this scenario
        :param outcome: only rows with this outcome
        :param since: only rows appended at or after this wall-clock time (seconds since the
            epoch)
        :param unacknowledged: only rows the platform has not acknowledged yet (after the
            upload cursor): the count falls as a sync uploads them
        :param unconfirmed: only deferred e-card codes no later row confirms yet: the count
            falls as a sync has the platform confirm them
        :raises StoreError: the database failed
        """
        with self._db.read() as conn:
            filtered = unacknowledged or unconfirmed
            if scenario is None and outcome is None and since is None and not filtered:
                last_seq, anchor_seq, lost = conn.execute(
                    "SELECT last_seq, anchor_seq, lost_held FROM journal_state WHERE id = 1"
                ).fetchone()
                return int(last_seq - anchor_seq - lost)
            where: list[str] = []
            params: list[str | int] = []
            if scenario is not None:
                where.append("j.scenario = ?")
                params.append(scenario)
            if outcome is not None:
                where.append("j.outcome = ?")
                params.append(str(outcome))
            if since is not None:
                where.append("j.wall_time_us >= ?")
                params.append(math.ceil(since * 1_000_000))
            if unacknowledged:
                where.append("j.seq > (SELECT acked_seq FROM journal_state WHERE id = 1)")
            if unconfirmed:
                where.append(_UNCONFIRMED)
            found = conn.execute(
                f"SELECT COUNT(*) FROM journal j WHERE {' AND '.join(where)}", params
            ).fetchone()
        return int(found[0])

    def alarm(self) -> str | None:
        """A message when the journal holds more rows than its cap (nothing is ever dropped).

        :raises StoreError: the database failed
        """
        held = self.count()
        if held > self._cap:
            return f"journal holds {held} rows, cap {self._cap}: sync needed"
        return None

    def _row(self, raw: sqlite3.Row | tuple[Any, ...]) -> JournalRow:
        """A stored row, its payment decrypted when the journal key is there (the chain hash
        covers its digest, kept in clear: the chain verifies without the key)."""
        row = row_from_columns(raw[:-2])
        digest, sealed = raw[-2:]
        if sealed is None:
            return row
        if self._aead is None:
            return dataclasses.replace(row, payment_sha256=digest)
        payment = open_sealed(self._aead, row.seq, row.uuid, sealed)
        if payment_digest(payment) != digest:
            raise JournalError(f"journal row {row.seq}: the payment does not match its digest")
        return dataclasses.replace(row, payment=payment, payment_sha256=digest)
