"""What a sync did, step by step, and the exit status it deserves.

Each step of :meth:`sync.client.SyncClient.sync_once` leaves a :class:`StepResult`: ``ok``,
``alarm`` (the local clock is off, the pepper changed), ``refused`` (the platform or the
terminal refused something: rejected journal rows, a list whose signature fails) or
``failed`` (the platform could not be reached, or the terminal is misconfigured). The CLI
exits 2 when a step failed, else 1 when one was refused or raised an alarm, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "CatalogueReport",
    "DeferredReport",
    "DenyReport",
    "HeartbeatReport",
    "SecretsReport",
    "StepResult",
    "StepStatus",
    "SyncReport",
    "TimeReport",
    "TrustReport",
    "UploadReport",
]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_FAILED = 2


class StepStatus(StrEnum):
    """How a step ended."""

    OK = "ok"  # nothing to report
    ALARM = "alarm"  # the operator must act: the local clock is off, the pepper changed
    REFUSED = "refused"  # the platform or the terminal refused something (journal rows, a list)
    FAILED = "failed"  # the platform could not be reached, or the terminal is misconfigured


@dataclass(frozen=True, slots=True)
class UploadReport:
    """What :meth:`~sync.client.SyncClient.upload` did.

    :param rows_sent: rows sent, resent batches counted again
    :param accepted: rows the platform stored for the first time
    :param duplicates: rows it already held (a batch resent after a lost answer)
    :param batches: batches answered
    :param acked_from: the acknowledgement cursor before
    :param acked_seq: the acknowledgement cursor after
    :param pending: rows still not acknowledged (appended during the upload, or left by a
        failure)
    :param pruned: acknowledged rows pruned after the drain
    :param seconds: wall time of the upload
    """

    rows_sent: int
    accepted: int
    duplicates: int
    batches: int
    acked_from: int
    acked_seq: int
    pending: int
    pruned: int
    seconds: float

    @property
    def acknowledged(self) -> int:
        """Rows newly acknowledged by this upload."""
        return self.acked_seq - self.acked_from

    @property
    def rows_per_s(self) -> float:
        """Acknowledged rows per second."""
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DeferredReport:
    """What :meth:`~sync.client.SyncClient.confirm_deferred` did with the deferred e-card codes.

    :param confirmed: codes the platform confirmed (a follow-up row each)
    :param invalid: codes that turned out invalid, reported in a follow-up row each
    :param waiting: deferred codes still not confirmed (not uploaded yet, the platform did not
        hold them, or they could not be read back)
    :param upload: the upload of the follow-up rows, ``None`` when there were none
    :param unreadable: deferred rows whose code the terminal could not read back (no or
        another journal key): they wait, and the step raises an alarm
    """

    confirmed: int
    invalid: int
    waiting: int
    upload: UploadReport | None
    unreadable: int = 0


@dataclass(frozen=True, slots=True)
class TimeReport:
    """The platform's clock against the terminal's.

    :param server_time: the platform's time, seconds since 1970
    :param offset_s: server minus local at the round trip's midpoint (positive: the local
        clock is behind)
    :param rtt_s: the round trip, seconds
    :param limit_s: ``[sync] max_clock_offset_s``
    """

    server_time: float
    offset_s: float
    rtt_s: float
    limit_s: float

    @property
    def alarm(self) -> bool:
        """The local clock is off by more than the limit."""
        return abs(self.offset_s) > self.limit_s


@dataclass(frozen=True, slots=True)
class DenyReport:
    """What :meth:`~sync.client.SyncClient.update_deny` did.

    :param version_before: the active version before, ``None`` when there was none
    :param version_after: the active version after
    :param imported: ``(version, kind, entries in the file)`` of each list applied
    """

    version_before: int | None
    version_after: int | None
    imported: tuple[tuple[int, str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class TrustReport:
    """What :meth:`~sync.client.SyncClient.update_trust` did.

    :param version_before: the active trust list version before, ``None`` when none
    :param version_after: the version after
    """

    version_before: int | None
    version_after: int | None


@dataclass(frozen=True, slots=True)
class CatalogueReport:
    """What :meth:`~sync.client.SyncClient.update_catalogue` did.

    :param region: the region code asked for (``registered``: the platform's record of the
        terminal)
    :param items: items loaded
    :param etag: the answer's ``ETag``, if any
    """

    region: str
    items: int
    etag: str | None


@dataclass(frozen=True, slots=True)
class SecretsReport:
    """What :meth:`~sync.client.SyncClient.fetch_secrets` did, by secret name (never values).

    :param written: secrets written to their files (new or changed)
    :param unchanged: secrets whose files already held them
    :param not_configured: secrets with no file configured (kept in memory for this run)
    :param changed: the written ones whose file existed with another value (a rotation)
    """

    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    not_configured: tuple[str, ...]
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeartbeatReport:
    """What the platform answered to the heartbeat.

    :param server_time: its clock
    :param backlog: the backlog reported
    """

    server_time: float
    backlog: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a sync.

    :param name: ``time``, ``secrets``, ``deny``, ``trust``, ``catalogue``, ``upload``,
        ``heartbeat``
    :param status: how it ended
    :param detail: one line for the operator (no personal data, no key)
    :param value: the step's report, when it produced one
    """

    name: str
    status: StepStatus
    detail: str
    value: object = None


@dataclass
class SyncReport:
    """Every step of one :meth:`~sync.client.SyncClient.sync_once`.

    :param steps: in the order they ran
    """

    steps: list[StepResult] = field(default_factory=list)

    def add(self, name: str, status: StepStatus, detail: str, value: object = None) -> None:
        """Record a step.

        :param name: the step
        :param status: how it ended
        :param detail: one line
        :param value: its report
        """
        self.steps.append(StepResult(name, status, detail, value))

    def step(self, name: str) -> StepResult | None:
        """The result of a step, ``None`` when it did not run.

        :param name: the step
        """
        return next((s for s in self.steps if s.name == name), None)

    @property
    def ok(self) -> bool:
        """No step refused, failed or raised an alarm."""
        return self.exit_status == EXIT_OK

    @property
    def exit_status(self) -> int:
        """2 when a step failed (unreachable, misconfigured), else 1 when one was refused or
        raised an alarm, else 0."""
        statuses = {s.status for s in self.steps}
        if StepStatus.FAILED in statuses:
            return EXIT_FAILED
        if statuses & {StepStatus.REFUSED, StepStatus.ALARM}:
            return EXIT_REFUSED
        return EXIT_OK

    def lines(self) -> list[str]:
        """One line per step, for the operator."""
        return [f"{s.name:<10} {s.status:<8} {s.detail}" for s in self.steps]
