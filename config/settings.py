"""The terminal settings file (TOML), checked against one pydantic schema.

Where the file comes from (:func:`load_settings`): the path given, else the environment
variable ``SSCARD_CONFIG``, else ``/etc/sscard/terminal.toml`` if it exists, else the defaults.

Schema (every key is optional; the README's "Settings" section is the operator's copy)::

    production = false                        # true: a production terminal (no software SAM)

    [terminal]
    device_number = ""                        # 终端设备号, §4.3 field 11: ≤ 32 chars, no "|"
    id = "T0001"                              # this terminal's id: 1-32 of A-Z a-z 0-9 - _
    reader = "ACS ACR1252"                    # the card reader: its name or a unique part of it;
                                              # left out: any reader that gets a card
    reader_backend = "pcsc"                   # pcsc (pyscard) or virtual (an emulated card,
                                              # in-process: development only)
    virtual_card = "ordinary-3.0"             # the virtual reader's card: a demo persona or file

    [security]
    hsm_url = "https://hsm.example/"          # the HSM service (spec §3.7), http or https
    hsm_timeout_s = 5.0                       # connect and read timeout, seconds, (0, 60]
    soft_sam_keys = "/etc/sscard/roots.toml"  # root-key file of the software SAM
    hsm_token_file = "/etc/sscard/hsm.token"  # 0600 file: the HSM service's bearer token

    [store]
    database = "/var/lib/sscard/store.db"     # the offline store (SQLite)
    pepper_file = "/etc/sscard/pepper"        # 0600: the deny-list pepper from the platform
    journal_key_file = "/etc/sscard/journal.key"  # 0600: AES-256 key of personal fields
    journal_cap_rows = 1000000                # above this the journal raises an alarm, 1..10⁹
    deny_public_key = "/etc/sscard/deny.pem"  # Ed25519 key deny lists are signed with

    [ecard]
    trust_root_key = "/etc/sscard/qr-root.pem"  # the pinned key trust lists are signed with
    audience_keys = "/etc/sscard/audience.keys" # 0600: "kid = 64 hex" lines (hotel, hospital)
    decode_url = "https://platform.example/"    # online decoding of national (opaque) codes
    decode_timeout_s = 2.0                      # seconds, (0, 60]: a holder waits at the gate

    [sync]
    url = "https://platform.example/"         # the one-card platform (docs/sync.md), http or https
    key_file = "/etc/sscard/sync.key"         # 0600: this terminal's 32-byte key, 64 hex
    key_id = "k1"                             # the key's id at the platform
    region = "440100"                         # 6-digit region code the catalogue is fetched for
    batch_rows = 2000                         # journal rows per upload request, 1..5000
    timeout_s = 10.0                          # connect and read timeout of a request, (0, 300]
    max_clock_offset_s = 120.0                # a clock off by more raises an alarm, (0, 300]
    pinned_cert_sha256 = "ab12…"              # optional: SHA-256 of the server certificate (DER)
    ca_file = "/etc/sscard/platform-ca.pem"   # optional: the CA the server certificate chains to

    [indicators]
    console = true                            # print each decision on stderr
    serial_port = "/dev/ttyUSB0"              # relay/buzzer/gate board (docs/indicator-protocol.md)
    serial_baud = 9600                        # 50..4000000 (pyserial's standard rates span this)
    voice = true                              # spoken prompts; left out: on wherever the machine
                                              # has a sound output (docs/service-point.md)

    [daemon]                                  # `sscard run` (README "Running the terminal")
    scenario = "transit"                      # the profile the daemon decides for (name or file)
    readers = ["Virtual PCD 00 00"]           # card readers (names or unique parts); default:
                                              # every reader but the PSAM's
    sam_reader = "Virtual PCD 00 01"          # the reader holding the PSAM (the security module)
    scanners = ["serial:/dev/ttyACM0"]        # code scanners: serial:PORT, camera:N, stdin
    sync_interval_s = 300.0                   # seconds between syncs, (0, 86400]; 0 leaves none
    metrics_port = 0                          # Prometheus metrics on 127.0.0.1:PORT; 0 = off
    metrics_file = "/run/sscard/metrics.prom" # also written there after each decision and sync
    admin_socket = "/var/lib/sscard/admin.sock"  # the daemon's operator socket (0600); default:
                                              # admin.sock next to [store] database

    [payments]                                # fares and settlements (docs/payments.md)
    psam_reader = "Virtual PCD 00 01"         # the reader holding the transit PSAM
    soft_sam_keys = "test-roots.toml"         # software transit SAM: development only (a
                                              # production terminal refuses it)
    tear_window_s = 300.0                     # a torn purchase waits this long for its card,
                                              # (0, 86400]
    [host]                                    # the host API served by `sscard run`
    enabled = false                           # true: serve it (docs/host-api.md)
    bind = "127.0.0.1"                        # off loopback: token_file and TLS are required
    port = 8321
    origins = ["https://his.example"]         # browser origins allowed to call it (CORS)
    token_file = "/etc/sscard/host.token"     # 0600: the bearer token clients send
    tls_cert = "/etc/sscard/host.crt"         # TLS for remote use (PEM), with tls_key
    tls_key = "/etc/sscard/host.key"
    pin_attempts_per_minute = 5               # PIN verifications per client and minute, 1..60

    [[service_point.hotlines]]                # said with every refusal: 1 to 3, in file order;
    number = "12333"                          # default: 12333 人社服务热线, 12345 政务服务便民热线
    purpose_zh = "人社服务热线"               # 3-12 digits ("0791-12345" with an area code)
    purpose_en = "social security hotline"    # purposes: 1-40 characters each

Relative paths are taken relative to the settings file's folder. No string may hold a control
character (a NUL cuts a path short in the C library, a newline forges a log line), no number may
be infinite or outside its range (``decode_timeout_s = 1e300`` would overflow the socket layer
at the first request, long after the file was read). Every problem is a :class:`SettingsError`
naming the file, the dotted key and what was expected, one line per problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.errors import ConfigError
from config.schema import problems
from config.settings_file import (
    ADMIN_SOCKET_NAME,
    DEFAULT_DATABASE,
    DEFAULT_HOST_BIND,
    DEFAULT_HOST_PORT,
    DEFAULT_HOTLINES,
    DEFAULT_HSM_TIMEOUT_S,
    DEFAULT_JOURNAL_CAP_ROWS,
    DEFAULT_MAX_CLOCK_OFFSET_S,
    DEFAULT_PIN_ATTEMPTS,
    DEFAULT_READER_BACKEND,
    DEFAULT_SCENARIO,
    DEFAULT_SERIAL_BAUD,
    DEFAULT_SYNC_BATCH_ROWS,
    DEFAULT_SYNC_INTERVAL_S,
    DEFAULT_SYNC_TIMEOUT_S,
    DEFAULT_TEAR_WINDOW_S,
    EcardTable,
    HotlineEntry,
    SettingsFile,
)
from config.tomlfile import read_toml

ENV_CONFIG = "SSCARD_CONFIG"
DEFAULT_PATH = Path("/etc/sscard/terminal.toml")
DEFAULTS_SOURCE = "<defaults>"


class SettingsError(ConfigError):
    """A settings file that cannot be read, does not parse, or breaks the schema."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The terminal settings, flattened from :class:`SettingsFile`: the file's tables are
    namespaces, not objects; but ``[ecard]``, which the e-card code verifier takes whole, is
    kept as its table.

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
    :param reader: ``[terminal] reader``, the card reader's name or a unique part of it, or
        ``None`` for any reader that gets a card
    :param reader_backend: ``[terminal] reader_backend``, the reader back-end
        (:mod:`drivers.readers`: ``pcsc`` or ``virtual``)
    :param virtual_card: ``[terminal] virtual_card``, the card of the ``virtual`` reader: a
        demo persona's name or a persona file, or ``None`` (an empty slot)
    :param database: ``[store] database``, the offline store's SQLite file
    :param pepper_file: ``[store] pepper_file``, the deny-list pepper (0600)
    :param journal_key_file: ``[store] journal_key_file``, the personal-field key (0600)
    :param journal_cap_rows: ``[store] journal_cap_rows``, the journal's alarm threshold
    :param deny_public_key: ``[store] deny_public_key``, the deny-list signing key (PEM)
    :param ecard: ``[ecard]``: the pinned trust-list root, this terminal's audience keys, the
        platform decoding national codes and its timeout
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
    :param voice: ``[indicators] voice``, spoken prompts; ``None`` when the file does not say
        (then they are on wherever the machine has a sound output)
    :param hotlines: ``[service_point] hotlines``, the complaint hotlines announced with every
        refusal, in order
    :param daemon_scenario: ``[daemon] scenario``, the profile ``sscard run`` decides for
    :param daemon_readers: ``[daemon] readers``, the card readers it watches (empty: every
        reader but the PSAM's)
    :param daemon_sam_reader: ``[daemon] sam_reader``, the reader holding the PSAM, or ``None``
    :param daemon_scanners: ``[daemon] scanners``, ``serial:PORT[@BAUD]``, ``camera:N``, ``stdin``
    :param sync_interval_s: ``[daemon] sync_interval_s``, seconds between syncs (0: none)
    :param metrics_port: ``[daemon] metrics_port``, the loopback metrics port (0: off)
    :param metrics_file: ``[daemon] metrics_file``, where the metrics are also written, or
        ``None``
    :param admin_socket: ``[daemon] admin_socket``, the daemon's operator socket, or ``None``
        (then :attr:`admin_socket_path`: ``admin.sock`` next to the store)
    :param payments_psam_reader: ``[payments] psam_reader``, the transit PSAM's reader, or
        ``None``
    :param payments_soft_sam_keys: ``[payments] soft_sam_keys``, the software transit SAM's
        key file (development only), or ``None``
    :param tear_window_s: ``[payments] tear_window_s``, how long a torn purchase waits for its
        card
    :param host_enabled: ``[host] enabled``, ``sscard run`` serves the host API
    :param host_bind: ``[host] bind``, the address it binds
    :param host_port: ``[host] port``
    :param host_origins: ``[host] origins``, the browser origins allowed to call it
    :param host_token_file: ``[host] token_file``, the bearer token's 0600 file, or ``None``
    :param host_tls_cert: ``[host] tls_cert``, the TLS certificate, or ``None``
    :param host_tls_key: ``[host] tls_key``, its key, or ``None``
    :param host_pin_attempts: ``[host] pin_attempts_per_minute``
    :param source: the file the settings came from, or ``<defaults>``
    """

    production: bool = False
    device_number: str = ""
    hsm_url: str | None = None
    hsm_timeout_s: float = DEFAULT_HSM_TIMEOUT_S
    soft_sam_keys: Path | None = None
    hsm_token_file: Path | None = None
    terminal_id: str = "T0000"
    reader: str | None = None
    reader_backend: str = DEFAULT_READER_BACKEND
    virtual_card: str | None = None
    database: Path = DEFAULT_DATABASE
    pepper_file: Path | None = None
    journal_key_file: Path | None = None
    journal_cap_rows: int = DEFAULT_JOURNAL_CAP_ROWS
    deny_public_key: Path | None = None
    ecard: EcardTable = field(default_factory=EcardTable)
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
    serial_baud: int = DEFAULT_SERIAL_BAUD
    voice: bool | None = None
    hotlines: tuple[HotlineEntry, ...] = DEFAULT_HOTLINES
    daemon_scenario: str = DEFAULT_SCENARIO
    daemon_readers: tuple[str, ...] = ()
    daemon_sam_reader: str | None = None
    daemon_scanners: tuple[str, ...] = ()
    sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S
    metrics_port: int = 0
    metrics_file: Path | None = None
    admin_socket: Path | None = None
    payments_psam_reader: str | None = None
    payments_soft_sam_keys: Path | None = None
    tear_window_s: float = DEFAULT_TEAR_WINDOW_S
    host_enabled: bool = False
    host_bind: str = DEFAULT_HOST_BIND
    host_port: int = DEFAULT_HOST_PORT
    host_origins: tuple[str, ...] = ()
    host_token_file: Path | None = None
    host_tls_cert: Path | None = None
    host_tls_key: Path | None = None
    host_pin_attempts: int = DEFAULT_PIN_ATTEMPTS
    source: str = DEFAULTS_SOURCE

    @property
    def admin_socket_path(self) -> Path:
        """The daemon's operator socket: ``[daemon] admin_socket``, else ``admin.sock`` in the
        store's folder."""
        return self.admin_socket or self.database.parent / ADMIN_SOCKET_NAME


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the terminal settings.

    :param path: the settings file; ``None`` looks at ``$SSCARD_CONFIG``, then
        ``/etc/sscard/terminal.toml``, and falls back to the defaults when neither is there
    :raises SettingsError: a named file that is missing, unreadable, not UTF-8, not TOML, nested
        too deeply or off-schema
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
    data = read_toml(path, SettingsError, what="settings file")
    return parse_settings(data, source=str(path), base_dir=path.parent)


def parse_settings(
    data: Mapping[str, Any], source: str = DEFAULTS_SOURCE, base_dir: Path | None = None
) -> Settings:
    """Check a parsed settings document and build the settings.

    :param data: the TOML document as a mapping
    :param source: where it came from, named in every error
    :param base_dir: the folder relative paths are taken from; ``None`` keeps them as written
    :raises SettingsError: for an unknown key, a value of the wrong type or out of range; one
        line per problem, each naming ``source`` and the dotted key
    """
    try:
        document = SettingsFile.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise SettingsError(problems(exc, source, SettingsFile)) from None
    return _flatten(document, source)


def _flatten(document: SettingsFile, source: str) -> Settings:
    """The file's tables are namespaces: the settings the code reads are one flat record."""
    terminal, security, store = document.terminal, document.security, document.store
    ecard, sync, indicators = document.ecard, document.sync, document.indicators
    service_point, daemon = document.service_point, document.daemon
    return Settings(
        production=document.production,
        device_number=terminal.device_number,
        hsm_url=security.hsm_url,
        hsm_timeout_s=security.hsm_timeout_s,
        soft_sam_keys=security.soft_sam_keys,
        hsm_token_file=security.hsm_token_file,
        terminal_id=terminal.id,
        reader=terminal.reader,
        reader_backend=terminal.reader_backend,
        virtual_card=terminal.virtual_card,
        database=store.database,
        pepper_file=store.pepper_file,
        journal_key_file=store.journal_key_file,
        journal_cap_rows=store.journal_cap_rows,
        deny_public_key=store.deny_public_key,
        ecard=ecard,
        sync_url=sync.url,
        sync_key_file=sync.key_file,
        sync_key_id=sync.key_id,
        sync_region=sync.region,
        sync_batch_rows=sync.batch_rows,
        sync_timeout_s=sync.timeout_s,
        max_clock_offset_s=sync.max_clock_offset_s,
        pinned_cert_sha256=sync.pinned_cert_sha256,
        sync_ca_file=sync.ca_file,
        console=indicators.console,
        serial_port=indicators.serial_port,
        serial_baud=indicators.serial_baud,
        voice=indicators.voice,
        hotlines=tuple(service_point.hotlines),
        daemon_scenario=daemon.scenario,
        daemon_readers=tuple(daemon.readers),
        daemon_sam_reader=daemon.sam_reader,
        daemon_scanners=tuple(daemon.scanners),
        sync_interval_s=daemon.sync_interval_s,
        metrics_port=daemon.metrics_port,
        metrics_file=daemon.metrics_file,
        admin_socket=document.daemon.admin_socket,
        payments_psam_reader=document.payments.psam_reader,
        payments_soft_sam_keys=document.payments.soft_sam_keys,
        tear_window_s=document.payments.tear_window_s,
        host_enabled=document.host.enabled,
        host_bind=document.host.bind,
        host_port=document.host.port,
        host_origins=tuple(document.host.origins),
        host_token_file=document.host.token_file,
        host_tls_cert=document.host.tls_cert,
        host_tls_key=document.host.tls_key,
        host_pin_attempts=document.host.pin_attempts_per_minute,
        source=source,
    )
