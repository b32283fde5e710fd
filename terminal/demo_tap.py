"""The second half of ``sscard demo``: bus validators deciding taps with ``sscard tap``.

Each validator is a throw-away terminal in a temporary folder: settings, a pepper and a journal
key (0600), the application catalogue, and a deny list signed with a key made for the demo, on
which the student's card is reported lost. Cards go into vpcd slot 0; the virtual PSAM in slot 1
proves each one genuine. Every decision is journaled; the first validator ends by verifying
its journal's chain.

The first validator, in Guangzhou, has a current list: local cards, and a card from Nanchang
(Jiangxi) accepted as at home (省际互通; docs/policy.md §1). The second has not heard from the
platform for four days — its list is stale (older than the transit profile's 72 hours) — and
keeps the bus running (docs/policy.md §3): a Changsha elderly card rides free, its decision
flagged ``stale_list:deny_list``, the operator's alarm printed; the lost card is still refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline_store import canonical_card_id, keyed_card_hash

#: the cards tapped at the validator, in order; the student's card is on the deny list
RIDERS = ("elderly", "ordinary-2.0", "student", "v3-sm4", "jiangxi-nanchang")
#: the cards tapped at the validator whose list is four days old
STALE_RIDERS = ("hunan-changsha", "student")
STALE_AGE = timedelta(days=4)  # older than the transit profile's max_list_age_hours (72)
#: riders whose card another province issued, as the demo names them
FROM_AFAR = {
    "jiangxi-nanchang": "a Nanchang (Jiangxi) card at a Guangzhou bus",
    "hunan-changsha": "a Changsha (Hunan) elderly card",
}
LOST = ("440100", "A05514724")  # the student persona's region and card number
CATALOGUE = """format = "sscard-catalogue/1"
[[items]]
code = "0301"
name = "公共交通"
scenario = "transit"
regions = ["44", "33"]
"""


def _sscard(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "terminal.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _signed_deny_list(folder: Path, pepper: bytes, created: datetime) -> tuple[Path, Path]:
    signer = Ed25519PrivateKey.generate()
    header = {
        "format": "sscard-deny/1",
        "kind": "snapshot",
        "version": 1,
        "created": created.isoformat(timespec="seconds"),
        "entries": 1,
    }
    entry = {
        "hash": keyed_card_hash(pepper, canonical_card_id(*LOST)),
        "reason": "lost",
        "effective": "2026-01-01",
    }
    body = f"{json.dumps(header)}\n{json.dumps(entry)}\n".encode()
    path = folder / "deny-1.jsonl"
    path.write_bytes(body)
    path.with_name(path.name + ".sig").write_bytes(signer.sign(body))
    public = folder / "deny-signing.pem"
    public.write_bytes(
        signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return path, public


def bus_validator(
    insert: Callable[[str], Callable[[], None]], psam_reader: str, reader: str, out: TextIO
) -> None:
    """Set up two validators and tap each rider's card: one with a current deny list, one
    whose list is four days old.

    :param insert: puts a persona's card into slot 0 and returns the function removing it
    :param psam_reader: the PSAM's reader name
    :param reader: the card reader name
    :param out: where to print
    """
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="sscard-demo-") as name:
        print("\nbus validator: sscard tap --scenario transit (deny list: the student's card lost)",
              file=out)  # fmt: skip
        config = _terminal(Path(name), "DEMO-BUS-01", now, out)
        for rider in RIDERS:
            _show_tap(rider, _tap(insert, rider, config, psam_reader, reader), out)
        _journal_verified(config, out)
    with tempfile.TemporaryDirectory(prefix="sscard-demo-") as name:
        print("\nbus validator, no sync for 4 days: its deny list is stale (transit limit 72 h)",
              file=out)  # fmt: skip
        config = _terminal(Path(name), "DEMO-BUS-02", now - STALE_AGE, out)
        status = _sscard("deny", "status", "--config", str(config), "--db",
                         str(config.parent / "store.db"), "--scenario", "transit")  # fmt: skip
        for line in status.stdout.splitlines():
            if line.startswith(("age:", "  transit:")):
                print(f"  operator: sscard deny status: {line.strip()}", file=out)
        raised: set[str] = set()  # a daemon logs each change of state once; each tap here
        for rider in STALE_RIDERS:  # is a process of its own, so the demo shows it once
            done = _tap(insert, rider, config, psam_reader, reader)
            for alarm in _alarms(done.stderr):
                if alarm not in raised:
                    print(f"  operator alarm: {alarm}", file=out)
                raised.add(alarm)
            _show_tap(rider, done, out)


def _terminal(folder: Path, terminal_id: str, list_created: datetime, out: TextIO) -> Path:
    """A validator's folder: settings, secrets, the catalogue and a deny list made then."""
    pepper = os.urandom(32)
    _private(folder / "pepper", pepper)
    _private(folder / "journal.key", os.urandom(32).hex().encode())
    config = folder / "terminal.toml"
    config.write_text(
        f'[terminal]\nid = "{terminal_id}"\n[store]\ndatabase = "store.db"\n'
        'pepper_file = "pepper"\njournal_key_file = "journal.key"\n'
        "[indicators]\nconsole = false\n"
    )
    catalogue = folder / "catalogue.toml"
    catalogue.write_text(CATALOGUE, encoding="utf-8")
    deny, public = _signed_deny_list(folder, pepper, list_created)
    steps = [
        ("catalogue", "load", str(catalogue), "--config", str(config)),
        ("deny", "import", str(deny), "--db", str(folder / "store.db"),
         "--pepper-file", str(folder / "pepper"), "--public-key", str(public)),
    ]  # fmt: skip
    for step in steps:
        done = _sscard(*step)
        print(f"  {done.stdout.strip() or done.stderr.strip()}", file=out)
    return config


def _tap(
    insert: Callable[[str], Callable[[], None]],
    rider: str,
    config: Path,
    psam_reader: str,
    reader: str,
) -> subprocess.CompletedProcess[str]:
    remove = insert(rider)
    try:
        return _sscard(
            "tap", "--scenario", "transit", "--config", str(config),
            "--reader", reader, "--sam-reader", psam_reader, "--format", "json",
        )  # fmt: skip
    finally:
        remove()


def _alarms(stderr: str) -> list[str]:
    """The operator's alarm lines of a tap's log (``event=list_degraded …``)."""
    return [line[line.index("event=") :] for line in stderr.splitlines() if "event=list_" in line]


def _journal_verified(config: Path, out: TextIO) -> None:
    verified = _sscard("journal", "verify", "--config", str(config))
    print(f"  {verified.stdout.strip() or verified.stderr.strip()}", file=out)


def _show_tap(rider: str, done: subprocess.CompletedProcess[str], out: TextIO) -> None:
    try:
        decision = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"  [{rider}] (exit {done.returncode}) {done.stderr.strip()}", file=out)
        return
    fare = decision["detail"].get("fare_fen")
    shown = f"fare {fare / 100:.2f} yuan" if fare is not None else decision["reason"]
    concession = decision["detail"].get("concession")
    extra = f" ({concession})" if concession else ""
    flags = f" flags {','.join(decision['flags'])}" if decision.get("flags") else ""
    afar = f" — {FROM_AFAR[rider]}" if rider in FROM_AFAR else ""
    print(
        f"  [{rider}] {decision['outcome']}: {decision['prompt_zh']} / {decision['prompt_en']}"
        f" — {shown}{extra} (journal seq {decision['seq']}){flags}{afar}",
        file=out,
    )
