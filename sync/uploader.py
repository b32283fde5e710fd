"""The journal's way up to the platform, and the confirmation of deferred e-card codes
(docs/sync.md §4, §12).

:meth:`Uploader.upload` drains the journal in signed batches and moves the store's
acknowledgement cursor only to what the platform acknowledged in answer to rows it was sent in
that very exchange; after any failure it starts again from that cursor, so a row is never
skipped, and the platform's (terminal, seq) idempotence makes a resent row count once. Rows the
platform rejects stop the upload loudly: a ``conflict`` or a ``bad_hash`` means the journal or
the platform is wrong, and retrying would never converge.

Deferred national e-card codes are confirmed after the upload (:meth:`Uploader.confirm_deferred`):
the code of each uploaded deferred row is read back from the journal (an audited read) and sent
to the platform, and its verdict is journaled as a follow-up row, which the same step uploads.

Rows travel with their personal fields encrypted (the platform checks their hash chain without
opening them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from offline_store import JournalEntry, JournalError, JournalRow, Store
from sync.answers import BatchAnswer, batch_answer
from sync.config import SyncConfig
from sync.deferred import (
    DEFERRED_FIELD,
    PATH_CONFIRM,
    Confirmation,
    ConfirmRequest,
    Invalidity,
    follow_up_entry,
    plain_follow_up,
)
from sync.errors import SyncRefused, SyncStopped, UploadRefused
from sync.reports import DeferredReport, UploadReport
from sync.step import SyncStep
from sync.transport import SignedTransport

__all__ = ["FollowUp", "Progress", "Uploader"]

# the sync client's lines keep the logger they always had: operators filter on it
log = logging.getLogger("sync.client")

PATH_BATCH = "/v1/journal/batch"
MAX_BATCH_BYTES = 8 * 1024 * 1024  # docs/sync.md: a batch body is at most 8 MiB
HTTP_TOO_LARGE = 413
MAX_CONFIRMS = 1000  # deferred codes confirmed per sync at most (a profile holds up to 100 000)

Progress = Callable[[int, int], None]
"""``progress(acknowledged, total)``: rows acknowledged so far by this upload, rows to send."""

FollowUp = Callable[[Store, JournalRow, Confirmation], JournalEntry]
"""``follow_up(store, deferred row, verdict)``: the row that follows up a deferred e-card code
(:func:`sync.deferred.plain_follow_up`, or the terminal's :class:`terminal.ecard_confirm.FollowUps`,
which adds the profile's own checks and the fare)."""


class Uploader(SyncStep):
    """Sends one terminal's journal to the platform and confirms its deferred e-card codes.

    :param transport: the signed transport to the platform
    :param store: the open offline store whose journal goes up
    :param config: the sync settings (batch size, pruning)
    :param stop: set it to make the uploader give up at the next batch (:class:`SyncStopped`)
    :param follow_up: makes the follow-up row of a deferred code the platform judged;
        default: :func:`sync.deferred.plain_follow_up`
    """

    def __init__(
        self,
        transport: SignedTransport,
        store: Store,
        config: SyncConfig,
        stop: threading.Event,
        follow_up: FollowUp = plain_follow_up,
    ) -> None:
        super().__init__(transport, store, config)
        self.stop = stop
        self._follow_up = follow_up

    def upload(self, progress: Progress | None = None) -> UploadReport:
        """Send every row appended so far and not yet acknowledged, in signed batches.

        After each answer the store's cursor moves to the platform's ``ack_seq`` (never past
        the batch just sent, never backwards). Rows appended while the upload runs go with the
        next one. After a complete drain the acknowledged rows are pruned when
        ``config.prune`` is set.

        :param progress: called after each batch with (rows acknowledged, rows to send)
        :returns: what was sent and acknowledged
        :raises UploadRefused: the platform rejected rows (each is logged with its seq and
            code) or acknowledged less than before; the rows before stay acknowledged
        :raises SyncRefused: another 4xx answer (a batch too large even as one row is 413;
            a larger one is split in halves until it fits)
        :raises SyncUnreachable: a batch got no answer after every retry; the next upload
            resumes from the cursor
        :raises SyncStopped: :attr:`stop` was set
        :raises SyncAuthError: the platform refused the signature
        """
        journal = self.store.journal
        started = time.monotonic()
        backlog = journal.backlog()
        head, acked_from = backlog.last_seq, backlog.acked_seq
        acked = acked_from
        sent = accepted = duplicates = batches = 0
        limit = self.config.batch_rows
        log.info("event=sync_upload_start pending=%d acked_seq=%d", backlog.pending, acked)
        while acked < head:
            if self.stop.is_set():
                raise SyncStopped(f"upload stopped at acked seq {acked}")
            rows = [row for row in journal.pending(limit) if row.seq <= head]
            if not rows:
                break
            body, rows = _batch_body(rows)
            # a declared gap (docs/offline-store.md §5.8) follows the seqs it names lost
            if (rows[0].seq if rows[0].lost is None else rows[0].lost[0]) != acked + 1:
                raise UploadRefused(
                    f"the journal's first unacknowledged row is {rows[0].seq}, expected "
                    f"{acked + 1}: run `sscard journal verify`"
                )
            answer = self._post_batch(body, len(rows))
            if answer is None:
                limit = max(1, len(rows) // 2)  # docs/sync.md §4: send smaller batches
                continue
            batches += 1
            sent += len(rows)
            accepted += answer.accepted
            duplicates += answer.duplicates
            acked = self._settle(answer, rows[0].seq, rows[-1].seq, acked)
            if progress is not None:
                progress(acked - acked_from, head - acked_from)
        pruned = 0
        if self.config.prune and acked == head and acked > backlog.anchor_seq:
            pruned = journal.prune()
        report = UploadReport(
            rows_sent=sent,
            accepted=accepted,
            duplicates=duplicates,
            batches=batches,
            acked_from=acked_from,
            acked_seq=acked,
            pending=journal.backlog().pending,
            pruned=pruned,
            seconds=time.monotonic() - started,
        )
        log.info(
            "event=sync_upload_done acked_seq=%d rows=%d duplicates=%d batches=%d "
            "rows_per_s=%.0f pruned=%d",
            acked,
            report.acknowledged,
            duplicates,
            batches,
            report.rows_per_s,
            pruned,
        )
        return report

    def _post_batch(self, body: bytes, rows: int) -> BatchAnswer | None:
        """Send one batch; ``None`` when the platform found it too large (413) and it can be
        split."""
        try:
            return self.transport.post_json(PATH_BATCH, body, batch_answer)
        except SyncRefused as exc:
            if exc.status != HTTP_TOO_LARGE or rows == 1:
                raise
            log.warning("event=sync_batch_too_large rows=%d", rows)
            return None

    def _settle(self, answer: BatchAnswer, first: int, last: int, acked: int) -> int:
        """Move the journal's cursor after an answer to the batch ``first``…``last``.

        :returns: the new cursor
        :raises UploadRefused: rejected rows, a cursor going backwards, or no progress
        """
        for rejection in answer.rejected:
            log.error("event=sync_row_rejected seq=%d code=%s", rejection.seq, rejection.code)
        # the platform may hold more (rows sent by an upload that died before its answer):
        # only what it confirmed for rows of this batch is acknowledged here
        ack = min(answer.ack_seq, last)
        if ack < acked:
            log.error(
                "event=sync_ack_regressed ack_seq=%d local_acked_seq=%d", answer.ack_seq, acked
            )
            raise UploadRefused(
                f"the platform acknowledges rows up to {answer.ack_seq} only, but had "
                f"acknowledged up to {acked}: it lost rows; nothing is resent or pruned "
                "until an operator looks"
            )
        if ack > acked:
            self.store.journal.acknowledge(ack)
        log.debug(
            "event=sync_batch first=%d last=%d ack_seq=%d accepted=%d duplicates=%d",
            first,
            last,
            ack,
            answer.accepted,
            answer.duplicates,
        )
        if answer.rejected:
            listed = ", ".join(f"{r.seq}:{r.code}" for r in answer.rejected[:10])
            raise UploadRefused(
                f"the platform rejected {len(answer.rejected)} journal rows ({listed}); "
                f"acknowledged up to {ack}; the upload stops until an operator looks",
                answer.rejected,
            )
        if ack == first - 1:
            raise UploadRefused(
                f"the platform stored rows {first}…{last} but acknowledges only up to {ack}: "
                "it is missing earlier rows of this terminal"
            )
        return ack

    # --- deferred e-card codes -----------------------------------------------------------

    def confirm_deferred(self) -> DeferredReport:
        """Have the platform confirm the deferred e-card codes it holds (docs/sync.md §12):
        for each uploaded deferred row no later row confirms yet, oldest first, read the code
        back from the journal (an audited read), send it with the row's seq, and journal the
        verdict as a follow-up row naming the deferred one; then upload those rows.

        A row the platform does not hold as deferred (``404 not_deferred``) waits for a later
        sync, and so does one whose code cannot be read back (the store opened without its
        journal key, or with another: an alarm, never a verdict); a row that kept no code, or
        whose code is not the text the row names, is journaled invalid
        (``invalid:code_missing``, ``invalid:code_mismatch``): it can never be confirmed, and
        must not stay deferred forever.

        :returns: how many were confirmed, found invalid, or are still waiting
        :raises SyncRefused: a 4xx other than ``not_deferred`` and ``code_mismatch`` (a
            platform without the endpoint answers 404 ``not_found``)
        :raises SyncError: see :meth:`SignedTransport.request`; the codes confirmed before are
            journaled, the rest wait
        :raises SyncStopped: :attr:`stop` was set
        :raises UploadRefused: see :meth:`upload`
        """
        journal = self.store.journal
        confirmed = invalid = unreadable = 0
        for row in journal.unconfirmed_deferred(acknowledged=True, limit=MAX_CONFIRMS):
            if self.stop.is_set():
                raise SyncStopped(f"confirmation stopped before deferred row {row.seq}")
            try:
                purpose = f"confirm the deferred e-card code of row {row.seq}"
                kept = journal.read_personal(row.seq, who="sync", purpose=purpose)
            except JournalError as exc:
                log.error("event=ecard_deferred_unreadable seq=%d error=%s", row.seq, exc)
                unreadable += 1
                continue
            entry = self._confirmation(row, kept.get(DEFERRED_FIELD))
            if entry is None:
                continue
            journal.append(entry)
            if entry.outcome == "accept":
                confirmed += 1
            else:
                invalid += 1
                log.warning(
                    "event=ecard_deferred_invalid seq=%d flags=%s", row.seq, ",".join(entry.flags)
                )
        upload = self.upload() if confirmed or invalid else None
        waiting = journal.count(outcome="deferred", unconfirmed=True)
        log.info(
            "event=sync_deferred_confirmed confirmed=%d invalid=%d waiting=%d",
            confirmed,
            invalid,
            waiting,
        )
        return DeferredReport(confirmed, invalid, waiting, upload, unreadable)

    def _confirmation(self, row: JournalRow, code: str | None) -> JournalEntry | None:
        """The follow-up row of one deferred row, ``None`` when it must wait."""
        if not code:
            log.error("event=ecard_deferred_code_missing seq=%d", row.seq)
            return follow_up_entry(row, reason=Invalidity.CODE_MISSING)
        body = ConfirmRequest(row.seq, code).to_bytes()
        try:
            verdict = self.transport.post_json(
                PATH_CONFIRM, body, lambda exchange: Confirmation.parse(exchange.json(), row.seq)
            )
        except SyncRefused as exc:
            if exc.status == 404 and exc.code == "not_deferred":
                log.warning("event=ecard_deferred_not_on_platform seq=%d", row.seq)
                return None
            if exc.status == 404 and exc.code == "code_mismatch":
                log.error("event=ecard_deferred_code_mismatch seq=%d", row.seq)
                return follow_up_entry(row, reason=Invalidity.CODE_MISMATCH)
            raise
        return self._follow_up(self.store, row, verdict)


def _batch_body(rows: list[JournalRow]) -> tuple[bytes, list[JournalRow]]:
    """The batch body, halving the rows until it fits the platform's 8 MiB limit."""
    while True:
        records = [row.record() | {"prev_hash": row.prev_hash, "hash": row.hash} for row in rows]
        body = json.dumps({"rows": records}, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )
        if len(body) <= MAX_BATCH_BYTES or len(rows) == 1:
            return body, rows
        rows = rows[: len(rows) // 2]
