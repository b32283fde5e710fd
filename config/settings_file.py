"""The tables of the terminal settings file: one pydantic model per TOML table, and the checks
of their values.

:mod:`config.settings` reads the file with these models and flattens it into
:class:`config.settings.Settings`; the file's schema is documented there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, TypeGuard

from pydantic import Field, PlainValidator, field_validator

from config.schema import (
    CONTROL,
    FilePath,
    PathText,
    Table,
    Url,
    expected,
    flag,
    matching,
    seconds,
    table,
    whole,
)

DEVICE_NUMBER_MAX = 32  # §4.3 field 11 shares the 1024-byte output; 32 is our own bound
FIELD_SEPARATOR = "|"  # §4.3: every output field ends with "|", so none may contain one
DEFAULT_HSM_TIMEOUT_S = 5.0
MAX_HSM_TIMEOUT_S = 60.0  # a tap waits on the HSM; a minute is already far past useful
DEFAULT_DECODE_TIMEOUT_S = 2.0
MAX_DECODE_TIMEOUT_S = 60.0  # a holder waits at the gate while the platform decodes
DEFAULT_DATABASE = Path("/var/lib/sscard/store.db")
ADMIN_SOCKET_NAME = "admin.sock"  # the daemon's operator socket, next to the store by default
DEFAULT_JOURNAL_CAP_ROWS = 1_000_000
MAX_JOURNAL_CAP_ROWS = 1_000_000_000  # 10⁹ rows is hundreds of GB: a larger cap never rings
DEFAULT_SYNC_BATCH_ROWS = 2000
MAX_SYNC_BATCH_ROWS = 5000  # docs/sync.md: a batch holds at most 5000 rows
DEFAULT_SYNC_TIMEOUT_S = 10.0
MAX_SYNC_TIMEOUT_S = 300.0  # one request of 5000 rows over a slow uplink; beyond, it is stuck
DEFAULT_MAX_CLOCK_OFFSET_S = 120.0
MAX_CLOCK_OFFSET_S = 300.0  # docs/sync.md §2: off by more, requests fail; alarm before that
DEFAULT_SERIAL_BAUD = 9600
MIN_SERIAL_BAUD = 50  # the lowest and highest of pyserial's standard rates
MAX_SERIAL_BAUD = 4_000_000
# the complaint hotlines (Guangdong draft §21, Guangzhou §29, Jiangxi §5): every one is spoken
# after each refusal, so a few at most; a number is dialled, an area code may lead ("0791-12345")
MAX_HOTLINES = 3
HOTLINE_NUMBER = re.compile(r"[0-9]{3,12}(?:-[0-9]{3,12})?")
HOTLINE_PURPOSE_MAX = 40
KEY_ID_MAX = 64
READER_NAME_MAX = 128  # PC/SC reader names are at most 128 characters (MAX_READERNAME)
BACKEND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
DEFAULT_READER_BACKEND = "pcsc"
DEFAULT_SCENARIO = "transit"
DEFAULT_SYNC_INTERVAL_S = 300.0
MAX_SYNC_INTERVAL_S = 86_400.0  # a day: lists older than that are stale for every profile
MAX_READERS = 8  # one thread each; a validator has one or two, a desk a handful
MAX_SCANNERS = 4
SCANNER = re.compile(r"(serial:[^\x00-\x1f\x7f@]{1,4096}(@[0-9]{2,7})?|camera:[0-9]{1,2}|stdin)")
MAX_PORT = 65535
TERMINAL_ID_MAX = 32
DEFAULT_TEAR_WINDOW_S = 300.0
MAX_TEAR_WINDOW_S = 86_400.0  # a rider who returns the next day is recovered by the platform
DEFAULT_HOST_BIND = "127.0.0.1"
DEFAULT_HOST_PORT = 8321  # where the vendors' local reading services listen (issue 14)
DEFAULT_PIN_ATTEMPTS = 5
MAX_PIN_ATTEMPTS = 60  # per client and minute; a card blocks after 3 wrong PINs anyway
MAX_ORIGINS = 16
# a browser origin: scheme, host, optional port; nothing after (Origin headers carry no path)
ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:]{2,39}\](:[0-9]{1,5})?"
)


HotlineNumber = Annotated[
    str,
    PlainValidator(
        matching(
            HOTLINE_NUMBER, '3-12 digits, optionally an area code and "-" first ("0791-12345")'
        )
    ),
]


PURPOSE = f"what the line is for: 1-{HOTLINE_PURPOSE_MAX} characters, no control characters"


def _purpose(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > HOTLINE_PURPOSE_MAX
        or CONTROL.search(value)
    ):
        raise expected(PURPOSE)
    return value


class HotlineEntry(Table):
    """One complaint hotline of ``[service_point] hotlines``.

    :param number: what to dial, e.g. ``12333``
    :param purpose_zh: what the line is for, e.g. ``人社服务热线``
    :param purpose_en: the same in English
    """

    number: HotlineNumber = Field(description='3-12 digits, optionally an area code and "-" first')
    purpose_zh: Annotated[str, PlainValidator(_purpose)] = Field(description=PURPOSE)
    purpose_en: Annotated[str, PlainValidator(_purpose)] = Field(description=PURPOSE)


#: 12333 for social security, 12345 for government services (Guangdong draft §21)
DEFAULT_HOTLINES: tuple[HotlineEntry, ...] = (
    HotlineEntry(number="12333", purpose_zh="人社服务热线", purpose_en="social security hotline"),
    HotlineEntry(
        number="12345", purpose_zh="政务服务便民热线", purpose_en="government service hotline"
    ),
)


def _device_number(value: object) -> str:
    if (
        not isinstance(value, str)
        or len(value) > DEVICE_NUMBER_MAX
        or FIELD_SEPARATOR in value
        or CONTROL.search(value)
    ):
        raise expected(
            f"a string of at most {DEVICE_NUMBER_MAX} characters without '|' or control characters"
        )
    return value


def _name(value: object, most: int, extra: str) -> bool:
    """1 to ``most`` ASCII letters, digits or characters of ``extra``."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= most
        and all(c.isascii() and (c.isalnum() or c in extra) for c in value)
    )


def _terminal_id(value: object) -> str:
    if not _name(value, TERMINAL_ID_MAX, "-_"):
        raise expected(f"1-{TERMINAL_ID_MAX} letters, digits, '-' or '_'")
    return str(value)


def _within_reader_name(value: object) -> TypeGuard[str]:
    """Whether a value could be (part of) a PC/SC reader name: a string of at most
    :data:`READER_NAME_MAX` characters without control characters (it may be empty)."""
    return isinstance(value, str) and len(value) <= READER_NAME_MAX and not CONTROL.search(value)


def _reader_name(value: object) -> str:
    if not _within_reader_name(value) or not value:
        raise expected(
            f"a reader name (or part of one) of 1-{READER_NAME_MAX} characters"
            " without control characters"
        )
    return value


BackendName = Annotated[
    str, PlainValidator(matching(BACKEND_NAME, "a back-end name such as 'pcsc' or 'virtual'"))
]


def _key_id(value: object) -> str:
    if value != "" and not _name(value, KEY_ID_MAX, ".-_"):
        raise expected(f"1-{KEY_ID_MAX} letters, digits, '.', '-' or '_'")
    return str(value)


def _region(value: object) -> str:
    if not isinstance(value, str) or len(value) != 6 or not (value.isascii() and value.isdigit()):
        raise expected("a string of 6 digits (GB/T 2260)")
    return value


def _fingerprint(value: object) -> str:
    """The SHA-256 as 64 lowercase hex digits; colons between byte pairs (as ``openssl x509
    -fingerprint -sha256`` prints them) and capitals are accepted."""
    what = "the certificate's SHA-256 as 64 hex digits"
    if not isinstance(value, str):
        raise expected(what)
    digits = value.replace(":", "").lower()
    if len(digits) != 64 or not all(c in "0123456789abcdef" for c in digits):
        raise expected(what)
    return digits


class TerminalTable(Table):
    """``[terminal]``.

    :param device_number: 终端设备号 (spec §4.3 field 11)
    :param id: this terminal's id in the journal and at sync
    :param reader: the card reader's name or a unique part of it; absent: any reader
    :param reader_backend: the reader back-end (``pcsc``, ``virtual``)
    :param virtual_card: the ``virtual`` reader's card: a demo persona or a persona file
    """

    device_number: Annotated[str, PlainValidator(_device_number)] = ""
    id: Annotated[str, PlainValidator(_terminal_id)] = "T0000"
    reader: Annotated[str, PlainValidator(_reader_name)] | None = None
    reader_backend: BackendName = DEFAULT_READER_BACKEND
    virtual_card: PathText | None = None


class SecurityTable(Table):
    """``[security]``: the security module.

    :param hsm_url: the HSM service (spec §3.7)
    :param hsm_timeout_s: the HSM client's connect and read timeout
    :param soft_sam_keys: the software SAM's root-key file
    :param hsm_token_file: the HSM service's bearer token (0600)
    """

    hsm_url: Url | None = None
    hsm_timeout_s: float = seconds(DEFAULT_HSM_TIMEOUT_S, MAX_HSM_TIMEOUT_S)
    soft_sam_keys: FilePath | None = None
    hsm_token_file: FilePath | None = None


class StoreTable(Table):
    """``[store]``: the offline store.

    :param database: the SQLite file
    :param pepper_file: the deny-list pepper (0600)
    :param journal_key_file: the personal-field key (0600)
    :param journal_cap_rows: the journal's alarm threshold
    :param deny_public_key: the deny-list signing key (PEM)
    """

    database: FilePath = DEFAULT_DATABASE
    pepper_file: FilePath | None = None
    journal_key_file: FilePath | None = None
    journal_cap_rows: int = whole(DEFAULT_JOURNAL_CAP_ROWS, 1, MAX_JOURNAL_CAP_ROWS)
    deny_public_key: FilePath | None = None


class EcardTable(Table):
    """``[ecard]``: electronic-card codes.

    :param trust_root_key: the pinned trust-list root (PEM)
    :param audience_keys: identity-blob keys of this terminal (0600)
    :param decode_url: the platform decoding national codes
    :param decode_timeout_s: how long a decode request may take
    """

    trust_root_key: FilePath | None = None
    audience_keys: FilePath | None = None
    decode_url: Url | None = None
    decode_timeout_s: float = seconds(DEFAULT_DECODE_TIMEOUT_S, MAX_DECODE_TIMEOUT_S)


class SyncTable(Table):
    """``[sync]``: the one-card platform (docs/sync.md).

    :param url: the platform's base URL
    :param key_file: the terminal's request-signing key (0600)
    :param key_id: the id of that key at the platform
    :param region: the region code the catalogue is fetched for
    :param batch_rows: journal rows per upload request
    :param timeout_s: connect and read timeout of each request
    :param max_clock_offset_s: the clock offset that raises an alarm
    :param pinned_cert_sha256: the SHA-256 of the platform's certificate (DER)
    :param ca_file: the CA the platform's certificate chains to
    """

    url: Url | None = None
    key_file: FilePath | None = None
    key_id: Annotated[str, PlainValidator(_key_id)] = ""
    region: Annotated[str, PlainValidator(_region)] | None = None
    batch_rows: int = whole(DEFAULT_SYNC_BATCH_ROWS, 1, MAX_SYNC_BATCH_ROWS)
    timeout_s: float = seconds(DEFAULT_SYNC_TIMEOUT_S, MAX_SYNC_TIMEOUT_S)
    max_clock_offset_s: float = seconds(DEFAULT_MAX_CLOCK_OFFSET_S, MAX_CLOCK_OFFSET_S)
    pinned_cert_sha256: Annotated[str, PlainValidator(_fingerprint)] | None = None
    ca_file: FilePath | None = None


class IndicatorsTable(Table):
    """``[indicators]``.

    :param console: print decisions on stderr
    :param serial_port: the relay/buzzer/gate board's device
    :param serial_baud: its line speed
    :param voice: spoken prompts; absent (``None``): on wherever there is a sound output
    """

    console: bool = flag(True)
    serial_port: PathText | None = None
    serial_baud: int = whole(DEFAULT_SERIAL_BAUD, MIN_SERIAL_BAUD, MAX_SERIAL_BAUD)
    voice: bool | None = Field(None, description="true or false")


class ServicePointTable(Table):
    """``[service_point]``: the duties of a service point (docs/service-point.md).

    :param hotlines: the complaint hotlines announced with every refusal, in order
    """

    hotlines: list[HotlineEntry] = Field(
        default_factory=lambda: list(DEFAULT_HOTLINES),
        min_length=1,
        max_length=MAX_HOTLINES,
        description=f"a list of 1 to {MAX_HOTLINES} hotlines",
    )

    @field_validator("hotlines")
    @classmethod
    def _different_numbers(cls, value: list[HotlineEntry]) -> list[HotlineEntry]:
        if len({entry.number for entry in value}) != len(value):
            raise expected("hotlines with different numbers")
        return value


def _daemon_reader_name(value: object) -> str:
    if not _within_reader_name(value) or not value.strip():
        raise expected(f"a reader name of 1-{READER_NAME_MAX} characters")
    return value


ScannerSpec = Annotated[
    str,
    PlainValidator(matching(SCANNER, '"serial:PORT", "serial:PORT@BAUD", "camera:N" or "stdin"')),
]


def _interval(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_SYNC_INTERVAL_S
    ):
        raise expected(f"seconds from 0 (no sync) to {MAX_SYNC_INTERVAL_S:g}")
    return float(value)


ReaderName = Annotated[str, PlainValidator(_daemon_reader_name)]


class DaemonTable(Table):
    """``[daemon]``: what ``sscard run`` watches and serves.

    :param scenario: the profile it decides for (a built-in name or a file)
    :param readers: the card readers (names or unique parts); empty: every reader but the PSAM's
    :param sam_reader: the reader holding the PSAM
    :param scanners: the code scanners
    :param sync_interval_s: seconds between syncs, 0 for none
    :param metrics_port: the loopback port of the Prometheus metrics, 0 for none
    :param metrics_file: a file the metrics are also written to
    :param admin_socket: the operator socket (0600) the daemon answers operator commands on
    """

    scenario: PathText = DEFAULT_SCENARIO
    readers: list[ReaderName] = Field(
        default_factory=list, max_length=MAX_READERS, description="a list of reader names"
    )
    sam_reader: ReaderName | None = None
    scanners: list[ScannerSpec] = Field(
        default_factory=list, max_length=MAX_SCANNERS, description="a list of scanners"
    )
    sync_interval_s: Annotated[float, PlainValidator(_interval)] = DEFAULT_SYNC_INTERVAL_S
    metrics_port: int = whole(0, 0, MAX_PORT)
    metrics_file: FilePath | None = None
    admin_socket: FilePath | None = None


class PaymentsTable(Table):
    """``[payments]``: taking fares and settlements (issue 15, docs/payments.md).

    :param psam_reader: the reader holding the transit PSAM
    :param soft_sam_keys: the software transit SAM's key file (development and tests only: a
        production terminal refuses it)
    :param tear_window_s: how long a torn purchase waits for its card to come back to this
        terminal; after it, the card pays afresh and the torn row is left to the platform
    """

    psam_reader: ReaderName | None = None
    soft_sam_keys: FilePath | None = None
    tear_window_s: float = seconds(DEFAULT_TEAR_WINDOW_S, MAX_TEAR_WINDOW_S)


Origin = Annotated[
    str,
    PlainValidator(
        matching(
            ORIGIN, 'a browser origin such as "https://his.example" or "http://127.0.0.1:8080"'
        )
    ),
]


def _bind(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 253 or CONTROL.search(value):
        raise expected("an address to bind, such as 127.0.0.1")
    return value


class HostTable(Table):
    """``[host]``: the host API the daemon serves to front-desk software (docs/host-api.md).

    :param enabled: serve it from ``sscard run``
    :param bind: the address to bind (loopback by default)
    :param port: the port
    :param origins: the browser origins allowed to call it (the console's own always are)
    :param token_file: a 0600 file holding the bearer token (required off loopback)
    :param tls_cert: the TLS certificate (PEM; required off loopback)
    :param tls_key: its private key (PEM)
    :param pin_attempts_per_minute: PIN verifications allowed per client and minute
    """

    enabled: bool = flag(False)
    bind: Annotated[str, PlainValidator(_bind)] = DEFAULT_HOST_BIND
    port: int = whole(DEFAULT_HOST_PORT, 1, MAX_PORT)
    origins: list[Origin] = Field(
        default_factory=list, max_length=MAX_ORIGINS, description="a list of browser origins"
    )
    token_file: FilePath | None = None
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = None
    pin_attempts_per_minute: int = whole(DEFAULT_PIN_ATTEMPTS, 1, MAX_PIN_ATTEMPTS)


class SettingsFile(Table):
    """The settings file, table by table (see the module docstring).

    :param production: a production terminal
    :param terminal: ``[terminal]``
    :param security: ``[security]``
    :param store: ``[store]``
    :param ecard: ``[ecard]``
    :param sync: ``[sync]``
    :param indicators: ``[indicators]``
    :param service_point: ``[service_point]``
    :param daemon: ``[daemon]``
    :param payments: ``[payments]``
    :param host: ``[host]``
    """

    production: bool = flag(False)
    terminal: TerminalTable = table(TerminalTable, "terminal")
    security: SecurityTable = table(SecurityTable, "security")
    store: StoreTable = table(StoreTable, "store")
    ecard: EcardTable = table(EcardTable, "ecard")
    sync: SyncTable = table(SyncTable, "sync")
    indicators: IndicatorsTable = table(IndicatorsTable, "indicators")
    service_point: ServicePointTable = table(ServicePointTable, "service_point")
    daemon: DaemonTable = table(DaemonTable, "daemon")
    payments: PaymentsTable = table(PaymentsTable, "payments")
    host: HostTable = table(HostTable, "host")
