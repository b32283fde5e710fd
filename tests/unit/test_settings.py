"""Unit tests for config.settings: the schema, its errors, and where the file comes from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from apdu.errors import SscardError
from apdu.national import NationalCode
from config import settings as settings_module
from config.errors import ConfigError
from config.settings import Settings, SettingsError, load_settings, parse_settings
from config.settings_file import EcardTable
from terminal.outcomes import classify, error_line

SOURCE = "/etc/sscard/terminal.toml"


def fails(data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_settings(data, source=SOURCE)
    return str(caught.value)


def test_an_empty_document_gives_the_defaults() -> None:
    settings = parse_settings({})
    assert settings == Settings()
    assert settings.production is False
    assert settings.device_number == ""
    assert settings.hsm_url is None
    assert settings.hsm_timeout_s == 5.0
    assert settings.soft_sam_keys is None
    assert settings.source == "<defaults>"


def test_every_key_is_read() -> None:
    settings = parse_settings(
        {
            "production": True,
            "terminal": {"device_number": "HDOS10011"},
            "security": {
                "hsm_url": "https://hsm.example:8470/base",
                "hsm_timeout_s": 2,
                "soft_sam_keys": "/etc/sscard/roots.toml",
                "hsm_token_file": "/etc/sscard/hsm.token",
            },
        },
        source=SOURCE,
    )
    assert settings == Settings(
        production=True,
        device_number="HDOS10011",
        hsm_url="https://hsm.example:8470/base",
        hsm_timeout_s=2.0,
        soft_sam_keys=Path("/etc/sscard/roots.toml"),
        hsm_token_file=Path("/etc/sscard/hsm.token"),
        source=SOURCE,
    )
    assert isinstance(settings.hsm_timeout_s, float)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.production = True  # type: ignore[misc]


def test_settings_error_is_a_config_error_answered_like_an_sscard_error() -> None:
    """config/ has its own error root (it imports nothing of the project); the outcome table
    and the CLI's edge answer it as they answer an SscardError without a national code."""
    assert issubclass(SettingsError, ConfigError)
    assert not issubclass(SettingsError, SscardError)
    exc = SettingsError("/etc/sscard/terminal.toml: store.database: expected a file path")
    assert error_line(exc) == f"sscard: {exc}"
    assert classify(exc).code == NationalCode.COMMAND_NOT_SUPPORTED


@pytest.mark.parametrize(
    ("data", "dotted"),
    [
        ({"prodution": True}, "'prodution'"),
        ({"terminal": {"device": "x"}}, "'terminal.device'"),
        ({"security": {"hsm_uri": "http://x"}}, "'security.hsm_uri'"),
        ({"psam": {}}, "'psam'"),
    ],
)
def test_unknown_keys_are_refused_by_their_dotted_name(data: dict[str, Any], dotted: str) -> None:
    message = fails(data)
    assert SOURCE in message
    assert f"unknown key {dotted}" in message


@pytest.mark.parametrize(
    ("data", "dotted", "expected"),
    [
        ({"production": "yes"}, "production", "true or false"),
        ({"production": 1}, "production", "true or false"),
        ({"terminal": "T1"}, "terminal", "a table"),
        ({"security": []}, "security", "a table"),
        ({"terminal": {"device_number": 12345}}, "terminal.device_number", "a string"),
        ({"terminal": {"device_number": "A|B"}}, "terminal.device_number", "without '|'"),
        ({"terminal": {"device_number": "X" * 33}}, "terminal.device_number", "at most 32"),
        ({"security": {"hsm_url": 8470}}, "security.hsm_url", "http:// or https:// URL"),
        ({"security": {"hsm_url": "ftp://hsm"}}, "security.hsm_url", "http:// or https:// URL"),
        ({"security": {"hsm_url": "hsm.example"}}, "security.hsm_url", "http:// or https://"),
        ({"security": {"hsm_url": "http://"}}, "security.hsm_url", "with a host"),
        ({"security": {"hsm_url": "http://h:99999"}}, "security.hsm_url", "URL"),
        ({"security": {"hsm_url": ""}}, "security.hsm_url", "URL"),
        ({"security": {"hsm_timeout_s": 0}}, "security.hsm_timeout_s", "greater than 0"),
        ({"security": {"hsm_timeout_s": -1.5}}, "security.hsm_timeout_s", "greater than 0"),
        ({"security": {"hsm_timeout_s": "5"}}, "security.hsm_timeout_s", "a number"),
        ({"security": {"hsm_timeout_s": True}}, "security.hsm_timeout_s", "a number"),
        ({"security": {"hsm_timeout_s": float("inf")}}, "security.hsm_timeout_s", "a number"),
        ({"security": {"hsm_timeout_s": float("nan")}}, "security.hsm_timeout_s", "a number"),
        ({"security": {"soft_sam_keys": 3}}, "security.soft_sam_keys", "a file path"),
        ({"security": {"soft_sam_keys": ""}}, "security.soft_sam_keys", "a file path"),
    ],
)
def test_wrong_values_name_the_file_the_key_and_what_was_expected(
    data: dict[str, Any], dotted: str, expected: str
) -> None:
    message = fails(data)
    assert message.startswith(f"{SOURCE}: {dotted}: expected ")
    assert expected in message


def test_the_device_number_may_be_32_characters() -> None:
    assert parse_settings({"terminal": {"device_number": "X" * 32}}).device_number == "X" * 32


def test_an_http_url_is_accepted() -> None:
    url = "http://127.0.0.1:8470"
    assert parse_settings({"security": {"hsm_url": url}}).hsm_url == url


def test_a_relative_key_path_is_taken_from_the_settings_folder() -> None:
    data = {"security": {"soft_sam_keys": "keys/roots.toml"}}
    assert parse_settings(data, base_dir=Path("/etc/sscard")).soft_sam_keys == Path(
        "/etc/sscard/keys/roots.toml"
    )
    assert parse_settings(data).soft_sam_keys == Path("keys/roots.toml")


def test_load_reads_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "terminal.toml"
    path.write_text(
        "production = false\n"
        "[terminal]\n"
        'device_number = "终端-01"\n'
        "[security]\n"
        'hsm_url = "http://127.0.0.1:8470"\n'
        "hsm_timeout_s = 1.5\n"
        'soft_sam_keys = "roots.toml"\n',
        encoding="utf-8",
    )
    settings = load_settings(path)
    assert settings.device_number == "终端-01"
    assert settings.hsm_url == "http://127.0.0.1:8470"
    assert settings.hsm_timeout_s == 1.5
    assert settings.soft_sam_keys == tmp_path / "roots.toml"
    assert settings.source == str(path)


def test_load_names_the_file_of_a_toml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "terminal.toml"
    path.write_text("production = \n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_load_refuses_a_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "absent.toml")


def test_without_a_path_the_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.toml"
    path.write_text("production = true\n", encoding="utf-8")
    monkeypatch.setenv("SSCARD_CONFIG", str(path))
    assert load_settings(None).production is True


def test_without_a_path_or_variable_the_system_file_is_used_if_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSCARD_CONFIG", raising=False)
    system = tmp_path / "terminal.toml"
    monkeypatch.setattr(settings_module, "DEFAULT_PATH", system)
    assert load_settings(None) == Settings()  # absent: the defaults
    system.write_text('[terminal]\ndevice_number = "D1"\n', encoding="utf-8")
    assert load_settings(None).device_number == "D1"


def test_the_store_and_indicator_tables() -> None:
    settings = parse_settings(
        {
            "terminal": {"id": "BUS-0007"},
            "store": {
                "database": "store.db",
                "pepper_file": "pepper",
                "journal_key_file": "/etc/sscard/journal.key",
                "journal_cap_rows": 5000,
                "deny_public_key": "deny.pem",
            },
            "indicators": {"console": False, "serial_port": "/dev/ttyUSB0", "voice": True},
        },
        base_dir=Path("/etc/sscard"),
    )
    assert settings.terminal_id == "BUS-0007"
    assert settings.database == Path("/etc/sscard/store.db")
    assert settings.pepper_file == Path("/etc/sscard/pepper")
    assert settings.journal_key_file == Path("/etc/sscard/journal.key")
    assert settings.deny_public_key == Path("/etc/sscard/deny.pem")
    assert settings.journal_cap_rows == 5000
    assert (settings.console, settings.serial_port, settings.serial_baud, settings.voice) == (
        False,
        "/dev/ttyUSB0",
        9600,
        True,
    )


@pytest.mark.parametrize(
    ("data", "dotted", "expected"),
    [
        ({"terminal": {"id": "bus 7"}}, "terminal.id", "1-32 letters"),
        ({"terminal": {"id": ""}}, "terminal.id", "1-32 letters"),
        ({"store": {"journal_cap_rows": 0}}, "store.journal_cap_rows", "a whole number from 1"),
        ({"store": {"journal_cap_rows": True}}, "store.journal_cap_rows", "a whole number"),
        ({"indicators": {"serial_baud": "9600"}}, "indicators.serial_baud", "a whole number"),
        ({"indicators": {"voice": 1}}, "indicators.voice", "true or false"),
    ],
)
def test_wrong_store_and_indicator_values(data: dict, dotted: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=rf"{SOURCE}: {dotted}: expected {expected}"):
        parse_settings(data, source=SOURCE)


def test_unknown_keys_in_the_new_tables() -> None:
    with pytest.raises(SettingsError, match=r"unknown key 'store\.path'"):
        parse_settings({"store": {"path": "x"}}, source=SOURCE)
    with pytest.raises(SettingsError, match=r"unknown key 'indicators\.buzzer'"):
        parse_settings({"indicators": {"buzzer": True}}, source=SOURCE)


def test_the_ecard_table() -> None:
    settings = parse_settings(
        {
            "ecard": {
                "trust_root_key": "qr-root.pem",
                "audience_keys": "/etc/sscard/audience.keys",
                "decode_url": "https://platform.example/",
                "decode_timeout_s": 1.5,
            }
        },
        base_dir=Path("/etc/sscard"),
    )
    ecard = settings.ecard
    assert ecard.trust_root_key == Path("/etc/sscard/qr-root.pem")
    assert ecard.audience_keys == Path("/etc/sscard/audience.keys")
    assert (ecard.decode_url, ecard.decode_timeout_s) == ("https://platform.example/", 1.5)
    with pytest.raises(SettingsError, match=r"ecard\.decode_url"):
        parse_settings({"ecard": {"decode_url": "ftp://x"}}, source=SOURCE)
    with pytest.raises(SettingsError, match=r"unknown key 'ecard\.url'"):
        parse_settings({"ecard": {"url": "https://x/"}}, source=SOURCE)


def test_the_sync_table() -> None:
    settings = parse_settings(
        {
            "terminal": {"id": "440100-T0001"},
            "sync": {
                "url": "https://platform.example/",
                "key_file": "sync.key",
                "key_id": "k1",
                "region": "440100",
                "batch_rows": 5000,
                "timeout_s": 3,
                "max_clock_offset_s": 30.5,
                "pinned_cert_sha256": "AB:" * 31 + "AB",
                "ca_file": "/etc/sscard/platform-ca.pem",
            },
        },
        base_dir=Path("/etc/sscard"),
    )
    assert settings.sync_url == "https://platform.example/"
    assert settings.sync_key_file == Path("/etc/sscard/sync.key")
    assert (settings.sync_key_id, settings.sync_region) == ("k1", "440100")
    assert (settings.sync_batch_rows, settings.sync_timeout_s) == (5000, 3.0)
    assert settings.max_clock_offset_s == 30.5
    assert settings.pinned_cert_sha256 == "ab" * 32
    assert settings.sync_ca_file == Path("/etc/sscard/platform-ca.pem")


def test_the_sync_table_defaults() -> None:
    settings = parse_settings({})
    assert settings.sync_url is None and settings.sync_key_file is None
    assert (settings.sync_key_id, settings.sync_region) == ("", None)
    assert (settings.sync_batch_rows, settings.sync_timeout_s) == (2000, 10.0)
    assert settings.max_clock_offset_s == 120.0
    assert settings.pinned_cert_sha256 is None and settings.sync_ca_file is None


@pytest.mark.parametrize(
    ("data", "dotted", "expected"),
    [
        ({"sync": {"url": "ftp://platform"}}, "sync.url", "an http:// or https:// URL"),
        ({"sync": {"key_id": "k 1"}}, "sync.key_id", "1-64 letters"),
        ({"sync": {"key_id": 7}}, "sync.key_id", "1-64 letters"),
        ({"sync": {"region": "4401"}}, "sync.region", "a string of 6 digits"),
        ({"sync": {"region": 440100}}, "sync.region", "a string of 6 digits"),
        ({"sync": {"batch_rows": 0}}, "sync.batch_rows", "a whole number from 1 to 5000"),
        ({"sync": {"batch_rows": 5001}}, "sync.batch_rows", "a whole number from 1 to 5000"),
        ({"sync": {"timeout_s": 0}}, "sync.timeout_s", "a number of seconds greater than 0"),
        ({"sync": {"max_clock_offset_s": True}}, "sync.max_clock_offset_s", "a number"),
        ({"sync": {"pinned_cert_sha256": "ab" * 31}}, "sync.pinned_cert_sha256", "the cert"),
        ({"sync": {"pinned_cert_sha256": "zz" * 32}}, "sync.pinned_cert_sha256", "the cert"),
        ({"sync": {"ca_file": ""}}, "sync.ca_file", "a file path"),
    ],
)
def test_wrong_sync_values(data: dict, dotted: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=rf"{SOURCE}: {dotted}: expected {expected}"):
        parse_settings(data, source=SOURCE)


def test_unknown_keys_in_the_sync_table() -> None:
    with pytest.raises(SettingsError, match=r"unknown key 'sync\.interval'"):
        parse_settings({"sync": {"interval": 60}}, source=SOURCE)
    with pytest.raises(SettingsError, match=r"expected a table \[sync\]"):
        parse_settings({"sync": "https://platform.example/"}, source=SOURCE)


# --- issue 10 finding 9: every setting typed and bounded, every error naming file and key ---

#: every numeric setting: (table, key, smallest taken, largest taken, what is refused below)
NUMBERS = [
    ("security", "hsm_timeout_s", 1e-3, 60, 0),
    ("ecard", "decode_timeout_s", 1e-3, 60, 0),
    ("sync", "timeout_s", 1e-3, 300, 0),
    ("sync", "max_clock_offset_s", 1e-3, 300, 0),
    ("sync", "batch_rows", 1, 5000, 0),
    ("store", "journal_cap_rows", 1, 10**9, 0),
    ("indicators", "serial_baud", 50, 4_000_000, 49),
    ("daemon", "sync_interval_s", 0.0, 86_400, -1),
    ("daemon", "metrics_port", 0, 65535, -1),
    ("payments", "tear_window_s", 1e-3, 86_400, 0),
    ("host", "port", 1, 65535, 0),
    ("host", "pin_attempts_per_minute", 1, 60, 0),
]
#: every string setting, with a value it takes
STRINGS = [
    ("terminal", "device_number", "HDOS10011"),
    ("terminal", "id", "BUS-0007"),
    ("terminal", "reader", "ACS ACR1252"),
    ("terminal", "reader_backend", "pcsc"),
    ("terminal", "virtual_card", "ordinary-3.0"),
    ("security", "hsm_url", "https://hsm.example:8470/"),
    ("security", "soft_sam_keys", "roots.toml"),
    ("security", "hsm_token_file", "hsm.token"),
    ("store", "database", "store.db"),
    ("store", "pepper_file", "pepper"),
    ("store", "journal_key_file", "journal.key"),
    ("store", "deny_public_key", "deny.pem"),
    ("ecard", "trust_root_key", "qr-root.pem"),
    ("ecard", "audience_keys", "audience.keys"),
    ("ecard", "decode_url", "https://platform.example/"),
    ("sync", "url", "https://platform.example/"),
    ("sync", "key_file", "sync.key"),
    ("sync", "key_id", "k1"),
    ("sync", "region", "440100"),
    ("sync", "pinned_cert_sha256", "ab" * 32),
    ("sync", "ca_file", "platform-ca.pem"),
    ("daemon", "admin_socket", "admin.sock"),
    ("indicators", "serial_port", "/dev/ttyUSB0"),
    ("daemon", "scenario", "transit"),
    ("daemon", "sam_reader", "Virtual PCD 00 01"),
    ("daemon", "metrics_file", "metrics.prom"),
    ("payments", "psam_reader", "Virtual PCD 00 01"),
    ("payments", "soft_sam_keys", "test-roots.toml"),
    ("host", "bind", "127.0.0.1"),
    ("host", "token_file", "host.token"),
    ("host", "tls_cert", "host.crt"),
    ("host", "tls_key", "host.key"),
]
FLAGS = [
    ("", "production"),
    ("indicators", "console"),
    ("indicators", "voice"),
    ("host", "enabled"),
]
#: keys that hold an array of tables (checked in their own tests)
ARRAYS = [
    ("service_point", "hotlines"),
    ("daemon", "readers"),
    ("daemon", "scanners"),
    ("host", "origins"),
]


def _doc(table: str, key: str, value: object) -> dict[str, Any]:
    return {key: value} if not table else {table: {key: value}}


def test_the_tables_above_cover_every_key_of_the_schema() -> None:
    from config.settings import SettingsFile

    keys = {f"{t}.{k}" for t, k, *_ in NUMBERS + STRINGS} | {f"{t}.{k}" for t, k in FLAGS}
    keys |= {f"{t}.{k}" for t, k in ARRAYS}
    schema = set()
    for name, field in SettingsFile.model_fields.items():
        inner = getattr(field.annotation, "model_fields", None)
        schema |= {f"{name}.{key}" for key in inner} if inner else {f".{name}"}
    assert schema == keys


@pytest.mark.parametrize(("table", "key", "least", "most", "below"), NUMBERS)
def test_every_number_takes_its_bounds(
    table: str, key: str, least: float, most: float, below: float
) -> None:
    for value in (least, most):
        settings = parse_settings(_doc(table, key, value))
        fields = [getattr(settings, name) for name in Settings.__slots__]
        kept_whole = [vars(item).values() for item in fields if isinstance(item, EcardTable)]
        assert value in {*fields, *(inner for values in kept_whole for inner in values)}


@pytest.mark.parametrize(("table", "key", "least", "most", "below"), NUMBERS)
def test_every_number_refuses_values_out_of_range_naming_file_key_and_range(
    table: str, key: str, least: float, most: float, below: float
) -> None:
    whole_number = isinstance(least, int)
    above = most + 1 if whole_number else most * 1.001
    wrong = [below, -1, above, 10**400 if whole_number else 1e300, True, "5"]
    if whole_number:
        wrong += [float(least), float("inf")]
    else:
        wrong += [float("inf"), float("-inf"), float("nan")]
    for value in wrong:
        message = fails(_doc(table, key, value))
        assert message.startswith(f"{SOURCE}: {table}.{key}: expected "), value
        bound = str(most) if whole_number else f"{most:g}"
        assert bound in message.splitlines()[0], value  # the range is stated


def test_a_huge_decode_timeout_is_refused_before_it_overflows_a_socket() -> None:
    message = fails({"ecard": {"decode_timeout_s": 1e300}})
    assert message == (
        f"{SOURCE}: ecard.decode_timeout_s: expected a number of seconds greater than 0 and at "
        "most 60, got float 1e+300"
    )


def test_baud_and_journal_cap_have_an_upper_bound() -> None:
    assert "at most" not in fails({"indicators": {"serial_baud": 4_000_001}})
    assert "from 50 to 4000000" in fails({"indicators": {"serial_baud": 10**12}})
    assert "from 1 to 1000000000" in fails({"store": {"journal_cap_rows": 10**9 + 1}})


@pytest.mark.parametrize(("table", "key", "good"), STRINGS)
@pytest.mark.parametrize("bad", ["\x00", "\n", "\x1b"])
def test_no_string_setting_takes_a_control_character(
    table: str, key: str, good: str, bad: str
) -> None:
    parse_settings(_doc(table, key, good))
    for value in (bad + good, good[:2] + bad + good[2:], good + bad):
        message = fails(_doc(table, key, value))
        assert message.startswith(f"{SOURCE}: {table}.{key}: expected "), repr(value)


def test_a_nul_in_the_database_path_is_refused() -> None:
    message = fails({"store": {"database": "/var/lib/sscard/store.db\x00.bak"}})
    assert message.startswith(f"{SOURCE}: store.database: expected a file path")
    assert "without control characters" in message and r"\x00" in message


@pytest.mark.parametrize(("table", "key", "good"), STRINGS)
def test_no_string_setting_takes_a_number_or_a_table(table: str, key: str, good: str) -> None:
    for value in (7, 7.5, True, {"a": good}, [good]):
        assert fails(_doc(table, key, value)).startswith(f"{SOURCE}: {table}.{key}: expected ")


@pytest.mark.parametrize(("table", "key"), FLAGS)
def test_flags_take_only_true_or_false(table: str, key: str) -> None:
    dotted = f"{table}.{key}" if table else key
    for value in (0, 1, "true", 1.0):
        assert fails(_doc(table, key, value)).startswith(f"{SOURCE}: {dotted}: expected true")


def test_paths_and_urls_have_a_length_bound() -> None:
    assert fails({"store": {"database": "d" * 4097}}).startswith(f"{SOURCE}: store.database:")
    url = "https://platform.example/" + "p" * 2048
    assert fails({"sync": {"url": url}}).startswith(f"{SOURCE}: sync.url:")
    assert fails({"sync": {"url": "https://platform .example/"}}).startswith(f"{SOURCE}: sync.url")


def test_every_problem_is_one_line_naming_the_file_and_its_key() -> None:
    message = fails(
        {
            "store": {"database": "a\x00b", "journal_cap_rows": -5, "path": "x"},
            "sync": {"timeout_s": float("nan")},
            "bogus": 1,
        }
    )
    assert message.splitlines() == [
        f"{SOURCE}: store.database: expected a file path of at most 4096 characters without "
        r"control characters, got str 'a\x00b'",
        f"{SOURCE}: store.journal_cap_rows: expected a whole number from 1 to 1000000000, "
        "got int -5",
        f"{SOURCE}: unknown key 'store.path'; expected one of ['database', 'deny_public_key', "
        "'journal_cap_rows', 'journal_key_file', 'pepper_file']",
        f"{SOURCE}: sync.timeout_s: expected a number of seconds greater than 0 and at most 300, "
        "got float nan",
        f"{SOURCE}: unknown key 'bogus'; expected one of ['daemon', 'ecard', 'host', "
        "'indicators', 'payments', 'production', 'security', 'service_point', 'store', 'sync', "
        "'terminal']",
    ]


def test_a_flood_of_problems_is_cut_short() -> None:
    message = fails({"store": {f"key{i}": i for i in range(500)}})
    lines = message.splitlines()
    assert len(lines) == 11 and lines[-1] == f"{SOURCE}: … and 490 more"


def test_a_long_wrong_value_is_quoted_short() -> None:
    message = fails({"terminal": {"id": "x" * 10_000}})
    assert len(message) < 200 and message.endswith("…")


# --- the file itself: nesting, encoding, syntax, size ---


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "terminal.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content",
    [
        "[store]\njournal_cap_rows = " + "[" * 5000 + "]" * 5000 + "\n",
        "[store]\njournal_cap_rows = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n",
    ],
    ids=["arrays", "inline-tables"],
)
def test_toml_nested_5000_deep_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert str(caught.value) == (
        f"{path}: not valid TOML: arrays or inline tables nested too deeply (at most 16 levels)"
    )


def test_dotted_keys_5000_deep_are_an_error_naming_the_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "store." + ".".join(["a"] * 5000) + " = 1\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert str(caught.value) == f"{path}: store.a.a.a.a.a.a.a.…: nested deeper than 16 levels"


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, b'production = false\n[store]\ndatabase = "st\xffore.db"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert str(caught.value) == f"{path}: not UTF-8 text (line 3, byte 41)"


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[store]\njournal_cap_rows = 5\njournal_cap_rows = 6\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not valid TOML: ") and "line 3" in message


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path, "# padding\n" * 200_000)
    with pytest.raises(SettingsError, match=r"larger than 1048576 bytes"):
        load_settings(path)


def test_a_directory_is_not_a_settings_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=rf"cannot read settings file {tmp_path}: "):
        load_settings(tmp_path)


def test_errors_from_a_file_name_that_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[store]\ndatabase = "a\\u0000b"\njournal_cap_rows = 1e3\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert str(caught.value).splitlines() == [
        f"{path}: store.database: expected a file path of at most 4096 characters without "
        "control characters, got str 'a\\x00b'",
        f"{path}: store.journal_cap_rows: expected a whole number from 1 to 1000000000, "
        "got float 1000.0",
    ]


def test_the_readme_example_is_valid_and_names_every_key() -> None:
    import re
    import tomllib

    from config.settings import SettingsFile

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    parse_settings(tomllib.loads(block), source="README.md")
    uncommented = re.sub(r"^# ", "", block, flags=re.MULTILINE)
    named = parse_settings(tomllib.loads(uncommented.replace("AB:CD:…", "ab" * 32)))
    assert named.pinned_cert_sha256 == "ab" * 32 and named.soft_sam_keys is not None
    for table, field in SettingsFile.model_fields.items():
        keys = getattr(field.annotation, "model_fields", {})
        assert all(re.search(rf"^#? ?{key} = ", block, re.MULTILINE) for key in keys), table


def test_an_unknown_key_with_a_newline_cannot_forge_a_line_of_the_message() -> None:
    message = fails({"store": {"x\nforged": 1}})
    assert "\n" not in message and "unknown key 'store.x\\nforged'" in message


# -- [service_point] and the voice default (docs/service-point.md) -------------------------------


def _hotline(number: str, zh: str = "热线", en: str = "hotline") -> dict[str, str]:
    return {"number": number, "purpose_zh": zh, "purpose_en": en}


def test_the_hotlines_default_to_12333_and_12345_with_what_each_is_for() -> None:
    hotlines = parse_settings({}).hotlines
    assert [(h.number, h.purpose_zh) for h in hotlines] == [
        ("12333", "人社服务热线"),
        ("12345", "政务服务便民热线"),
    ]
    assert Settings().hotlines == hotlines


def test_a_deployment_sets_its_own_hotlines_in_order() -> None:
    data = {
        "service_point": {"hotlines": [_hotline("0791-12345", "南昌市民热线"), _hotline("12333")]}
    }
    hotlines = parse_settings(data).hotlines
    assert isinstance(hotlines, tuple)
    assert [h.number for h in hotlines] == ["0791-12345", "12333"]
    assert hotlines[0].purpose_zh == "南昌市民热线"


@pytest.mark.parametrize(
    ("hotlines", "problem"),
    [
        ([], "service_point.hotlines: expected a list of 1 to 3 hotlines, got an array"),
        ([_hotline(n) for n in ("12333", "12345", "12366", "95598")], "a list of 1 to 3"),
        ([_hotline("12333"), _hotline("12333")], "expected hotlines with different numbers"),
        ("12333", "service_point.hotlines: expected a list of 1 to 3 hotlines, got str"),
        (["12333"], "service_point.hotlines.0: expected a table, got str '12333'"),
        ([_hotline("12")], "service_point.hotlines.0.number: expected 3-12 digits"),
        ([_hotline("12333 ")], "service_point.hotlines.0.number: expected 3-12 digits"),
        ([_hotline("1-2333")], "service_point.hotlines.0.number: expected 3-12 digits"),
        ([{**_hotline("x"), "number": 12333}], "hotlines.0.number: expected 3-12 digits"),
        ([_hotline("12333", "")], "service_point.hotlines.0.purpose_zh: expected what the line"),
        ([_hotline("12333", "热\n线")], "hotlines.0.purpose_zh: expected what the line is for"),
        ([_hotline("12333", en="x" * 41)], "hotlines.0.purpose_en: expected what the line is for"),
        ([{"number": "12333", "purpose_zh": "热线"}], "hotlines.0.purpose_en: missing; expected"),
        (
            [{**_hotline("12333"), "url": "x"}],
            "unknown key 'service_point.hotlines.0.url'; "
            "expected one of ['number', 'purpose_en', 'purpose_zh']",
        ),
    ],
)
def test_a_wrong_hotline_is_named_by_its_place(hotlines: object, problem: str) -> None:
    message = fails({"service_point": {"hotlines": hotlines}})
    assert message.startswith(f"{SOURCE}: ") and len(message.splitlines()) == 1
    assert problem in message, message


def test_voice_left_out_is_none_so_the_sound_output_decides() -> None:
    assert parse_settings({}).voice is None and Settings().voice is None
    assert parse_settings({"indicators": {"voice": False}}).voice is False
    assert parse_settings({"indicators": {"voice": True}}).voice is True


def test_the_card_reader_is_a_name_and_a_back_end() -> None:
    """Issue 12: ``[terminal] reader``, ``reader_backend`` and ``virtual_card``."""
    settings = parse_settings(
        {"terminal": {"reader": "PCD 00", "reader_backend": "virtual", "virtual_card": "elderly"}}
    )
    assert (settings.reader, settings.reader_backend, settings.virtual_card) == (
        "PCD 00",
        "virtual",
        "elderly",
    )
    default = parse_settings({})
    assert (default.reader, default.reader_backend, default.virtual_card) == (None, "pcsc", None)
    message = fails({"terminal": {"reader_backend": "PC/SC"}})
    assert message.startswith(f"{SOURCE}: terminal.reader_backend: expected a back-end name")
    assert fails({"terminal": {"reader": "r" * 129}}).startswith(f"{SOURCE}: terminal.reader:")
    assert fails({"terminal": {"reader": ""}}).startswith(f"{SOURCE}: terminal.reader:")


# --- issue 13: the daemon's table ----------------------------------------------------------------


def test_the_daemon_table_names_readers_and_scanners() -> None:
    settings = parse_settings(
        {"daemon": {"readers": ["Virtual PCD 00 00"], "scanners": ["serial:/dev/ttyACM0@115200",
                    "camera:0", "stdin"], "sam_reader": "Virtual PCD 00 01"}}
    )  # fmt: skip
    assert settings.daemon_readers == ("Virtual PCD 00 00",)
    assert settings.daemon_scanners == ("serial:/dev/ttyACM0@115200", "camera:0", "stdin")
    assert (settings.daemon_scenario, settings.sync_interval_s) == ("transit", 300.0)
    assert settings.metrics_port == 0 and settings.metrics_file is None


@pytest.mark.parametrize(
    ("data", "dotted", "expected"),
    [
        ({"daemon": {"scanners": ["usb:1"]}}, "daemon.scanners.0", '"serial:PORT"'),
        ({"daemon": {"scanners": ["serial:/dev/tty\nX"]}}, "daemon.scanners.0", '"serial:PORT"'),
        ({"daemon": {"scanners": "stdin"}}, "daemon.scanners", "a list of scanners"),
        ({"daemon": {"readers": [""]}}, "daemon.readers.0", "a reader name"),
        ({"daemon": {"readers": ["r"] * 9}}, "daemon.readers", "a list of reader names"),
        ({"daemon": {"readers": ["a\x00b"]}}, "daemon.readers.0", "a reader name"),
    ],
)
def test_wrong_daemon_values(data: dict, dotted: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=rf"{SOURCE}: {dotted}: expected {re.escape(expected)}"):
        parse_settings(data, source=SOURCE)


def test_the_admin_socket_defaults_to_admin_sock_next_to_the_store(tmp_path: Path) -> None:
    config = tmp_path / "terminal.toml"
    config.write_text('[store]\ndatabase = "data/store.db"\n')
    assert load_settings(config).admin_socket_path == tmp_path / "data" / "admin.sock"
    config.write_text('[daemon]\nadmin_socket = "run/sscard.sock"\n')
    assert load_settings(config).admin_socket_path == tmp_path / "run" / "sscard.sock"


def test_host_origins_are_bare_browser_origins() -> None:
    settings = parse_settings({"host": {"origins": ["https://his.example", "http://[::1]:8080"]}})
    assert settings.host_origins == ("https://his.example", "http://[::1]:8080")
    for wrong in ("https://his.example/page", "his.example", "ftp://his.example", "*"):
        with pytest.raises(SettingsError, match=r"host\.origins\.0: expected a browser origin"):
            parse_settings({"host": {"origins": [wrong]}}, source=SOURCE)
