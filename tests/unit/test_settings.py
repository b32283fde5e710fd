"""Unit tests for config.settings: the schema, its errors, and where the file comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apdu.errors import SscardError
from config import settings as settings_module
from config.settings import Settings, SettingsError, load_settings, parse_settings

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


def test_settings_error_is_an_sscard_error() -> None:
    assert issubclass(SettingsError, SscardError)


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
        ({"store": {"journal_cap_rows": 0}}, "store.journal_cap_rows", "a whole number above 0"),
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
    assert settings.trust_root_key == Path("/etc/sscard/qr-root.pem")
    assert settings.audience_keys == Path("/etc/sscard/audience.keys")
    assert (settings.decode_url, settings.decode_timeout_s) == ("https://platform.example/", 1.5)
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
        ({"sync": {"batch_rows": 0}}, "sync.batch_rows", "a whole number above 0"),
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
