"""``sscard init``: a development terminal that works at once (its reference platform holding
the terminal, the keys the platform hands out already in place), every file 0600 and folder
0700, nothing overwritten; a production template that refuses to start until the platform's
keys are there, and refuses TEST KEYS."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tomllib
from pathlib import Path

import pytest
from support import run_sscard

from apdu.errors import SscardError
from config.settings import load_settings
from offline_store import Store, load_key_file, load_pepper_file
from platform_server import Platform
from sync.config import load_terminal_key
from terminal.configuration import (
    check_ready,
    init_development,
    init_production,
    production_problems,
)

pytestmark = pytest.mark.emulated


def modes(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in [folder, *folder.rglob("*")]
    }


def test_a_development_terminal_is_written_0600_and_registered(tmp_path: Path) -> None:
    folder = tmp_path / "term"
    done = run_sscard("init", "--scenario", "gate", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"development terminal written to {folder / 'terminal.toml'}" in done.stdout
    assert f"sscard tap --config {folder / 'terminal.toml'} --scenario gate" in done.stdout
    found = modes(folder)
    for name, mode in found.items():
        is_dir = (folder / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    for name in ("terminal.toml", "store.db", "pepper", "journal.key", "sync.key", "deny.pem"):
        assert name in found
    settings = load_settings(folder / "terminal.toml")
    assert not settings.production and settings.terminal_id == "DEV-0001"
    assert settings.sync_url == "http://127.0.0.1:8480/" and settings.sync_region == "440100"
    assert settings.admin_socket_path == folder / "admin.sock"
    # every key loads with the loaders the terminal uses, and the store opens with them
    pepper = load_pepper_file(settings.pepper_file)
    key = load_key_file(settings.journal_key_file)
    with Store.open(settings.database, pepper=pepper, journal_key=key) as store:
        assert store.journal.backlog().last_seq == 0
    sync_key = load_terminal_key(settings.sync_key_file)
    # the platform knows the terminal by that key and serves the gate catalogue
    platform_db = f"sqlite:///{folder / 'platform' / 'platform.db'}"
    with Platform.open(platform_db, folder / "platform" / "keys") as platform:
        (info,) = platform.list_terminals("DEV-0001")
        assert info.scenarios == ("gate",)
        catalogue = platform.catalogue_for("440100")
        codes = {item["code"] for item in json.loads(catalogue.body)["items"]}
        assert {"0301", "0501", "0601", "0201"} <= codes and catalogue.items == 8
    assert len(sync_key) == 32


def test_an_existing_configuration_is_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "term"
    assert run_sscard("init", str(folder)).returncode == 0
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    again = run_sscard("init", str(folder))
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.count("\n") == 1
    assert "holds a terminal configuration already (terminal.toml" in again.stderr
    assert "refusing to overwrite it" in again.stderr
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    # one file of a configuration is enough to refuse, production or not
    other = tmp_path / "other"
    other.mkdir()
    (other / "journal.key").write_text("mine\n")
    refused = run_sscard("init", "--production", str(other))
    assert refused.returncode == 2 and "(journal.key)" in refused.stderr
    assert (other / "journal.key").read_text() == "mine\n"
    assert sorted(p.name for p in other.iterdir()) == ["journal.key"]


def test_a_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    done = run_sscard("init", str(tmp_path / "f"))
    assert done.returncode == 2 and "exists and is not a folder" in done.stderr


def test_an_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    done = run_sscard("init", "--scenario", "casino", str(tmp_path / "t"))
    assert done.returncode == 2 and "invalid choice: 'casino'" in done.stderr
    assert not (tmp_path / "t").exists()


def test_the_production_template_refuses_to_start_until_keys_are_there(tmp_path: Path) -> None:
    folder = tmp_path / "prod"
    done = run_sscard("init", "--production", str(folder))
    assert done.returncode == 0, done.stderr
    assert "production template written" in done.stdout
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("store.db")) == [
        "journal.key",
        "terminal.toml",
    ]
    assert all(mode in (0o600, 0o700) for mode in modes(folder).values())
    config = folder / "terminal.toml"
    settings = load_settings(config)
    assert settings.production
    problems = production_problems(settings)
    assert problems[0] == "[sync] url is not set (the platform's https:// address)"
    missing_key = f"[sync] key_file {folder / 'sync.key'} does not exist"
    assert any(p.startswith(missing_key) for p in problems)
    assert any(p.startswith("[store] pepper_file") for p in problems)
    assert not any("journal_key_file" in p for p in problems)  # init wrote a real one
    # sscard tap refuses at once, naming what is missing, before any reader is looked at
    tap = run_sscard("tap", "--scenario", "transit", "--config", str(config))
    assert tap.returncode == 2 and tap.stdout == ""
    assert "this production terminal cannot start: [sync] url is not set" in tap.stderr
    assert "sync.key does not exist" in tap.stderr


def test_production_refuses_test_keys_and_open_modes(tmp_path: Path) -> None:
    dev = init_development(tmp_path / "dev")
    prod = init_production(tmp_path / "prod")
    # the keys a development platform hands out are the public TEST KEYS
    for name in ("sync.key", "pepper", "deny.pem", "qr-root.pem"):
        shutil.copy2(dev.folder / name, prod.folder / name)
    text = prod.settings.read_text()
    text = text.replace('# url = "https://platform.example/"', 'url = "https://platform.example/"')
    prod.settings.write_text(text.replace('key_id = ""', 'key_id = "k1"'))
    os.chmod(prod.folder / "pepper", 0o644)
    problems = production_problems(load_settings(prod.settings))
    assert any("[ecard] trust_root_key" in p and "public TEST KEY" in p for p in problems)
    assert any("[store] pepper_file" in p and "has mode 0644" in p for p in problems)
    with pytest.raises(SscardError, match="cannot start"):
        check_ready(load_settings(prod.settings))
    # a development terminal is never held back
    assert production_problems(load_settings(dev.settings)) == []
    check_ready(load_settings(dev.settings))


def test_the_settings_written_are_relative_to_their_folder(tmp_path: Path) -> None:
    result = init_development(tmp_path / "a", platform_url="http://127.0.0.1:9999/")
    moved = tmp_path / "b"
    result.folder.rename(moved)
    settings = load_settings(moved / "terminal.toml")
    assert settings.database == moved / "store.db" and settings.sync_url.endswith(":9999/")
    document = tomllib.loads((moved / "terminal.toml").read_text())
    assert document["store"]["pepper_file"] == "pepper"
