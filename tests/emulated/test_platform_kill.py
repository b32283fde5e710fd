"""The platform killed (SIGKILL) in the middle of journal batches, twice, and restarted on the
same database: a simple signed client resumes from the acknowledgement cursor, and in the end
every row is stored exactly once and counted exactly once."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from platform_support import (
    TEST_KEYS,
    PlatformProcess,
    SignedClient,
    chain_rows,
    cli,
    free_port,
)

from platform_server import Platform

pytestmark = pytest.mark.emulated

ROWS = 20_000
BATCH = 2_500
KILL_AT_ACK = (5_000, 12_500)
DEADLINE_S = 180.0


class Uploader(threading.Thread):
    """Uploads the rows from the platform's cursor until it has them all; a failed request
    is retried after a pause, like the terminal's client."""

    def __init__(self, client: SignedClient, rows: list[dict[str, object]]) -> None:
        super().__init__(name="test-uploader", daemon=True)
        self.client = client
        self.rows = rows
        self.ack = 0
        self.accepted = 0
        self.duplicates = 0
        self.failed = 0
        self.sending = threading.Event()
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while self.ack < len(self.rows) and time.monotonic() < deadline and not self.stop.is_set():
            batch = self.rows[self.ack : self.ack + BATCH]
            self.sending.set()
            try:
                answer = self.client.upload(batch, timeout=30)
            except requests.RequestException:
                self.failed += 1
                time.sleep(0.05)
                continue
            finally:
                self.sending.clear()
            if answer.status_code != 200:
                time.sleep(float(answer.headers.get("retry-after", "0.05")))
                continue
            body = answer.json()
            if body["rejected"] or body["ack_seq"] < self.ack:
                self.error = f"unexpected answer {body}"
                return
            self.ack = body["ack_seq"]
            self.accepted += body["accepted"]
            self.duplicates += body["duplicates"]


def test_a_server_killed_mid_batch_twice_loses_no_row_and_counts_none_twice(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'platform.db'}"
    keys = tmp_path / "keys"
    with Platform.init(db, keys, test_keys=TEST_KEYS) as setup:
        credentials = setup.add_terminal("T1", ("gate",), "440100")
    rows = chain_rows("T1", ROWS)
    server = PlatformProcess(db, keys, free_port())
    server.start()
    client = SignedClient(server.url, credentials)
    uploader = Uploader(client, rows)
    killed_in_flight = []
    try:
        uploader.start()
        for threshold in KILL_AT_ACK:
            deadline = time.monotonic() + DEADLINE_S
            while not (uploader.ack >= threshold and uploader.sending.is_set()):
                assert uploader.is_alive() and time.monotonic() < deadline, "no kill point"
                time.sleep(0.001)
            time.sleep(random.uniform(0.02, 0.12))  # the server is parsing or writing it
            killed_in_flight.append(uploader.sending.is_set())
            assert server.signal(signal.SIGKILL) == -signal.SIGKILL
            server.start()
        uploader.join(DEADLINE_S)
        assert uploader.error is None, uploader.error
        assert uploader.ack == ROWS
        # each kill hit a request in flight: its answer never came (the batch was retried)
        assert all(killed_in_flight) and uploader.failed >= len(KILL_AT_ACK)
        # nothing lost, nothing counted twice
        assert uploader.accepted <= ROWS <= uploader.accepted + uploader.duplicates
        again = [client.upload(rows[i : i + 5000]).json() for i in range(0, ROWS, 5000)]
        assert sum(a["accepted"] for a in again) == 0
        assert sum(a["duplicates"] for a in again) == ROWS
    finally:
        uploader.stop.set()
        if uploader.is_alive():
            uploader.join(DEADLINE_S)
        client.close()
        status = server.signal(signal.SIGTERM) if server.process else 0
    assert status == 0  # SIGTERM stops it cleanly
    with Platform.open(db) as platform:
        [summary] = platform.verify_chains("T1")
    assert (summary.rows, summary.counted, summary.ack_seq) == (ROWS, ROWS, ROWS)
    assert summary.ok
    verify = cli("tx", "verify", "--db", db)
    assert verify.returncode == 0, verify.stderr
    assert f"T1: {ROWS} rows (counted {ROWS}), seq 1-{ROWS}, ack {ROWS}: ok" in verify.stdout


def test_a_request_replayed_after_the_platform_was_killed_is_refused(tmp_path: Path) -> None:
    """Nonces are committed to the database before the answer (without waiting for the disk:
    a killed process loses nothing the OS holds), so SIGKILL opens no replay window
    (issue 10 finding 8)."""
    db = f"sqlite:///{tmp_path / 'platform.db'}"
    keys = tmp_path / "keys"
    with Platform.init(db, keys, test_keys=TEST_KEYS) as setup:
        credentials = setup.add_terminal("T1", ("gate",), "440100")
    server = PlatformProcess(db, keys, free_port())
    server.start()
    client = SignedClient(server.url, credentials)
    try:
        upload = client.upload(chain_rows("T1", 1))
        assert upload.status_code == 200
        assert server.signal(signal.SIGKILL) == -signal.SIGKILL
        server.start()
        sent = upload.request
        replay = requests.post(
            str(sent.url), data=sent.body, headers=dict(sent.headers), timeout=30
        )
        assert replay.status_code == 401 and replay.json()["code"] == "replayed_nonce"
        assert client.get("/v1/time").status_code == 200
    finally:
        client.close()
        server.stop()
