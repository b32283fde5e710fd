"""The issuer keys the platform checks purchase TACs with: ``payment-roots.toml`` in the keys
folder (0600), optional — without it every TAC is ``no_key`` (docs/clearing.md §2).

::

    # TEST KEYS — … (a file of test roots says so, and carries the flag)
    test_keys = true

    [transit]                       # 交通联合: a card's DTK is this root diversified by its
    dtk = "…32 hex…"                # issuer id, then by its card serial (apdu/transit.py)
    issuers = ["4401000000000000"]  # optional: the issuers cleared here (absent: every issuer
                                    # under this root)

    [medical]                       # SSC DF04: the DTK root, diversified over the 卡识别码's
    dtk = "…32 hex…"                # three factors (apdu/medical_payment.py)

The TAC is the card's, made with a key no terminal holds: only the issuer side can check it,
so these roots live on the platform and nowhere else. ``platform init --test-keys`` writes the
public TEST roots of ``drivers/virtual/test_keys/test-roots.toml`` (the emulated purses' own);
``platform serve --production`` refuses a file that says it holds test keys or whose keys are
listed in :mod:`ecard.testkeys`.
"""

from __future__ import annotations

import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecard.testkeys import known_test_key, marked_test_key
from platform_server.errors import PlatformConfigError

__all__ = ["PAYMENT_ROOTS", "PaymentRoots", "load_payment_roots", "payment_roots_of_test_keys"]

PAYMENT_ROOTS = "payment-roots.toml"
KEY_LEN = 16
_ISSUER = re.compile(r"[0-9A-F]{16}")
_TABLES = {"transit": {"dtk", "issuers"}, "medical": {"dtk"}}


@dataclass(frozen=True, slots=True)
class PaymentRoots:
    """The TAC roots (see the module docstring).

    :param transit_dtk: the transit TAC root, or ``None``
    :param transit_issuers: the issuer ids (16 upper-case hex) cleared here; ``None`` for all
    :param medical_dtk: the medical TAC root, or ``None``
    :param test_keys: the file holds TEST KEYS (its flag, its comment or a known key)
    :param source: the file, for messages
    """

    transit_dtk: bytes | None
    transit_issuers: frozenset[str] | None
    medical_dtk: bytes | None
    test_keys: bool
    source: str

    def transit_root(self, issuer: str) -> bytes | None:
        """The root a transit card of ``issuer`` hangs from, ``None`` for an unknown issuer.

        :param issuer: the 16-hex issuer id of EF 0015
        :raises: nothing
        """
        if self.transit_dtk is None:
            return None
        if self.transit_issuers is not None and issuer not in self.transit_issuers:
            return None
        return self.transit_dtk

    def refuse_in_production(self) -> None:
        """Refuse TEST roots (``platform serve --production``).

        :raises PlatformConfigError: the file holds test keys
        """
        if self.test_keys:
            raise PlatformConfigError(
                f"{self.source} holds TEST KEY payment roots: a production platform refuses them"
            )


def load_payment_roots(folder: str | Path) -> PaymentRoots | None:
    """Read ``payment-roots.toml`` of a keys folder, ``None`` when there is none.

    :param folder: the keys folder
    :raises PlatformConfigError: a file others can read, not TOML, or off its format
    """
    path = Path(folder) / PAYMENT_ROOTS
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PlatformConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PlatformConfigError(
            f"{path} has mode {stat.S_IMODE(mode):04o}; keys must be 0600 (chmod 600 {path})"
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlatformConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_payment_roots(data, str(path), marked=marked_test_key(raw))


def parse_payment_roots(data: dict[str, Any], source: str, *, marked: bool = False) -> PaymentRoots:
    """Check a parsed ``payment-roots.toml``.

    :param data: the TOML document
    :param source: where it came from, for messages
    :param marked: the file carries a ``# TEST KEY`` comment
    :raises PlatformConfigError: unknown tables or keys, malformed values
    """
    unknown = sorted(set(data) - {"test_keys", *_TABLES})
    if unknown:
        raise PlatformConfigError(f"{source}: unknown keys {unknown}")
    flag = data.get("test_keys", False)
    if not isinstance(flag, bool):
        raise PlatformConfigError(f"{source}: test_keys must be true or false")
    keys: dict[str, bytes | None] = {}
    issuers: frozenset[str] | None = None
    for name, allowed in _TABLES.items():
        table = data.get(name)
        if table is None:
            keys[name] = None
            continue
        if not isinstance(table, dict) or not {"dtk"} <= set(table) <= allowed:
            extra = " and optionally issuers" if name == "transit" else ""
            raise PlatformConfigError(f"{source}: [{name}] holds dtk{extra}")
        keys[name] = _key(table["dtk"], f"{source} [{name}] dtk")
        if "issuers" in table:
            listed = table["issuers"]
            if not isinstance(listed, list) or not all(
                isinstance(i, str) and _ISSUER.fullmatch(i) for i in listed
            ):
                raise PlatformConfigError(
                    f"{source}: [transit] issuers must be a list of 16 upper-case hex digits"
                )
            issuers = frozenset(listed)
    known = any(key is not None and known_test_key(key) for key in keys.values())
    return PaymentRoots(
        transit_dtk=keys["transit"],
        transit_issuers=issuers,
        medical_dtk=keys["medical"],
        test_keys=flag or marked or known,
        source=source,
    )


def _key(value: object, where: str) -> bytes:
    try:
        key = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        key = b""
    if len(key) != KEY_LEN:
        raise PlatformConfigError(f"{where} must be {2 * KEY_LEN} hex digits")
    return key


def payment_roots_of_test_keys(test_roots: Path) -> bytes:
    """The ``payment-roots.toml`` of the public TEST roots (``platform init --test-keys``):
    the ``[transit] dtk`` and ``[des] dtk`` of ``test-roots.toml``.

    :param test_roots: ``drivers/virtual/test_keys/test-roots.toml``
    :raises PlatformConfigError: the file cannot be read or lacks those roots
    """
    try:
        data = tomllib.loads(test_roots.read_text(encoding="utf-8"))
        transit, medical = data["transit"]["dtk"], data["des"]["dtk"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise PlatformConfigError(f"no TAC test roots in {test_roots}: {exc}") from None
    return (
        "# TEST KEYS — the public TAC roots of drivers/virtual/test_keys/test-roots.toml, for\n"
        "# tests and development only: platform serve --production refuses them.\n"
        "test_keys = true\n\n"
        f'[transit]\ndtk = "{transit}"\n\n[medical]\ndtk = "{medical}"\n'
    ).encode()
