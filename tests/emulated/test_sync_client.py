"""The sync client against a scripted platform inside a requests adapter: the answers the real
reference server cannot easily be made to give (a lost answer after the rows were stored,
``Retry-After``, rejected rows, an acknowledgement that goes backwards, a stale timestamp with
a ``Date`` header, a stop request). The journal is a real store file.

The end-to-end tests (tests/sync/) run the same client against ``sscard platform serve``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from store_support import Clock

from offline_store import JournalEntry, Store
from offline_store.chain import canonical_bytes, chain_hash
from sync.auth import NonceCache, verify_request
from sync.client import SyncClient
from sync.config import SyncConfig
from sync.errors import (
    SyncAuthError,
    SyncRefused,
    SyncStopped,
    SyncUnreachable,
    UploadRefused,
)
from sync.reports import StepStatus
from sync.transport import Credentials, RetryPolicy

pytestmark = pytest.mark.emulated

TERMINAL = "440100-T0001"
KEY = bytes(range(32))
BASE = "http://platform.test"


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded (no test sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


@dataclass
class ScriptedPlatform(BaseAdapter):
    """A platform in a requests adapter: checks every signature, keeps rows by seq, and lets a
    test script faults per request (``faults`` is consumed in order, one per request)."""

    clock: Callable[[], float]
    rows: dict[int, str] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    ack_override: int | None = None
    reject: dict[int, str] = field(default_factory=dict)
    nonces: NonceCache = field(default_factory=NonceCache)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        path = url[len(BASE) :]
        body = request.body or b""
        assert isinstance(body, bytes)
        self.requests.append(f"{request.method} {path}")
        fault = self.faults.pop(0) if self.faults else "none"
        if fault == "refuse_connection":
            raise requests.ConnectionError("connection refused")
        verify_request(
            request.method or "",
            path,
            request.headers,
            body,
            key_for=lambda t, k: KEY if (t, k) == (TERMINAL, "k1") else None,
            nonces=self.nonces,
            now=self.clock(),
        )
        if fault.startswith("status:"):
            _, status, retry_after = fault.split(":")
            headers = {"Retry-After": retry_after} if retry_after else {}
            return self._answer(request, int(status), {"code": "busy"}, headers)
        if fault == "stale":
            date = email.utils.formatdate(self.clock() + 400, usegmt=True)
            problem = {"code": "stale_timestamp", "title": "old"}
            return self._answer(request, 401, problem, {"Date": date})
        if path == "/v1/time":
            return self._answer(request, 200, {"server_time": self.clock() + 3.0})
        assert path == "/v1/journal/batch"
        answer = self._batch(json.loads(body)["rows"])
        if fault == "lose_answer":  # stored, but the answer never arrives
            raise requests.ConnectionError("connection reset by peer")
        if fault == "truncate":
            return self._raw(request, 200, b'{"ack_seq": ')
        return self._answer(request, 200, answer)

    def _batch(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        accepted = duplicates = 0
        rejected = []
        for row in rows:
            seq = int(row["seq"])
            record = {k: v for k, v in row.items() if k not in {"prev_hash", "hash"}}
            assert chain_hash(row["prev_hash"], canonical_bytes(record)) == row["hash"]
            if seq in self.reject:
                rejected.append({"seq": seq, "code": self.reject[seq]})
            elif seq in self.rows:
                duplicates += 1
            else:
                self.rows[seq] = row["hash"]
                accepted += 1
        ack = 0
        while ack + 1 in self.rows:
            ack += 1
        if self.ack_override is not None:
            ack = self.ack_override
        return {
            "ack_seq": ack,
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
        }

    def _answer(
        self,
        request: requests.PreparedRequest,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        return self._raw(request, status, json.dumps(body).encode(), headers)

    def _raw(
        self,
        request: requests.PreparedRequest,
        status: int,
        content: bytes,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = content
        response.headers.update(headers or {})
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        return None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", clock=clock) as opened:
        yield opened


@pytest.fixture
def platform(clock: Clock) -> ScriptedPlatform:
    return ScriptedPlatform(clock)


@pytest.fixture
def stop() -> RecordingStop:
    return RecordingStop()


def client_for(
    store: Store,
    platform: ScriptedPlatform,
    clock: Clock,
    stop: RecordingStop,
    *,
    batch_rows: int = 10,
    attempts: int = 5,
) -> SyncClient:
    session = requests.Session()
    session.mount(BASE, platform)
    config = SyncConfig(
        url=BASE + "/",
        credentials=Credentials(TERMINAL, "k1", KEY),
        batch_rows=batch_rows,
        prune=False,
    )
    return SyncClient(
        config, store, session, clock, stop=stop, policy=RetryPolicy(attempts=attempts)
    )


def append(store: Store, count: int) -> None:
    for _ in range(count):
        store.journal.append(
            JournalEntry("transit", "0301", "", "accept", "ok", 200, terminal_id=TERMINAL)
        )


def test_a_backlog_drains_in_batches_and_the_cursor_follows_the_platform(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 35)
    seen: list[tuple[int, int]] = []
    report = client_for(store, platform, clock, stop).upload(lambda d, t: seen.append((d, t)))
    assert (report.acked_seq, report.batches, report.accepted, report.duplicates) == (35, 4, 35, 0)
    assert seen == [(10, 35), (20, 35), (30, 35), (35, 35)]
    assert store.journal.backlog().pending == 0
    assert sorted(platform.rows) == list(range(1, 36))


def test_an_answer_lost_after_the_rows_were_stored_makes_them_duplicates_counted_once(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 20)
    platform.faults = ["lose_answer", "none", "truncate", "none"]
    report = client_for(store, platform, clock, stop).upload()
    assert report.acked_seq == 20
    # the platform stored both batches on their first sending; the answers that arrived
    # (to the resent batches) report them as duplicates
    assert (report.accepted, report.duplicates, report.rows_sent) == (0, 20, 20)
    assert len(platform.requests) == 4 and len(stop.waits) == 2
    assert len(platform.rows) == 20


def test_retry_after_is_honoured_exactly(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 3)
    platform.faults = ["status:503:7", "status:429:2", "status:500:"]
    report = client_for(store, platform, clock, stop).upload()
    assert report.acked_seq == 3
    assert stop.waits[:2] == [7.0, 2.0]
    assert 0 <= stop.waits[2] <= RetryPolicy().base_s * 4  # no Retry-After: back-off


def test_no_answer_after_every_attempt_leaves_the_cursor_where_it_was(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 25)
    client = client_for(store, platform, clock, stop, attempts=3)
    platform.faults = ["none"] + ["refuse_connection"] * 3
    with pytest.raises(SyncUnreachable, match="after 3 attempts"):
        client.upload()
    assert store.journal.backlog().acked_seq == 10
    report = client.upload()  # resumes from the cursor
    assert (report.acked_from, report.acked_seq, report.duplicates) == (10, 25, 0)


def test_rejected_rows_stop_the_upload_loudly_with_the_rows_before_acknowledged(
    store: Store,
    platform: ScriptedPlatform,
    clock: Clock,
    stop: RecordingStop,
    caplog: pytest.LogCaptureFixture,
) -> None:
    append(store, 30)
    platform.reject = {14: "conflict", 15: "conflict"}
    client = client_for(store, platform, clock, stop)
    with (
        caplog.at_level(logging.ERROR, logger="sync.client"),
        pytest.raises(UploadRefused, match="rejected 2 journal rows") as caught,
    ):
        client.upload()
    assert [(r.seq, r.code) for r in caught.value.rejected] == [(14, "conflict"), (15, "conflict")]
    assert store.journal.backlog().acked_seq == 13
    assert "event=sync_row_rejected seq=14 code=conflict" in caplog.text
    assert len(platform.requests) == 2  # no loop: the second batch is the last one sent


def test_an_acknowledgement_that_goes_backwards_stops_the_upload(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 20)
    client = client_for(store, platform, clock, stop)
    client.upload()
    append(store, 5)
    platform.ack_override = 4  # the platform lost rows it had acknowledged
    with pytest.raises(UploadRefused, match="lost rows"):
        client.upload()
    assert store.journal.backlog().acked_seq == 20


def test_an_acknowledgement_beyond_the_batch_is_taken_only_up_to_the_batch(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 20)
    platform.ack_override = 20  # claims rows this exchange did not carry
    client = client_for(store, platform, clock, stop)
    report = client.upload()
    assert report.batches == 2 and report.acked_seq == 20  # both batches were sent


def test_a_stale_timestamp_is_a_clock_alarm_with_the_offset_from_the_date_header(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    platform.faults = ["stale"]
    client = client_for(store, platform, clock, stop)
    with pytest.raises(SyncAuthError) as caught:
        client.sync_time()
    assert caught.value.code == "stale_timestamp"
    assert caught.value.clock_offset_s == pytest.approx(400, abs=1.5)
    platform.faults = ["stale"]
    report = client.sync_once()
    time_step = report.step("time")
    assert time_step is not None and time_step.status is StepStatus.ALARM
    assert "+400 s" in time_step.detail and len(report.steps) == 1


def test_the_clock_offset_is_recorded_in_the_store(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    report = client_for(store, platform, clock, stop).sync_time()
    assert report.offset_s == pytest.approx(3.0, abs=0.05) and not report.alarm
    assert float(store.meta.get("sync.clock_offset_s") or 0) == pytest.approx(3.0, abs=0.05)
    assert store.meta.get("sync.server_time") == f"{clock.now + 3.0:.3f}"


def test_a_4xx_answer_is_final(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 1)
    platform.faults = ["status:400:"]
    with pytest.raises(SyncRefused, match="HTTP 400 busy"):
        client_for(store, platform, clock, stop).upload()
    assert len(platform.requests) == 1 and stop.waits == []


def test_a_batch_too_large_is_split_until_it_fits(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 12)
    platform.faults = ["status:413:", "status:413:"]
    report = client_for(store, platform, clock, stop).upload()
    assert report.acked_seq == 12 and stop.waits == []
    assert report.batches == 6  # 10 rows refused, 5 refused, then the rest in batches of 2
    platform.faults = ["status:413:"]
    append(store, 1)
    with pytest.raises(SyncRefused, match="HTTP 413"):  # one row too large: nothing to split
        client_for(store, platform, clock, stop).upload()


def test_a_stop_request_ends_the_upload_between_batches(
    store: Store, platform: ScriptedPlatform, clock: Clock, stop: RecordingStop
) -> None:
    append(store, 30)
    client = client_for(store, platform, clock, stop)

    def stop_after_first(done: int, total: int) -> None:
        stop.set()

    with pytest.raises(SyncStopped):
        client.upload(stop_after_first)
    assert store.journal.backlog().acked_seq == 10
