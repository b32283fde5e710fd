"""A city's fleet against the reference platform: many simulated terminals, each journaling one
decision a second and uploading its backlog in signed batches on its own sync interval (with
jitter), against ``sscard platform serve`` on PostgreSQL, with the platform SIGKILLed and
restarted during the run (issue 16).

At the end it checks what a city's one-card office would: every row each terminal journaled is
on the platform exactly once (no row lost, none doubled: the platform's rows per terminal equal
the rows generated, and the rows it reported ``accepted`` add up to them, retries after a kill
coming back as ``duplicates``), and prints the upload lag (row journaled → acknowledged) p50 and
p99, the platform's rows/s and the CPU seconds of the platform process and of the machine.

Usage::

    python tools/fleet.py                       # 10,000 terminals, 120 s, 2 kills
    python tools/fleet.py --terminals 200 --seconds 20 --kills 1 --json out.json

With no ``--db`` it starts a throwaway PostgreSQL 15 cluster (``tests/postgres.py``). Exit
status 0 when nothing was lost or doubled, 1 otherwise, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/postgres.py: the throwaway cluster

import postgres  # noqa: E402

from drivers.virtual import TEST_KEYS  # noqa: E402
from offline_store.chain import GENESIS_HASH, canonical_bytes, chain_hash  # noqa: E402
from platform_server import Platform  # noqa: E402
from sync.auth import Credentials  # noqa: E402

BATCH_PATH = "/v1/journal/batch"
MAX_ROWS = 5000  # a batch holds at most this many rows (docs/sync.md)
START_TIMEOUT_S = 60.0


@dataclass
class Terminal:
    """One simulated terminal: what it journaled and what the platform acknowledged."""

    credentials: Credentials
    phase: float  # its first decision, seconds after the start
    made: int = 0  # rows journaled so far
    acked: int = 0  # the platform's ack cursor
    prev_hash: str = GENESIS_HASH
    hashes: list[str] = field(default_factory=list)  # hash of row seq (index seq - 1)


@dataclass
class Answers:
    """What the platform answered the uploads: the fleet counts into it, the result holds it."""

    requests: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # HTTP status or exception → count
    accepted: int = 0  # rows the answers counted as new
    duplicates: int = 0  # rows they counted as already there (retries after a kill)
    rejected: int = 0


@dataclass
class Lag:
    """The upload lag, row journaled → acknowledged, in seconds."""

    p50_s: float = 0.0
    p99_s: float = 0.0
    max_s: float = 0.0

    @classmethod
    def of(cls, lags: list[float]) -> Lag:
        """The median, the 99th percentile and the longest of ``lags`` (all 0 when empty)."""
        if not lags:
            return cls()
        lags = sorted(lags)
        return cls(
            statistics.median(lags), lags[min(len(lags) - 1, int(len(lags) * 0.99))], lags[-1]
        )


@dataclass
class CpuSeconds:
    """CPU seconds used, by whom; :meth:`read` reads the clocks, :meth:`since` subtracts."""

    platform_cpu_s: float = 0.0  # the platform process over all its lives
    postgres_cpu_s: float = 0.0  # the cluster's processes; 0 for a server given by --db
    simulator_cpu_s: float = 0.0  # this process: the terminals' signing, hashing and HTTP
    machine_cpu_s: float = 0.0  # every process of the machine, other people's too

    @classmethod
    def read(cls, server: str, platform_cpu_s: float = 0.0) -> CpuSeconds:
        """The clocks now: ``server``'s throwaway cluster, this process and the machine."""
        return cls(platform_cpu_s, _postgres_cpu_s(server), _own_cpu_s(), _machine_cpu_s())

    def since(self, start: CpuSeconds) -> CpuSeconds:
        """The seconds used between ``start`` and this reading."""
        return CpuSeconds(
            *(now - then for now, then in zip(astuple(self), astuple(start), strict=True))
        )


@dataclass
class Result:
    """What a run measured."""

    terminals: int
    seconds: float
    kills: int
    rows_made: int = 0
    rows_on_platform: int = 0
    terminals_short: int = 0
    terminals_over: int = 0
    answered: Answers = field(default_factory=Answers)
    lag: Lag = field(default_factory=Lag)
    drain_s: float = 0.0
    platform_rows_per_s: float = 0.0  # all rows over the whole run, drain included
    peak_rows_per_s: float = 0.0  # the best 5 s of acknowledged rows
    cpu: CpuSeconds = field(default_factory=CpuSeconds)
    cpus: int = 0
    register_s: float = 0.0
    journal_table_bytes: int = 0  # the platform's journal on PostgreSQL: heap and TOAST
    journal_index_bytes: int = 0  # its indexes

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing doubled: each terminal's rows on the platform are the rows it
        made, and no answer counted a row as new twice. A batch whose answer a kill cut off
        after its commit is sent again and comes back as duplicates, so the answers seen may
        count fewer rows ``accepted`` than were made; with the duplicates, at least as many."""
        answered = self.answered
        return (
            self.rows_on_platform == self.rows_made
            and answered.accepted <= self.rows_made <= answered.accepted + answered.duplicates
            and not self.terminals_short
            and not self.terminals_over
            and not answered.rejected
        )

    def to_json(self) -> dict[str, Any]:
        """The result as ``--json`` writes it: one flat object (the answers' and the CPU
        seconds' fields at the top, the lag's as ``lag_…``) and the verdict ``ok``."""
        flat = asdict(self)
        answered, lag, cpu = flat.pop("answered"), flat.pop("lag"), flat.pop("cpu")
        lags = {f"lag_{name}": value for name, value in lag.items()}
        return {**flat, **answered, **lags, **cpu, "ok": self.ok}


class PlatformChild:
    """``sscard platform serve`` as a child process that can be killed and started again on
    the same port; counts its CPU seconds over all its lives."""

    def __init__(self, db: str, keys: Path, port: int) -> None:
        self.command = [
            sys.executable,
            "-m",
            "terminal.cli",
            "platform",
            "serve",
            "--db",
            db,
            "--keys",
            str(keys),
            "--port",
            str(port),
        ]
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.cpu_s = 0.0

    def start(self) -> None:
        """Start it and wait until it answers."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SSCARD_LOG_LEVEL": "WARNING"}
        env.pop("SSCARD_LOG_FILE", None)
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the platform exited with status {self.process.returncode}")
            try:
                if requests.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"the platform did not answer on {self.url}")

    def _cpu(self) -> float:
        assert self.process is not None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Signal it and wait for it to end (idempotent)."""
        if self.process is None:
            return
        self.cpu_s += self._cpu()
        self.process.send_signal(signum)
        self.process.wait(timeout=60)
        self.process = None


def _ticks(stat: str, fields: slice) -> int:
    """Clock ticks summed over ``fields`` of a ``/proc/PID/stat`` line (after the name)."""
    return sum(int(v) for v in stat.rsplit(")", 1)[1].split()[fields])


def _postgres_cpu_s(server: str) -> float:
    """CPU seconds of a throwaway cluster (``tests/postgres.py``): the postmaster, its ended
    backends (waited for, so in its children's times) and its live ones. 0 when the URL names
    no such cluster (``--db``)."""
    sockets = parse_qs(urlsplit(server).query).get("host", [""])[0]
    if not sockets:
        return 0.0
    try:
        master = int((Path(sockets).parent / "data" / "postmaster.pid").read_text().split()[0])
        ticks = _ticks(Path(f"/proc/{master}/stat").read_text(), slice(11, 15))
    except (OSError, ValueError, IndexError):
        return 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue  # ended meanwhile: counted by the postmaster
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                ticks += _ticks(stat, slice(11, 13))
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_cpu_s() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])  # minus idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _row(terminal: Terminal, seq: int, made_at: float) -> dict[str, Any]:
    """Journal row ``seq`` of a terminal, chained to its row ``seq - 1``."""
    tid = terminal.credentials.terminal_id
    record = {
        "v": "sscard-journal/1",
        "seq": str(seq),
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sscard-fleet:{tid}:{seq}")),
        "wall_time_us": str(int(made_at * 1_000_000)),
        "monotonic_ns": str(seq * 1_000_000_000),
        "scenario": "transit",
        "catalogue_item": None,
        "credential_token": "",
        "outcome": "accept",
        "reason_code": "ok",
        "amount": None,
        "terminal_id": tid,
        "personal_fields": [],
        "personal_ct": None,
    }
    prev = terminal.hashes[seq - 2] if seq > 1 else GENESIS_HASH
    return {**record, "prev_hash": prev, "hash": chain_hash(prev, canonical_bytes(record))}


class Fleet:
    """The terminals, their clock and the upload workers."""

    def __init__(self, args: argparse.Namespace, creds: list[Credentials], url: str) -> None:
        self.args = args
        self.url = url
        rng = random.Random(args.seed)
        self.rng = rng
        self.terminals = [Terminal(c, rng.uniform(0, 1.0 / args.rate)) for c in creds]
        self.t0 = time.time()
        self.lock = threading.Lock()
        self.lags: list[float] = []
        self.acks: list[tuple[float, int]] = []  # (when, rows newly acknowledged)
        self.answered = Answers()
        self.local = threading.local()

    def made_by(self, terminal: Terminal, now: float) -> int:
        """How many rows the terminal has journaled by ``now`` (1 a second from its phase)."""
        elapsed = min(now, self.t0 + self.args.seconds) - self.t0 - terminal.phase
        return 0 if elapsed < 0 else int(elapsed * self.args.rate) + 1

    def made_at(self, terminal: Terminal, seq: int) -> float:
        return self.t0 + terminal.phase + (seq - 1) / self.args.rate

    def upload(self, terminal: Terminal) -> float:
        """One sync of one terminal: its backlog in batches; the delay until its next sync."""
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        now = time.time()
        made = self.made_by(terminal, now)
        while len(terminal.hashes) < made:  # journal what happened since the last sync
            seq = len(terminal.hashes) + 1
            row = _row(terminal, seq, self.made_at(terminal, seq))
            terminal.hashes.append(row["hash"])
        terminal.made = made
        while terminal.acked < terminal.made:
            first = terminal.acked + 1
            last = min(terminal.made, terminal.acked + MAX_ROWS)
            rows = [_row(terminal, s, self.made_at(terminal, s)) for s in range(first, last + 1)]
            body = json.dumps({"rows": rows}, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json"}
            headers.update(terminal.credentials.sign("POST", BATCH_PATH, body))
            try:
                answer = session.post(self.url + BATCH_PATH, data=body, headers=headers, timeout=60)
            except requests.RequestException as exc:
                self._count(type(exc).__name__)
                return self.rng.uniform(1.0, 3.0)  # the platform is down: back off
            self._count(str(answer.status_code))
            if answer.status_code != 200:
                retry = answer.headers.get("Retry-After", "")
                return float(retry) + self.rng.uniform(0, 1) if retry.isdigit() else 2.0
            doc = answer.json()
            acked_now = time.time()
            ack = int(doc["ack_seq"])
            with self.lock:
                self.answered.accepted += int(doc.get("accepted", 0))
                self.answered.duplicates += int(doc.get("duplicates", 0))
                self.answered.rejected += len(doc.get("rejected", []))
                self.acks.append((acked_now, max(0, ack - terminal.acked)))
                self.lags.extend(
                    acked_now - self.made_at(terminal, s)
                    for s in range(terminal.acked + 1, ack + 1)
                )
            if ack <= terminal.acked:
                return 2.0  # no progress (a gap the platform waits for): try again later
            terminal.acked = ack
        return self.args.interval * self.rng.uniform(0.8, 1.2)

    def peak_rows_per_s(self, window_s: float = 5.0) -> float:
        """The most rows acknowledged in any ``window_s`` seconds, per second."""
        acks = sorted(self.acks)
        best = total = start = 0
        for when, rows in acks:
            total += rows
            while acks[start][0] < when - window_s:
                total -= acks[start][1]
                start += 1
            best = max(best, total)
        return best / window_s

    def _count(self, what: str) -> None:
        with self.lock:
            self.answered.requests += 1
            self.answered.answers[what] = self.answered.answers.get(what, 0) + 1

    def run(self, platform: PlatformChild) -> float:
        """Run until every terminal's rows are acknowledged; the drain time after the last
        decision (seconds)."""
        args = self.args
        kills = [args.seconds * (i + 1) / (args.kills + 1) for i in range(args.kills)]
        queue = [
            (self.t0 + t.phase + self.rng.uniform(0, args.interval), i)
            for i, t in enumerate(self.terminals)
        ]
        heapq.heapify(queue)
        pending = threading.Condition()
        done_at: float | None = None
        end = self.t0 + args.seconds
        checked = 0.0

        def work(index: int) -> None:
            terminal = self.terminals[index]
            try:
                delay = self.upload(terminal)
            except Exception as exc:  # a bug here must not hang the run: say it, retry
                print(f"fleet: terminal {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
                delay = 2.0
            with pending:
                heapq.heappush(queue, (time.time() + delay, index))
                pending.notify()

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            while True:
                now = time.time()
                if kills and now - self.t0 >= kills[0]:
                    kills.pop(0)
                    platform.stop(signal.SIGKILL)
                    print(f"fleet: platform killed at {now - self.t0:.0f} s", file=sys.stderr)
                    time.sleep(args.outage)
                    platform.start()
                    print(f"fleet: platform back at {time.time() - self.t0:.0f} s", file=sys.stderr)
                if now > end and now - checked > 0.5:
                    checked = now
                    if all(t.acked == self.made_by(t, end) for t in self.terminals):
                        done_at = now
                        break
                with pending:
                    if not queue or queue[0][0] > now:
                        pending.wait(timeout=min(0.2, queue[0][0] - now) if queue else 0.2)
                        continue
                    _, index = heapq.heappop(queue)
                    terminal = self.terminals[index]
                    if now > end and terminal.acked == self.made_by(terminal, end):
                        continue  # finished: no more syncs
                pool.submit(work, index)
        return max(0.0, (done_at or time.time()) - end)


def _platform_rows(db: str) -> tuple[dict[str, int], int, int]:
    """The platform's rows per terminal, and its journal's table and index sizes (bytes)."""
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT terminal_id, count(*) FROM journal GROUP BY terminal_id")
            )
            counts = {str(tid): int(n) for tid, n in rows}
            table, index = conn.execute(
                text("SELECT pg_table_size('journal'), pg_indexes_size('journal')")
            ).one()
            return counts, int(table), int(index)
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> Result:
    """Set up the platform and the terminals, run the fleet, check and measure."""
    result = Result(args.terminals, args.seconds, args.kills, cpus=os.cpu_count() or 0)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sscard-fleet-")))
        server = args.db or stack.enter_context(postgres.throwaway_cluster())
        db = stack.enter_context(postgres.schema_url(server))
        started = time.monotonic()
        setup = Platform.init(db, folder / "keys", test_keys=TEST_KEYS)
        creds = [
            setup.add_terminal(f"F{i:05d}", ("transit",), "440100") for i in range(args.terminals)
        ]
        setup.close()
        result.register_s = time.monotonic() - started
        platform = PlatformChild(db, folder / "keys", _free_port())
        platform.start()
        cpu0 = CpuSeconds.read(server)
        fleet = Fleet(args, creds, platform.url)
        try:
            result.drain_s = fleet.run(platform)
        finally:
            platform.stop()
        result.cpu = CpuSeconds.read(server, platform.cpu_s).since(cpu0)
        on_platform, result.journal_table_bytes, result.journal_index_bytes = _platform_rows(db)
    end = fleet.t0 + args.seconds
    for terminal in fleet.terminals:
        made = fleet.made_by(terminal, end)
        have = on_platform.get(terminal.credentials.terminal_id, 0)
        result.rows_made += made
        result.rows_on_platform += have
        result.terminals_short += have < made
        result.terminals_over += have > made
    result.answered = fleet.answered
    result.answered.answers = dict(sorted(fleet.answered.answers.items()))
    result.lag = Lag.of(fleet.lags)
    result.platform_rows_per_s = result.rows_made / (args.seconds + result.drain_s)
    result.peak_rows_per_s = fleet.peak_rows_per_s()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/fleet.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--terminals", type=int, default=10_000, help="how many (default 10000)")
    parser.add_argument("--seconds", type=float, default=120.0, help="decisions for this long")
    parser.add_argument("--rate", type=float, default=1.0, help="decisions/s per terminal")
    parser.add_argument("--interval", type=float, default=30.0, help="sync interval, s (±20 %%)")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs of the platform")
    parser.add_argument("--outage", type=float, default=2.0, help="seconds down per kill")
    parser.add_argument("--workers", type=int, default=16, help="upload threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="a PostgreSQL URL (default: a throwaway cluster)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    if args.terminals < 1 or args.seconds <= 0 or args.rate <= 0 or args.interval <= 0:
        parser.error("--terminals, --seconds, --rate and --interval must be positive")
    try:
        result = run(args)
    except (postgres.NoPostgres, RuntimeError, OSError) as exc:
        print(f"fleet: cannot run: {exc}", file=sys.stderr)
        return 2
    print(_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 0 if result.ok else 1


def _table(r: Result) -> str:
    verdict = "no row lost, none doubled" if r.ok else "ROWS LOST OR DOUBLED"
    answered, lag, cpu = r.answered, r.lag, r.cpu
    return "\n".join(
        [
            f"fleet: {r.terminals} terminals × {r.seconds:.0f} s, "
            f"platform killed {r.kills}×: {verdict}",
            f"  rows journaled {r.rows_made}, on the platform {r.rows_on_platform}, "
            f"accepted {answered.accepted}, duplicates (retries) {answered.duplicates}, "
            f"rejected {answered.rejected}",
            f"  terminals short {r.terminals_short}, over {r.terminals_over}",
            f"  upload lag p50 {lag.p50_s:.2f} s, p99 {lag.p99_s:.2f} s, "
            f"max {lag.max_s:.2f} s; "
            f"drain after the last decision {r.drain_s:.1f} s",
            f"  platform {r.platform_rows_per_s:.0f} rows/s over the run, "
            f"{r.peak_rows_per_s:.0f} rows/s at best (5 s), "
            f"{answered.requests} requests {answered.answers}",
            f"  CPU: platform process {cpu.platform_cpu_s:.1f} s, "
            f"PostgreSQL {cpu.postgres_cpu_s:.1f} s, simulator {cpu.simulator_cpu_s:.1f} s, "
            f"whole machine {cpu.machine_cpu_s:.1f} s "
            f"({r.cpus} CPUs, load {os.getloadavg()[0]:.1f} at the end)",
            f"  {r.terminals} terminals registered in {r.register_s:.1f} s; the journal on "
            f"PostgreSQL: {r.journal_table_bytes / max(1, r.rows_on_platform):.0f} bytes a row, "
            f"its indexes {r.journal_index_bytes / max(1, r.rows_on_platform):.0f} more",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
