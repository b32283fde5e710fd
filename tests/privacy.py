"""The privacy check of the whole suite: no persona's SSN, name or card number in any log line.

Every log record of the test process and of every ``sscard`` child process (through
``$SSCARD_LOG_FILE`` at DEBUG) is captured; at the end of the session each line is searched
for every persona's SSN, name and card number, as text and as the hex of their card encoding
(an APDU trace would show them that way).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PERSONAS = Path(__file__).resolve().parents[1] / "drivers" / "virtual" / "personas"


@dataclass(frozen=True, slots=True)
class Secret:
    """One personal value to look for.

    :param label: where it comes from, e.g. ``ordinary-2.0 ssn`` (safe to print)
    :param forms: the strings that give it away
    """

    label: str
    forms: tuple[str, ...]


def persona_secrets(folder: Path = PERSONAS) -> list[Secret]:
    """The SSN, name and card number of every persona file, with their hex forms.

    :param folder: the persona folder
    """
    secrets = []
    for path in sorted(folder.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        values = {
            "ssn": data.get("holder", {}).get("ssn"),
            "name": data.get("holder", {}).get("name"),
            "card_number": data.get("card", {}).get("card_number"),
        }
        for item, value in values.items():
            if not value:
                continue
            raw = value.encode("gb18030")
            forms = (value, raw.hex(), raw.hex().upper(), raw.hex(" ").upper())
            secrets.append(Secret(f"{path.stem} {item}", forms))
    return secrets


def find_leaks(lines: Iterable[str], secrets: list[Secret]) -> list[str]:
    """Report every line that holds a secret, naming the secret but not showing it.

    :param lines: log lines
    :param secrets: what to look for
    """
    found = []
    for number, line in enumerate(lines, 1):
        for secret in secrets:
            if any(form in line for form in secret.forms):
                found.append(f"log line {number}: {secret.label} unmasked ({line[:60]!r}…)")
    return found


class CaptureHandler(logging.Handler):
    """Keep every formatted log record of the test process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.lines.append(f"{record.name} {record.msg!r} {record.args!r}")
