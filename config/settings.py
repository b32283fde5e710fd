"""The terminal settings file (TOML), checked into frozen dataclasses.

Where the file comes from (:func:`load_settings`): the path given, else the environment
variable ``SSCARD_CONFIG``, else ``/etc/sscard/terminal.toml`` if it exists, else the defaults.

Schema (every key is optional)::

    production = false                        # true: a production terminal (no software SAM)

    [terminal]
    device_number = ""                        # 终端设备号, §4.3 field 11: ≤ 32 chars, no "|"
    id = "T0001"                              # this terminal's id in the journal and at sync

    [security]
    hsm_url = "https://hsm.example/"          # the HSM service (spec §3.7), http or https
    hsm_timeout_s = 5.0                       # connect and read timeout, seconds, > 0
    soft_sam_keys = "/etc/sscard/roots.toml"  # root-key file of the software SAM
    hsm_token_file = "/etc/sscard/hsm.token"  # 0600 file: the HSM service's bearer token

    [store]
    database = "/var/lib/sscard/store.db"     # the offline store (SQLite)
    pepper_file = "/etc/sscard/pepper"        # 0600: the deny-list pepper from the platform
    journal_key_file = "/etc/sscard/journal.key"  # 0600: AES-256 key of personal fields
    journal_cap_rows = 1000000                # above this the journal raises an alarm
    deny_public_key = "/etc/sscard/deny.pem"  # Ed25519 key deny lists are signed with

    [ecard]
    trust_root_key = "/etc/sscard/qr-root.pem"  # the pinned key trust lists are signed with
    audience_keys = "/etc/sscard/audience.keys" # 0600: "kid = 64 hex" lines (hotel, hospital)
    decode_url = "https://platform.example/"    # online decoding of national (opaque) codes
    decode_timeout_s = 2.0

    [sync]
    url = "https://platform.example/"         # the one-card platform (docs/sync.md), http or https
    key_file = "/etc/sscard/sync.key"         # 0600: this terminal's 32-byte key, 64 hex
    key_id = "k1"                             # the key's id at the platform
    region = "440100"                         # 6-digit region code the catalogue is fetched for
    batch_rows = 2000                         # journal rows per upload request, 1..5000
    timeout_s = 10.0                          # connect and read timeout of each request, > 0
    max_clock_offset_s = 120.0                # a local clock off by more raises an alarm
    pinned_cert_sha256 = "ab12…"              # optional: SHA-256 of the server certificate (DER)
    ca_file = "/etc/sscard/platform-ca.pem"   # optional: the CA the server certificate chains to

    [indicators]
    console = true                            # print each decision on stderr
    serial_port = "/dev/ttyUSB0"              # relay/buzzer/gate board (docs/indicator-protocol.md)
    serial_baud = 9600
    voice = false                             # spoken prompts (espeak-ng or the profile's files)

Relative paths are taken relative to the settings file's folder. Unknown keys and
values of the wrong type are refused with a :class:`SettingsError` that names the file, the
dotted key and what was expected.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apdu.errors import SscardError

ENV_CONFIG = "SSCARD_CONFIG"
DEFAULT_PATH = Path("/etc/sscard/terminal.toml")
DEFAULTS_SOURCE = "<defaults>"
DEVICE_NUMBER_MAX = 32  # §4.3 field 11 shares the 1024-byte output; 32 is our own bound
FIELD_SEPARATOR = "|"  # §4.3: every output field ends with "|", so none may contain one
DEFAULT_HSM_TIMEOUT_S = 5.0
DEFAULT_DECODE_TIMEOUT_S = 2.0
DEFAULT_DATABASE = Path("/var/lib/sscard/store.db")
DEFAULT_JOURNAL_CAP_ROWS = 1_000_000
DEFAULT_SYNC_BATCH_ROWS = 2000
MAX_SYNC_BATCH_ROWS = 5000  # docs/sync.md: a batch holds at most 5000 rows
DEFAULT_SYNC_TIMEOUT_S = 10.0
DEFAULT_MAX_CLOCK_OFFSET_S = 120.0
KEY_ID_MAX = 64
TERMINAL_ID_MAX = 32
URL_SCHEMES = ("http", "https")


class SettingsError(SscardError):
    """A settings file that cannot be read, does not parse, or breaks the schema."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The terminal settings, flattened: the file's tables are namespaces, not objects.

    :param production: a production terminal: development aids such as the software SAM refuse
    :param device_number: ``[terminal] device_number``, 终端设备号 (spec §4.3 field 11), empty
        when the terminal has none
    :param hsm_url: ``[security] hsm_url``, the HSM service (spec §3.7), or ``None``
    :param hsm_timeout_s: ``[security] hsm_timeout_s``, the HSM client's connect and read
        timeout in seconds
    :param soft_sam_keys: ``[security] soft_sam_keys``, the software SAM's root-key file, or
        ``None``
    :param hsm_token_file: ``[security] hsm_token_file``, a 0600 file holding the bearer token
        the HSM service asks for, or ``None``
    :param terminal_id: ``[terminal] id``, this terminal's id in the journal
    :param database: ``[store] database``, the offline store's SQLite file
    :param pepper_file: ``[store] pepper_file``, the deny-list pepper (0600)
    :param journal_key_file: ``[store] journal_key_file``, the personal-field key (0600)
    :param journal_cap_rows: ``[store] journal_cap_rows``, the journal's alarm threshold
    :param deny_public_key: ``[store] deny_public_key``, the deny-list signing key (PEM)
    :param trust_root_key: ``[ecard] trust_root_key``, the pinned trust-list root (PEM)
    :param audience_keys: ``[ecard] audience_keys``, identity-blob keys of this terminal (0600)
    :param decode_url: ``[ecard] decode_url``, the platform decoding national codes
    :param decode_timeout_s: ``[ecard] decode_timeout_s``
    :param sync_url: ``[sync] url``, the platform's base URL, or ``None`` (no sync)
    :param sync_key_file: ``[sync] key_file``, the terminal's request-signing key (0600)
    :param sync_key_id: ``[sync] key_id``, the id of that key at the platform
    :param sync_region: ``[sync] region``, the 6-digit region code the catalogue is fetched for
    :param sync_batch_rows: ``[sync] batch_rows``, journal rows per upload request
    :param sync_timeout_s: ``[sync] timeout_s``, connect and read timeout of each request
    :param max_clock_offset_s: ``[sync] max_clock_offset_s``, the clock offset that raises an
        alarm
    :param pinned_cert_sha256: ``[sync] pinned_cert_sha256``, the SHA-256 of the platform's
        certificate (DER), lowercase hex, or ``None``
    :param sync_ca_file: ``[sync] ca_file``, the CA file the platform's certificate is checked
        against, or ``None`` (the system's CAs)
    :param console: ``[indicators] console``, print decisions on stderr
    :param serial_port: ``[indicators] serial_port``, the relay/buzzer/gate board
    :param serial_baud: ``[indicators] serial_baud``
    :param voice: ``[indicators] voice``, spoken prompts
    :param source: the file the settings came from, or ``<defaults>``
    """

    production: bool = False
    device_number: str = ""
    hsm_url: str | None = None
    hsm_timeout_s: float = DEFAULT_HSM_TIMEOUT_S
    soft_sam_keys: Path | None = None
    hsm_token_file: Path | None = None
    terminal_id: str = "T0000"
    database: Path = DEFAULT_DATABASE
    pepper_file: Path | None = None
    journal_key_file: Path | None = None
    journal_cap_rows: int = DEFAULT_JOURNAL_CAP_ROWS
    deny_public_key: Path | None = None
    trust_root_key: Path | None = None
    audience_keys: Path | None = None
    decode_url: str | None = None
    decode_timeout_s: float = DEFAULT_DECODE_TIMEOUT_S
    sync_url: str | None = None
    sync_key_file: Path | None = None
    sync_key_id: str = ""
    sync_region: str | None = None
    sync_batch_rows: int = DEFAULT_SYNC_BATCH_ROWS
    sync_timeout_s: float = DEFAULT_SYNC_TIMEOUT_S
    max_clock_offset_s: float = DEFAULT_MAX_CLOCK_OFFSET_S
    pinned_cert_sha256: str | None = None
    sync_ca_file: Path | None = None
    console: bool = True
    serial_port: str | None = None
    serial_baud: int = 9600
    voice: bool = False
    source: str = DEFAULTS_SOURCE


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the terminal settings.

    :param path: the settings file; ``None`` looks at ``$SSCARD_CONFIG``, then
        ``/etc/sscard/terminal.toml``, and falls back to the defaults when neither is there
    :raises SettingsError: a named file that is missing, unreadable, not TOML or off-schema
    """
    if path is None:
        from_env = os.environ.get(ENV_CONFIG)
        if from_env:
            path = from_env
        elif DEFAULT_PATH.is_file():
            path = DEFAULT_PATH
        else:
            return Settings()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    return parse_settings(data, source=str(path), base_dir=path.parent)


def parse_settings(
    data: Mapping[str, Any], source: str = DEFAULTS_SOURCE, base_dir: Path | None = None
) -> Settings:
    """Check a parsed settings document and build the settings.

    :param data: the TOML document as a mapping
    :param source: where it came from, named in every error
    :param base_dir: the folder relative paths are taken from; ``None`` keeps them as written
    :raises SettingsError: for an unknown key, a value of the wrong type or out of range
    """
    reader = _Reader(source)
    tables = {"production", "terminal", "security", "store", "ecard", "sync", "indicators"}
    reader.known(data, "", tables)
    terminal = reader.table(data, "terminal")
    reader.known(terminal, "terminal", {"device_number", "id"})
    store = reader.table(data, "store")
    store_keys = {"database", "pepper_file", "journal_key_file", "journal_cap_rows"}
    reader.known(store, "store", store_keys | {"deny_public_key"})
    ecard = reader.table(data, "ecard")
    ecard_keys = {"trust_root_key", "audience_keys", "decode_url", "decode_timeout_s"}
    reader.known(ecard, "ecard", ecard_keys)
    sync = reader.table(data, "sync")
    sync_keys = {"url", "key_file", "key_id", "region", "batch_rows", "timeout_s"}
    reader.known(sync, "sync", sync_keys | {"max_clock_offset_s", "pinned_cert_sha256", "ca_file"})
    indicators = reader.table(data, "indicators")
    reader.known(indicators, "indicators", {"console", "serial_port", "serial_baud", "voice"})
    security = reader.table(data, "security")
    reader.known(
        security, "security", {"hsm_url", "hsm_timeout_s", "hsm_token_file", "soft_sam_keys"}
    )
    keys = _relative(reader.path(security, "security.soft_sam_keys"), base_dir)
    token = _relative(reader.path(security, "security.hsm_token_file"), base_dir)
    return Settings(
        production=reader.boolean(data, "production", default=False),
        device_number=reader.device_number(terminal),
        hsm_url=reader.url(security, "security.hsm_url"),
        hsm_timeout_s=reader.positive(security, "security.hsm_timeout_s", DEFAULT_HSM_TIMEOUT_S),
        soft_sam_keys=keys,
        hsm_token_file=token,
        terminal_id=reader.terminal_id(terminal),
        database=_relative(reader.path(store, "store.database"), base_dir) or DEFAULT_DATABASE,
        pepper_file=_relative(reader.path(store, "store.pepper_file"), base_dir),
        journal_key_file=_relative(reader.path(store, "store.journal_key_file"), base_dir),
        journal_cap_rows=reader.count(store, "store.journal_cap_rows", DEFAULT_JOURNAL_CAP_ROWS),
        deny_public_key=_relative(reader.path(store, "store.deny_public_key"), base_dir),
        trust_root_key=_relative(reader.path(ecard, "ecard.trust_root_key"), base_dir),
        audience_keys=_relative(reader.path(ecard, "ecard.audience_keys"), base_dir),
        decode_url=reader.url(ecard, "ecard.decode_url"),
        decode_timeout_s=reader.positive(ecard, "ecard.decode_timeout_s", DEFAULT_DECODE_TIMEOUT_S),
        sync_url=reader.url(sync, "sync.url"),
        sync_key_file=_relative(reader.path(sync, "sync.key_file"), base_dir),
        sync_key_id=reader.key_id(sync),
        sync_region=reader.region(sync),
        sync_batch_rows=reader.batch_rows(sync),
        sync_timeout_s=reader.positive(sync, "sync.timeout_s", DEFAULT_SYNC_TIMEOUT_S),
        max_clock_offset_s=reader.positive(
            sync, "sync.max_clock_offset_s", DEFAULT_MAX_CLOCK_OFFSET_S
        ),
        pinned_cert_sha256=reader.fingerprint(sync),
        sync_ca_file=_relative(reader.path(sync, "sync.ca_file"), base_dir),
        console=reader.boolean(indicators, "indicators.console", default=True),
        serial_port=_optional_text(reader.path(indicators, "indicators.serial_port")),
        serial_baud=reader.count(indicators, "indicators.serial_baud", 9600),
        voice=reader.boolean(indicators, "indicators.voice", default=False),
        source=source,
    )


class _Reader:
    """Typed look-ups that raise :class:`SettingsError` naming the file and the dotted key.

    :param source: the settings file, for messages
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, dotted: str, expected: str, value: object) -> SettingsError:
        """Build the error for one key.

        :param dotted: the dotted key, e.g. ``security.hsm_url``
        :param expected: what the key takes
        :param value: what the file holds
        """
        return SettingsError(
            f"{self.source}: {dotted}: expected {expected}, got {_describe(value)}"
        )

    def known(self, table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        """Refuse keys the schema does not have.

        :param table: the table
        :param prefix: its dotted name, ``""`` for the top level
        :param allowed: the keys it may hold
        :raises SettingsError: for the first unknown key
        """
        for name in sorted(set(table) - allowed):
            dotted = f"{prefix}.{name}" if prefix else name
            raise SettingsError(
                f"{self.source}: unknown key {dotted!r}; expected one of {sorted(allowed)}"
            )

    def table(self, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        """Return a sub-table, empty when absent.

        :param data: the enclosing table
        :param name: the table's key
        :raises SettingsError: when the key holds something other than a table
        """
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.fail(name, f"a table [{name}]", value)
        return value

    def boolean(self, data: Mapping[str, Any], dotted: str, *, default: bool) -> bool:
        """Return a boolean key.

        :param data: the table holding the key
        :param dotted: the dotted key (its last part is the key in ``data``)
        :param default: the value when absent
        :raises SettingsError: for anything but ``true`` or ``false``
        """
        value = data.get(_leaf(dotted), default)
        if not isinstance(value, bool):
            raise self.fail(dotted, "true or false", value)
        return value

    def device_number(self, terminal: Mapping[str, Any]) -> str:
        """Return ``terminal.device_number``.

        :param terminal: the ``[terminal]`` table
        :raises SettingsError: not a string, too long, or holding ``|``
        """
        dotted = "terminal.device_number"
        value = terminal.get("device_number", "")
        expected = f"a string of at most {DEVICE_NUMBER_MAX} characters without '|'"
        if not isinstance(value, str) or len(value) > DEVICE_NUMBER_MAX or FIELD_SEPARATOR in value:
            raise self.fail(dotted, expected, value)
        return value

    def url(self, data: Mapping[str, Any], dotted: str) -> str | None:
        """Return an optional http or https URL.

        :param data: the table holding the key
        :param dotted: the dotted key
        :raises SettingsError: not a string, or not an http(s) URL with a host
        """
        value = data.get(_leaf(dotted))
        if value is None:
            return None
        expected = "an http:// or https:// URL with a host"
        if not isinstance(value, str):
            raise self.fail(dotted, expected, value)
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0  # .port raises on a bad port
        except ValueError:
            raise self.fail(dotted, expected, value) from None
        if parts.scheme not in URL_SCHEMES or not parts.hostname or not port_ok:
            raise self.fail(dotted, expected, value)
        return value

    def positive(self, data: Mapping[str, Any], dotted: str, default: float) -> float:
        """Return a finite number greater than zero.

        :param data: the table holding the key
        :param dotted: the dotted key
        :param default: the value when absent
        :raises SettingsError: not a number, not finite, or not above zero
        """
        value = data.get(_leaf(dotted), default)
        expected = "a number of seconds greater than 0"
        # bool is an int subclass: `true` is no timeout
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(dotted, expected, value)
        if not math.isfinite(value) or value <= 0:
            raise self.fail(dotted, expected, value)
        return float(value)

    def terminal_id(self, terminal: Mapping[str, Any]) -> str:
        """Return ``terminal.id``.

        :param terminal: the ``[terminal]`` table
        :raises SettingsError: not 1–32 letters, digits, ``-`` or ``_``
        """
        value = terminal.get("id", "T0000")
        ok = isinstance(value, str) and 0 < len(value) <= TERMINAL_ID_MAX
        if not ok or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
            raise self.fail("terminal.id", "1-32 letters, digits, '-' or '_'", value)
        return value

    def count(self, data: Mapping[str, Any], dotted: str, default: int) -> int:
        """Return a positive integer key.

        :param data: the table holding the key
        :param dotted: the dotted key
        :param default: the value when absent
        :raises SettingsError: not an integer, or not above zero
        """
        value = data.get(_leaf(dotted), default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(dotted, "a whole number above 0", value)
        return value

    def key_id(self, sync: Mapping[str, Any]) -> str:
        """Return ``sync.key_id``, empty when absent.

        :param sync: the ``[sync]`` table
        :raises SettingsError: not 1–64 letters, digits, ``.``, ``-`` or ``_``
        """
        value = sync.get("key_id", "")
        if value == "":
            return ""
        ok = isinstance(value, str) and len(value) <= KEY_ID_MAX
        if not ok or not all(c.isascii() and (c.isalnum() or c in ".-_") for c in value):
            raise self.fail("sync.key_id", "1-64 letters, digits, '.', '-' or '_'", value)
        return value

    def region(self, sync: Mapping[str, Any]) -> str | None:
        """Return ``sync.region``, a six-digit region code (GB/T 2260), or ``None``.

        :param sync: the ``[sync]`` table
        :raises SettingsError: not a string of six ASCII digits
        """
        value = sync.get("region")
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or len(value) != 6
            or not (value.isascii() and value.isdigit())
        ):
            raise self.fail("sync.region", "a string of 6 digits (GB/T 2260)", value)
        return value

    def batch_rows(self, sync: Mapping[str, Any]) -> int:
        """Return ``sync.batch_rows``.

        :param sync: the ``[sync]`` table
        :raises SettingsError: not a whole number from 1 to 5000
        """
        value = self.count(sync, "sync.batch_rows", DEFAULT_SYNC_BATCH_ROWS)
        if value > MAX_SYNC_BATCH_ROWS:
            raise self.fail(
                "sync.batch_rows", f"a whole number from 1 to {MAX_SYNC_BATCH_ROWS}", value
            )
        return value

    def fingerprint(self, sync: Mapping[str, Any]) -> str | None:
        """Return ``sync.pinned_cert_sha256`` as 64 lowercase hex digits, or ``None``.

        Colons between byte pairs (as ``openssl x509 -fingerprint -sha256`` prints them) and
        capitals are accepted.

        :param sync: the ``[sync]`` table
        :raises SettingsError: not a SHA-256 digest in hex
        """
        value = sync.get("pinned_cert_sha256")
        if value is None:
            return None
        expected = "the certificate's SHA-256 as 64 hex digits"
        if not isinstance(value, str):
            raise self.fail("sync.pinned_cert_sha256", expected, value)
        digits = value.replace(":", "").lower()
        if len(digits) != 64 or not all(c in "0123456789abcdef" for c in digits):
            raise self.fail("sync.pinned_cert_sha256", expected, value)
        return digits

    def path(self, data: Mapping[str, Any], dotted: str) -> Path | None:
        """Return an optional file path.

        :param data: the table holding the key
        :param dotted: the dotted key
        :raises SettingsError: not a non-empty string
        """
        value = data.get(_leaf(dotted))
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(dotted, "a file path", value)
        return Path(value)


def _optional_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _relative(path: Path | None, base_dir: Path | None) -> Path | None:
    """Take a relative path from the settings file's folder."""
    if path is not None and base_dir is not None and not path.is_absolute():
        return base_dir / path
    return path


def _leaf(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def _describe(value: object) -> str:
    """Name a value for an error message: its TOML type and, for scalars, the value."""
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"
