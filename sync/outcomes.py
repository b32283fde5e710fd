"""How each step of a sync ended: the one place that turns an error or a step's report into
a status (and so into the CLI's exit status, :mod:`sync.reports`)."""

from __future__ import annotations

import logging
from typing import Any

from offline_store import CatalogueError, DenyListError, JournalError, StoreError, TrustVersionError
from sync.errors import (
    SyncAuthError,
    SyncError,
    SyncRefused,
    SyncStopped,
    SyncTlsError,
    SyncUnreachable,
)
from sync.reports import (
    CatalogueReport,
    DeferredReport,
    DenyReport,
    HeartbeatReport,
    SecretsReport,
    StepStatus,
    TimeReport,
    TrustReport,
    UploadReport,
)

__all__ = ["describe", "failure"]

log = logging.getLogger(__name__)


def failure(exc: BaseException, limit_s: float) -> tuple[StepStatus, str, bool]:
    """How a step that raised ended: (status, one line, whether the sync stops there).

    The platform out of reach, a certificate that is not the pinned one, a refused signature
    or a stop request end the sync (every later request would fail alike); anything else
    ends only its step.

    :param exc: what the step raised
    :param limit_s: ``[sync] max_clock_offset_s``, for the clock alarm
    :raises: nothing
    """
    if isinstance(exc, SyncStopped | SyncUnreachable | SyncTlsError):
        return StepStatus.FAILED, str(exc), True
    if isinstance(exc, SyncAuthError):
        return (*_auth_outcome(exc, limit_s), True)
    if isinstance(exc, SyncRefused):
        return StepStatus.REFUSED, str(exc), False
    if isinstance(exc, SyncError):  # misconfigured, or an answer off the contract
        return StepStatus.FAILED, str(exc), False
    if isinstance(exc, DenyListError | CatalogueError | TrustVersionError | JournalError):
        # the terminal refused what the platform sent (a list that fails its signature, an
        # older version, a catalogue off the format) or the journal disagrees
        return StepStatus.REFUSED, f"{type(exc).__name__}: {exc}", False
    if isinstance(exc, StoreError | OSError):  # the store or a secret file could not be written
        return StepStatus.FAILED, f"{type(exc).__name__}: {exc}", False
    # the trust saver's refusals (a trust list that does not verify, a stale one)
    return StepStatus.REFUSED, f"{type(exc).__name__}: {exc}", False


def _auth_outcome(exc: SyncAuthError, limit_s: float) -> tuple[StepStatus, str]:
    if exc.code == "stale_timestamp":
        offset = exc.clock_offset_s
        if offset is not None:
            log.warning("event=sync_clock_alarm offset_s=%.1f limit_s=%.0f", offset, limit_s)
            return (
                StepStatus.ALARM,
                f"the local clock is off by {offset:+.0f} s (limit {limit_s:.0f} s): the "
                "platform refuses its signatures; set the clock",
            )
        return StepStatus.ALARM, f"{exc}: the local clock is probably off; set it"
    return StepStatus.FAILED, f"{exc}: check [sync] key_file and key_id"


def describe(name: str, value: Any) -> tuple[StepStatus, str, object]:
    """The status, one line and the report of a step that returned.

    :param name: the step
    :param value: what it returned
    :raises: nothing
    """
    if isinstance(value, TimeReport):
        status = StepStatus.ALARM if value.alarm else StepStatus.OK
        detail = f"offset {value.offset_s:+.3f} s (limit {value.limit_s:.0f} s)"
        return status, detail + (": set the clock" if value.alarm else ""), value
    if isinstance(value, SecretsReport):
        detail = f"written {','.join(value.written) or '-'}"
        if value.not_configured:
            detail += f"; no file for {','.join(value.not_configured)}"
        if "pepper" in value.changed:
            return StepStatus.ALARM, detail + "; the pepper changed: restart the terminal", value
        return StepStatus.OK, detail, value
    if isinstance(value, DenyReport):
        return StepStatus.OK, f"version {value.version_before} → {value.version_after}", value
    if isinstance(value, TrustReport):
        return StepStatus.OK, f"version {value.version_before} → {value.version_after}", value
    if isinstance(value, CatalogueReport):
        return StepStatus.OK, f"{value.items} items for region {value.region}", value
    if isinstance(value, UploadReport):
        detail = (
            f"{value.acknowledged} rows acknowledged (up to seq {value.acked_seq}), "
            f"{value.duplicates} duplicates, {value.pending} pending, {value.rows_per_s:.0f} rows/s"
        )
        return StepStatus.OK, detail, value
    if isinstance(value, DeferredReport):
        detail = (
            f"deferred e-card codes: {value.confirmed} confirmed, {value.invalid} invalid "
            f"(reported), {value.waiting} waiting"
        )
        if value.unreadable:
            detail += (
                f"; {value.unreadable} cannot be read back from the journal: check "
                "[store] journal_key_file"
            )
            return StepStatus.ALARM, detail, value
        return StepStatus.OK, detail, value
    if isinstance(value, HeartbeatReport):
        return StepStatus.OK, f"backlog {value.backlog}", value
    return StepStatus.OK, name, value
