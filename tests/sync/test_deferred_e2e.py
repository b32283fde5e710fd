"""Issue 11 §3 end to end: national e-card codes deferred while the platform is out of reach,
then confirmed — or reported invalid — at the next ``sscard sync``, over real HTTP against
``sscard platform serve`` on loopback.

A bus and a library gate, their platform down, let five holders through on national codes
(``sscard qr verify``, the real handler): an ordinary card and an elderly card from Changsha
on the bus, and at the gate a code whose card is reported lost that day, a code that had
expired, and a code the platform never issued. The platform comes back; one ``sscard sync``
uploads the deferred rows, has each code judged as of its scan, journals a follow-up row per
code naming the deferred one (``ref_seq``) — the journal is append-only — and uploads those
too; ``sscard platform ecard deferred`` shows every code with what became of it, and the
terminal's journal may then be pruned.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import tomllib
from pathlib import Path

import golden
import pytest
from sync_support import PlatformProcess, register, run, sscard

from drivers.virtual import PERSONAS, TEST_KEYS
from offline_store import Store, canonical_ecard_id, load_pepper_file
from platform_server import Platform
from sync.deferred import code_hash
from terminal.cli import qr as qr_cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "tests" / "catalogue.toml"


def persona(name: str) -> dict:
    return tomllib.loads((PERSONAS / f"{name}.toml").read_text(encoding="utf-8"))


def qr_verify(capsys: pytest.CaptureFixture[str], config: Path, code: str, scenario: str) -> dict:
    """``sscard qr verify CODE --scenario S`` in this process (the real handler)."""
    parser = argparse.ArgumentParser(prog="sscard")
    qr_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    argv = [
        "qr",
        "verify",
        code,
        "--scenario",
        scenario,
        "--format",
        "json",
        "--config",
        str(config),
    ]
    capsys.readouterr()

    def command() -> int:
        parsed = parser.parse_args(argv)
        return int(parsed.handler(parsed))

    status = golden.in_process(argv, command)
    out, err = capsys.readouterr()
    assert status in (0, 1), err
    decision: dict = json.loads(out)
    return decision


def settings(folder: Path, terminal_id: str, key_id: str, url: str) -> Path:
    (folder / "journal.key").write_text(os.urandom(32).hex())
    (folder / "journal.key").chmod(0o600)
    path = folder / "terminal.toml"
    path.write_text(
        f'[terminal]\nid = "{terminal_id}"\n'
        '[store]\ndatabase = "store.db"\npepper_file = "pepper"\ndeny_public_key = "deny.pem"\n'
        'journal_key_file = "journal.key"\n'
        '[ecard]\ntrust_root_key = "qr-root.pem"\ndecode_timeout_s = 1\n'
        f'[sync]\nurl = "{url}"\nkey_id = "{key_id}"\nkey_file = "sync.key"\ntimeout_s = 5\n'
        'region = "440100"\n'
        "[indicators]\nconsole = false\n",
        encoding="utf-8",
    )
    return path


def test_deferred_codes_are_confirmed_or_reported_invalid_at_the_next_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = PlatformProcess(tmp_path / "platform")
    with Platform.init(str(platform.db), platform.keys, test_keys=TEST_KEYS) as made:
        made.load_catalogue(CATALOGUE)
        ordinary = made.issue_ecard(persona("ordinary-2.0"), 3600)
        elderly = made.issue_ecard(persona("hunan-changsha"), 3600)
        lost = made.issue_ecard(persona("student"), 3600)
        stale = made.issue_ecard(persona("hk-resident"), 0.5)  # expired before it is shown
    forged = "CNSSC" + base64.b32encode(b"never issued by it!!").decode()
    platform.start()
    try:
        folder = tmp_path / "terminal"
        terminal = register(platform, folder, "440100-T0009", scenarios="transit,gate")
        config = settings(folder, terminal.terminal_id, terminal.key_id, platform.url)
        provisioned = run(sscard("sync", "--once", "--config", str(config)), check=False)
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr

        platform.stop()  # the network is down: the bus and the gate keep going
        scans = [
            (ordinary.code, "transit"),
            (elderly.code, "transit"),
            (lost.code, "gate"),
            (stale.code, "gate"),
            (forged, "gate"),
        ]
        deferred = [qr_verify(capsys, config, code, scenario) for code, scenario in scans]
        assert [d["reason"] for d in deferred] == ["qr_deferred"] * 5
        assert all(d["outcome"] == "accept" for d in deferred)
        seqs = [d["seq"] for d in deferred]
        # the student's card is reported lost that very morning
        with Platform.open(str(platform.db), platform.keys) as operator:
            operator.deny(canonical_ecard_id(lost.token), "lost", effective=dt.date.today())

        platform.restart()
        synced = run(sscard("sync", "--once", "--config", str(config)), check=False)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert "2 confirmed, 3 invalid (reported), 0 waiting" in synced.stdout

        pepper = load_pepper_file(folder / "pepper")
        with Store.open(folder / "store.db", pepper=pepper) as store:
            assert store.journal.count(outcome="deferred", unconfirmed=True) == 0
            backlog = store.journal.backlog()
            assert backlog.pending == 0 and backlog.anchor_seq == backlog.last_seq  # pruned
            ordinary_hash = store.card_hash(canonical_ecard_id(ordinary.token))
        stored = _platform_rows(platform, terminal.terminal_id)
        follow_ups = {int(r["ref_seq"]): r for r in stored.values() if "ref_seq" in r}
        assert sorted(follow_ups) == seqs
        assert [stored[s]["credential_token"] for s in seqs] == [code_hash(c) for c, _ in scans]
        first, second, third, fourth, fifth = (follow_ups[s] for s in seqs)
        assert (first["outcome"], first["reason_code"], first["amount"]) == (
            "accept",
            "ecard_confirmed",
            "200",
        )
        assert first["credential_token"] == ordinary_hash  # the card, known at last
        # the Changsha elderly card rides free, as the physical card does (卡类别 4)
        assert (second["reason_code"], second["amount"]) == ("ecard_confirmed", "0")
        assert [r.get("flags") for r in (third, fourth, fifth)] == [
            ["invalid:deny_lost"],
            ["invalid:code_expired"],
            ["invalid:unknown_code"],
        ]
        assert {r["outcome"] for r in (third, fourth, fifth)} == {"refuse"}

        report = platform.run("ecard", "deferred").stdout
        lines = {int(line.split()[1]): line for line in report.splitlines()}
        assert "confirmed" in lines[seqs[0]] and "2.00" in lines[seqs[0]]
        assert "confirmed" in lines[seqs[1]] and "0.00" in lines[seqs[1]]
        assert "invalid:deny_lost" in lines[seqs[2]]
        assert "invalid:code_expired" in lines[seqs[3]]
        assert "invalid:unknown_code" in lines[seqs[4]]
        with Platform.open(str(platform.db), None) as operator:
            (chain,) = operator.verify_chains(terminal.terminal_id)
        assert chain.ok and chain.rows == 10  # the chain with its follow-ups holds
    finally:
        platform.stop()


def _platform_rows(platform: PlatformProcess, terminal_id: str) -> dict[int, dict]:
    """Every row the platform stored for a terminal, as the records it hashed."""
    import sqlite3

    with sqlite3.connect(f"file:{platform.db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT seq, record FROM journal WHERE terminal_id = ? ORDER BY seq", (terminal_id,)
        ).fetchall()
    return {seq: json.loads(record) for seq, record in rows}
