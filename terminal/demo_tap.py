"""The second half of ``sscard demo``: a bus validator deciding taps with ``sscard tap``.

A throw-away terminal in a temporary folder: settings, a pepper and a journal key (0600), the
application catalogue, and a deny list signed with a key made for the demo, on which the
student's card is reported lost. Cards go into vpcd slot 0; the virtual PSAM in slot 1 proves
each one genuine. Every decision is journaled; the demo ends by verifying the journal's chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline_store import canonical_card_id, keyed_card_hash

#: the cards tapped at the validator, in order; the student's card is on the deny list
RIDERS = ("elderly", "ordinary-2.0", "student", "v3-sm4")
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


def _signed_deny_list(folder: Path, pepper: bytes) -> tuple[Path, Path]:
    signer = Ed25519PrivateKey.generate()
    header = {
        "format": "sscard-deny/1",
        "kind": "snapshot",
        "version": 1,
        "created": datetime.now(UTC).isoformat(),
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
    """Set up a validator and tap each rider's card.

    :param insert: puts a persona's card into slot 0 and returns the function removing it
    :param psam_reader: the PSAM's reader name
    :param reader: the card reader name
    :param out: where to print
    """
    with tempfile.TemporaryDirectory(prefix="sscard-demo-") as name:
        folder = Path(name)
        pepper = os.urandom(32)
        _private(folder / "pepper", pepper)
        _private(folder / "journal.key", os.urandom(32).hex().encode())
        config = folder / "terminal.toml"
        config.write_text(
            '[terminal]\nid = "DEMO-BUS-01"\n[store]\ndatabase = "store.db"\n'
            'pepper_file = "pepper"\njournal_key_file = "journal.key"\n'
            "[indicators]\nconsole = false\n"
        )
        catalogue = folder / "catalogue.toml"
        catalogue.write_text(CATALOGUE, encoding="utf-8")
        deny, public = _signed_deny_list(folder, pepper)
        print("\nbus validator: sscard tap --scenario transit (deny list: the student's card lost)",
              file=out)  # fmt: skip
        steps = [
            ("catalogue", "load", str(catalogue), "--config", str(config)),
            ("deny", "import", str(deny), "--db", str(folder / "store.db"),
             "--pepper-file", str(folder / "pepper"), "--public-key", str(public)),
        ]  # fmt: skip
        for step in steps:
            done = _sscard(*step)
            print(f"  {done.stdout.strip() or done.stderr.strip()}", file=out)
        for rider in RIDERS:
            remove = insert(rider)
            try:
                done = _sscard(
                    "tap", "--scenario", "transit", "--config", str(config),
                    "--reader", reader, "--sam-reader", psam_reader, "--format", "json",
                )  # fmt: skip
            finally:
                remove()
            _show_tap(rider, done, out)
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
    print(
        f"  [{rider}] {decision['outcome']}: {decision['prompt_zh']} / {decision['prompt_en']}"
        f" — {shown}{extra} (journal seq {decision['seq']})",
        file=out,
    )
