"""The terminal's side of the sync with the one-card platform (docs/sync.md).

::

    with SyncClient(SyncConfig.from_settings(settings), store, trust_saver=save_trust_list) as c:
        report = c.sync_once()

:meth:`SyncClient.upload` drains the journal in signed batches and moves the store's
acknowledgement cursor only to what the platform acknowledged in answer to rows it was sent in
that very exchange; after any failure it starts again from that cursor, so a row is never
skipped, and the platform's (terminal, seq) idempotence makes a resent row count once. Rows the
platform rejects stop the upload loudly: a ``conflict`` or a ``bad_hash`` means the journal or
the platform is wrong, and retrying would never converge.

List updates (deny list, trust list, catalogue) are verified and applied through the offline
store, each in one transaction: a list that fails its signature changes nothing. The platform's
clock is read at each sync; the offset (server minus local, at the round trip's midpoint) is
kept in the store's ``meta`` table (``sync.*``) and a local clock off by more than
``max_clock_offset_s`` raises an alarm.

Deferred national e-card codes are confirmed after the upload (:meth:`SyncClient.confirm_deferred`,
docs/sync.md §12): the code of each uploaded deferred row is read back from the journal (an
audited read) and sent to the platform, and its verdict is journaled as a follow-up row, which
the same step uploads.

The client never logs a key, a pepper or a personal value: rows travel with their personal
fields encrypted (the platform checks their hash chain without opening them).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from apdu.errors import SscardError
from apdu.resources import Closing
from ecard.testkeys import public_key_der, refuse_test_key
from offline_store import (
    DenyListError,
    JournalEntry,
    JournalError,
    JournalRow,
    Store,
    ed25519_verifier,
)
from offline_store.freshness import META_DENY_CURRENT_AT
from sync.answers import BatchAnswer, batch_answer, deny_signature, json_answer, server_time
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
from sync.errors import (
    SyncConfigError,
    SyncRefused,
    SyncStopped,
    UploadRefused,
)
from sync.outcomes import describe, failure
from sync.provisioning import (
    TerminalSecrets,
    audience_keys_toml,
    open_secrets,
    write_private_file,
)
from sync.reports import (
    CatalogueReport,
    DeferredReport,
    DenyReport,
    HeartbeatReport,
    SecretsReport,
    StepStatus,
    SyncReport,
    TimeReport,
    TrustReport,
    UploadReport,
)
from sync.transport import Exchange, RetryPolicy, SignedTransport

__all__ = ["FollowUp", "Progress", "SyncClient", "TrustSaver"]

log = logging.getLogger(__name__)

PATH_TIME = "/v1/time"
PATH_BATCH = "/v1/journal/batch"
PATH_DENY = "/v1/deny"
PATH_TRUST = "/v1/trust"
PATH_CATALOGUE = "/v1/catalogue"
PATH_SECRETS = "/v1/secrets"
PATH_HEARTBEAT = "/v1/heartbeat"
H_DENY_SIGNATURE = "X-Sscard-Deny-Signature"
MAX_BATCH_BYTES = 8 * 1024 * 1024  # docs/sync.md: a batch body is at most 8 MiB
HTTP_TOO_LARGE = 413
MAX_DENY_STEPS = 64  # deltas applied in one update at most: a platform that never says 204
META_SERVER_TIME = "sync.server_time"
META_OFFSET = "sync.clock_offset_s"
META_SYNCED_AT = "sync.synced_at"
META_CATALOGUE_ETAG = "sync.catalogue_etag"
SOFTWARE = "sscard-terminal"
MAX_CONFIRMS = 1000  # deferred codes confirmed per sync at most (a profile holds up to 100 000)

Progress = Callable[[int, int], None]
"""``progress(acknowledged, total)``: rows acknowledged so far by this upload, rows to send."""

TrustSaver = Callable[[Store, bytes, bytes, float], object]
"""``saver(store, list bytes, root public key PEM, now)``: verify a trust list and keep it
(:func:`ecard.trust.save_trust_list`); raises to refuse it."""

FollowUp = Callable[[Store, JournalRow, Confirmation], JournalEntry]
"""``follow_up(store, deferred row, verdict)``: the row that follows up a deferred e-card code
(:func:`sync.deferred.plain_follow_up`, or the terminal's :class:`terminal.ecard_confirm.FollowUps`,
which adds the profile's own checks and the fare)."""


class SyncClient(Closing):
    """Talks to the platform for one terminal and its offline store.

    :param config: the sync settings (:meth:`SyncConfig.from_settings`)
    :param store: the open offline store
    :param session: a :class:`requests.Session` to use (tests); default: a new one with the
        TLS settings of ``config``
    :param clock: the wall clock (signatures, clock offset)
    :param trust_saver: verifies and keeps a trust list; without one the trust list is not
        updated (the step says so)
    :param stop: set it to make the client give up at the next batch or retry
        (:class:`SyncStopped`); the daemon's shutdown event
    :param policy: the retry policy (tests shorten it)
    :param rng: the random source of the retry jitter (tests seed it)
    :param transport: the terminal's transport to the platform when it has one already
        (shared with e-card decoding); default: :meth:`SyncConfig.transport`
    :param follow_up: makes the follow-up row of a deferred code the platform judged;
        default: :func:`sync.deferred.plain_follow_up`
    """

    def __init__(
        self,
        config: SyncConfig,
        store: Store,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        *,
        trust_saver: TrustSaver | None = None,
        stop: threading.Event | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        transport: SignedTransport | None = None,
        follow_up: FollowUp = plain_follow_up,
    ) -> None:
        self.config = config
        self._follow_up = follow_up
        self.store = store
        self.clock = clock
        self.stop = stop or (transport.stop if transport is not None else threading.Event())
        self._trust_saver = trust_saver
        self._secrets: TerminalSecrets | None = None
        self._last_offset: float | None = None
        self.transport = transport or config.transport(
            session=session, policy=policy, clock=clock, stop=self.stop, rng=rng
        )

    # --- the journal --------------------------------------------------------------------

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
            if rows[0].seq != acked + 1:
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
            _, answer = self.transport.request(
                "POST",
                PATH_BATCH,
                body=body,
                content_type="application/json",
                check=batch_answer,
            )
        except SyncRefused as exc:
            if exc.status != HTTP_TOO_LARGE or rows == 1:
                raise
            log.warning("event=sync_batch_too_large rows=%d", rows)
            return None
        assert answer is not None  # the check always returns one
        return answer

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
            _, verdict = self.transport.request(
                "POST",
                PATH_CONFIRM,
                body=body,
                content_type="application/json",
                check=lambda exchange: Confirmation.parse(exchange.json(), row.seq),
            )
        except SyncRefused as exc:
            if exc.status == 404 and exc.code == "not_deferred":
                log.warning("event=ecard_deferred_not_on_platform seq=%d", row.seq)
                return None
            if exc.status == 404 and exc.code == "code_mismatch":
                log.error("event=ecard_deferred_code_mismatch seq=%d", row.seq)
                return follow_up_entry(row, reason=Invalidity.CODE_MISMATCH)
            raise
        assert verdict is not None  # the check always returns one
        return self._follow_up(self.store, row, verdict)

    # --- lists --------------------------------------------------------------------------

    def update_deny(self) -> DenyReport:
        """Bring the deny list up to date: the deltas (or a snapshot) since the active version,
        each verified with the pinned Ed25519 key and applied in one transaction.

        :returns: the versions before and after, and what was applied
        :raises DenySignatureError: a list whose signature is missing or wrong; nothing changed
        :raises DenyListError: a list that does not parse or does not apply; nothing changed
        :raises SyncConfigError: no deny-list public key (settings or secrets)
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        verify = ed25519_verifier(self._public_key("deny_public_key"))
        before = self.store.deny.status().version
        imported: list[tuple[int, str, int]] = []
        for _ in range(MAX_DENY_STEPS):
            active = self.store.deny.status().version
            exchange, _ = self.transport.request(
                "GET",
                PATH_DENY,
                query={"since": str(active)} if active is not None else None,
                accept=frozenset({200, 204}),
            )
            if exchange.status == 204:
                # the platform confirmed the list is current: that is what freshness means
                self.store.meta.set({META_DENY_CURRENT_AT: f"{self.clock():.3f}"})
                break
            signature = deny_signature(exchange.headers.get(H_DENY_SIGNATURE))
            try:
                result = self.store.deny.import_bytes(exchange.body, signature, verify)
            except DenyListError as exc:
                log.error("event=sync_deny_refused since=%s error=%s", active, type(exc).__name__)
                raise
            if result.already_applied:
                break
            imported.append((result.version, str(result.kind), result.file_entries))
            log.info(
                "event=sync_deny_applied version=%d kind=%s entries=%d",
                result.version,
                result.kind,
                result.file_entries,
            )
        return DenyReport(before, self.store.deny.status().version, tuple(imported))

    def update_trust(self) -> TrustReport:
        """Bring the e-card trust list up to date, verified against the pinned root key.

        :returns: the versions before and after
        :raises SyncConfigError: no trust saver, or no root key (settings or secrets)
        :raises SscardError: the list does not verify or is older (from the trust saver);
            nothing changed
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        if self._trust_saver is None:
            raise SyncConfigError("no trust-list verifier was given to the sync client")
        root = self._public_key("trust_root_key")
        info = self.store.trust.info()
        before = info.version if info else None
        exchange, _ = self.transport.request(
            "GET",
            PATH_TRUST,
            query={"since": str(before)} if before is not None else None,
            accept=frozenset({200, 204}),
        )
        if exchange.status == 200:
            self._trust_saver(self.store, exchange.body, root, self.clock())
        after = self.store.trust.info()
        return TrustReport(before, after.version if after else None)

    def update_catalogue(self, region: str | None = None) -> CatalogueReport:
        """Replace the application catalogue with the platform's items for a region.

        The whole catalogue is fetched every time (it is small), so its load time, which the
        pipeline judges staleness by, says when the terminal last heard from the platform.

        :param region: a six-digit region code; ``None`` lets the platform use the region the
            terminal was registered with
        :returns: the items loaded
        :raises SyncConfigError: a region that is not six digits
        :raises CatalogueError: the answer breaks the catalogue format; nothing changed
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        if region is not None and not (len(region) == 6 and region.isascii() and region.isdigit()):
            raise SyncConfigError("the catalogue region must be 6 digits")
        query = {"region": region} if region is not None else None
        exchange, _ = self.transport.request("GET", PATH_CATALOGUE, query=query)
        source = f"{self.config.url.rstrip('/')}{PATH_CATALOGUE}?region={region or '-'}"
        items = self.store.catalogue.load_bytes(exchange.body, "json", source)
        etag = exchange.headers.get("ETag")
        self.store.meta.set({META_CATALOGUE_ETAG: etag[:200] if etag else None})
        return CatalogueReport(region or "registered", items, etag)

    # --- secrets, time, heartbeat ---------------------------------------------------------

    def fetch_secrets(self) -> SecretsReport:
        """Fetch the terminal's secrets and write each to its configured file (0600, atomic).

        The deny-list and trust-list public keys are also kept for this client's list updates
        when the settings name no file for them.

        :returns: which secrets were written, unchanged or have no file configured
        :raises SyncProtocolError: the document does not decrypt with this terminal's key, or
            breaks the contract
        :raises RefusedTestKey: a production terminal was sent a TEST KEY; nothing is written
        :raises OSError: a file could not be written
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        _, document = self.transport.request("GET", PATH_SECRETS, check=json_answer)
        credentials = self.config.credentials
        secrets = open_secrets(document, credentials.key, credentials.terminal_id)
        self._refuse_test_keys(secrets)
        self._secrets = secrets
        files: tuple[tuple[str, Path | None, bytes], ...] = (
            ("pepper", self.config.pepper_file, secrets.pepper.hex().encode("ascii") + b"\n"),
            ("deny_public_key", self.config.deny_public_key, secrets.deny_public_key),
            ("trust_root_key", self.config.trust_root_key, secrets.trust_root_key),
            ("audience_keys", self.config.audience_keys, audience_keys_toml(secrets.audience_keys)),
        )
        written: list[str] = []
        unchanged: list[str] = []
        missing: list[str] = []
        changed: list[str] = []
        for name, path, data in files:
            if path is None:
                missing.append(name)
                continue
            existed = path.exists()
            if write_private_file(path, data):
                written.append(name)
                if existed:
                    changed.append(name)
                log.info("event=sync_secret_written name=%s path=%s", name, path)
            else:
                unchanged.append(name)
        if "pepper" in changed:
            log.warning("event=sync_pepper_changed path=%s", self.config.pepper_file)
        return SecretsReport(tuple(written), tuple(unchanged), tuple(missing), tuple(changed))

    def sync_time(self) -> TimeReport:
        """Read the platform's clock and record the local clock's offset in the store.

        :returns: the server time, the offset and whether it is beyond the limit (an alarm,
            also logged as a warning)
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        exchange, now = self.transport.request("GET", PATH_TIME, check=server_time)
        assert now is not None  # the check always returns one
        report = self._record_time(exchange, now)
        log.info("event=sync_time offset_s=%.3f rtt_s=%.3f", report.offset_s, report.rtt_s)
        return report

    def heartbeat(self) -> HeartbeatReport:
        """Tell the platform the software version, list versions, backlog and clock offset
        (measured first when this client has not read the platform's clock yet).

        :returns: the platform's time and the backlog reported
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        trust = self.store.trust.info()
        offset = self._last_offset
        if offset is None:  # the platform takes a number: measure it when this run has none
            offset = self.sync_time().offset_s
        backlog = self.store.journal.backlog().pending
        body = {
            "software_version": _software_version(),
            "deny_version": self.store.deny.status().version,
            "trust_version": trust.version if trust else None,
            "backlog": backlog,
            "clock_offset_s": round(offset, 3),
        }
        _, now = self.transport.request(
            "POST",
            PATH_HEARTBEAT,
            body=json.dumps(body).encode("utf-8"),
            content_type="application/json",
            check=server_time,
        )
        assert now is not None  # the check always returns one
        return HeartbeatReport(now, backlog)

    def sync_once(self, progress: Progress | None = None) -> SyncReport:
        """One whole sync: time, secrets, deny list, trust list, catalogue, upload, the
        confirmation of deferred e-card codes, heartbeat.

        A step that is refused does not stop the others (the journal still goes up when a
        list is refused); a platform that cannot be reached, a refused signature, a pinned
        certificate that does not match or a stop request ends the sync there.

        :param progress: passed to :meth:`upload`
        :returns: one result per step; :attr:`SyncReport.exit_status` sums them up
        :raises: nothing but programming errors: every failure is in the report
        """
        report = SyncReport()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("time", self.sync_time),
            ("secrets", self.fetch_secrets),
            ("deny", self.update_deny),
            ("trust", self.update_trust),
            ("catalogue", lambda: self.update_catalogue(self.config.region)),
            ("upload", lambda: self.upload(progress)),
            ("ecard", self.confirm_deferred),
            ("heartbeat", self.heartbeat),
        ]
        for name, step in steps:
            try:
                value = step()
            except (SscardError, OSError) as exc:
                status, detail, final = failure(exc, self.config.max_clock_offset_s)
                report.add(name, status, detail)
                if final:
                    break
            else:
                report.add(name, *describe(name, value))
        alarm = self.store.journal.alarm()
        if alarm:
            report.add("journal", StepStatus.ALARM, alarm)
        for step_result in report.steps:
            level = logging.INFO if step_result.status is StepStatus.OK else logging.WARNING
            log.log(
                level, "event=sync_step name=%s status=%s", step_result.name, step_result.status
            )
        return report

    # --- plumbing -----------------------------------------------------------------------

    def _record_time(self, exchange: Exchange, server_time: float) -> TimeReport:
        offset = server_time - exchange.midpoint
        self._last_offset = offset
        report = TimeReport(server_time, offset, exchange.rtt_s, self.config.max_clock_offset_s)
        self.store.meta.set(
            {
                META_SERVER_TIME: f"{server_time:.3f}",
                META_OFFSET: f"{offset:.3f}",
                META_SYNCED_AT: f"{exchange.midpoint:.3f}",
            }
        )
        if report.alarm:
            log.warning(
                "event=sync_clock_alarm offset_s=%.1f limit_s=%.0f",
                offset,
                self.config.max_clock_offset_s,
            )
        return report

    def _refuse_test_keys(self, secrets: TerminalSecrets) -> None:
        """On a production terminal, refuse secrets that hold a TEST KEY (a platform set up
        with ``platform init --test-keys``)."""
        production = self.config.production
        for name in ("trust_root_key", "deny_public_key"):
            pem = bytes(getattr(secrets, name))
            der = public_key_der(pem) or b""
            refuse_test_key(der, f"the {name} the platform sent", production=production, text=pem)
        for kid, key in secrets.audience_keys.items():
            refuse_test_key(key, f"the audience key {kid} the platform sent", production=production)

    def _public_key(self, name: str) -> bytes:
        """A pinned public key: the configured file, else the one the secrets brought (a TEST
        KEY is refused on a production terminal)."""
        path: Path | None = getattr(self.config, name)
        if path is not None and path.exists():
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise SyncConfigError(f"cannot read {name} {path}: {exc.strerror}") from exc
            refuse_test_key(
                public_key_der(pem) or b"",
                f"{name} {path}",
                production=self.config.production,
                text=pem,
            )
            return pem
        if self._secrets is not None:
            return bytes(getattr(self._secrets, name))
        where = f"{path} does not exist" if path is not None else "no file is configured"
        raise SyncConfigError(f"no {name} to verify with: {where} and no secrets were fetched")

    def close(self) -> None:
        """Close the HTTP session (the store stays open: it is the caller's).

        :raises: nothing
        """
        self.transport.close()


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


def _software_version() -> str:
    try:
        return importlib.metadata.version(SOFTWARE)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
