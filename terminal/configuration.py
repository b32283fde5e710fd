"""A terminal's configuration folder: written by ``sscard init``, checked before a production
terminal starts.

Development (:func:`init_development`) writes a terminal that works at once, against the
reference platform on loopback, with the public TEST KEYS::

    DIR/                    0700
      terminal.toml         0600  the settings; every path relative to DIR
      store.db              0600  the offline store (created empty)
      journal.key           0600  a fresh AES-256 key of the journal's personal fields
      sync.key              0600  the terminal's request-signing key (HMAC-SHA256, docs/sync.md §2)
      soft-sam-roots.toml   0600  the software SAM's root keys: the TEST KEYS of the virtual cards
      pepper, deny.pem,     0600  the secrets the platform hands this terminal (GET /v1/secrets),
      qr-root.pem,                opened and written exactly as ``sscard sync`` does
      audience.keys
      platform/             0700  the reference platform: platform.db and keys/ (TEST KEYS), the
                                  catalogue of every built-in scenario, this terminal registered
                                  in it; ``sscard platform serve`` serves it

Production (:func:`init_production`) writes a template: ``production = true``, a fresh journal
key, and paths for the keys that must come from the real platform. :func:`production_problems`
says what is still missing (``sscard tap`` and ``sscard doctor`` refuse with that list); TEST
KEYS are refused. Nothing existing is ever overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from apdu.errors import SscardError
from config.settings import ADMIN_SOCKET_NAME, Settings
from drivers.virtual import TEST_KEYS
from ecard.testkeys import known_test_key, marked_test_key, public_key_der
from offline_store import Store
from platform_server.cli_support import DEFAULT_PORT, DEFAULT_URL
from sync.provisioning import audience_keys_toml, open_secrets
from terminal.profiles import PROFILE_DIR, load_profile

log = logging.getLogger(__name__)

SETTINGS_NAME = "terminal.toml"
STORE_NAME = "store.db"
JOURNAL_KEY_NAME = "journal.key"
SYNC_KEY_NAME = "sync.key"
PEPPER_NAME = "pepper"
DENY_KEY_NAME = "deny.pem"
TRUST_ROOT_NAME = "qr-root.pem"
AUDIENCE_KEYS_NAME = "audience.keys"
SOFT_SAM_NAME = "soft-sam-roots.toml"
PLATFORM_DIR = "platform"
PLATFORM_DB = "platform.db"
PLATFORM_KEYS = "keys"
CATALOGUE_NAME = "catalogue.toml"
#: every name :func:`init_development` may create: one of them there already refuses the folder
WRITTEN = (
    SETTINGS_NAME,
    STORE_NAME,
    JOURNAL_KEY_NAME,
    SYNC_KEY_NAME,
    PEPPER_NAME,
    DENY_KEY_NAME,
    TRUST_ROOT_NAME,
    AUDIENCE_KEYS_NAME,
    SOFT_SAM_NAME,
    PLATFORM_DIR,
    ADMIN_SOCKET_NAME,
)
DIR_MODE = 0o700
FILE_MODE = 0o600
DEFAULT_TERMINAL_ID = "DEV-0001"
DEFAULT_SCENARIO = "transit"
DEFAULT_REGION = "440100"  # Guangzhou, the region of the demo personas and catalogue
JOURNAL_KEY_LEN = 32
TEST_ROOTS = "test-roots.toml"  # the software SAM's root keys among the TEST KEYS


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``sscard init`` wrote.

    :param folder: the configuration folder
    :param settings: the settings file
    :param production: a production template
    :param platform_db: the reference platform's database (development), else ``None``
    :param platform_keys: its keys folder (development), else ``None``
    :param scenario: the scenario the terminal was set up for
    :param platform_url: where the reference platform is to be served (development)
    """

    folder: Path
    settings: Path
    production: bool
    platform_db: Path | None = None
    platform_keys: Path | None = None
    scenario: str = DEFAULT_SCENARIO
    platform_url: str = DEFAULT_URL


def init_development(
    folder: str | Path,
    *,
    scenario: str = DEFAULT_SCENARIO,
    terminal_id: str = DEFAULT_TERMINAL_ID,
    platform_url: str = DEFAULT_URL,
) -> InitResult:
    """Write a working development terminal and its reference platform (TEST KEYS).

    :param folder: the configuration folder (missing or without any of :data:`WRITTEN`)
    :param scenario: the scenario the terminal serves (registered at the platform)
    :param terminal_id: the terminal's id
    :param platform_url: where the reference platform will be served
    :raises SscardError: the folder holds a configuration already; a bad scenario or id
    :raises OSError: the folder cannot be written
    """
    # the platform (SQLAlchemy, FastAPI) only when a development platform is written: every
    # sscard command imports this module, and the daemon must stay small (issue 16)
    from platform_server import Platform  # noqa: PLC0415 - loads SQLAlchemy and FastAPI

    root = _prepare(folder)
    platform_dir = root / PLATFORM_DIR
    _mkdir(platform_dir)
    platform_db = platform_dir / PLATFORM_DB
    keys = platform_dir / PLATFORM_KEYS
    catalogue = platform_dir / CATALOGUE_NAME
    _create(catalogue, development_catalogue().encode("utf-8"))
    with Platform.init(f"sqlite:///{platform_db}", keys, test_keys=TEST_KEYS) as platform:
        platform.load_catalogue(catalogue)
        credentials = platform.add_terminal(terminal_id, [scenario], DEFAULT_REGION)
        document = platform.secrets_for(credentials.terminal_id, credentials.key)
    for made in platform_dir.rglob("*"):  # its public keys too: every file of DIR is 0600
        os.chmod(made, DIR_MODE if made.is_dir() else FILE_MODE)
    # the secrets a first sync would bring, opened by the sync's own code: the deny lists the
    # platform signs check against this pepper, and codes against this root, from the start
    opened = open_secrets(document, credentials.key, credentials.terminal_id)
    _create(root / SYNC_KEY_NAME, credentials.key.hex().encode("ascii") + b"\n")
    _create(root / PEPPER_NAME, opened.pepper.hex().encode("ascii") + b"\n")
    _create(root / DENY_KEY_NAME, opened.deny_public_key)
    _create(root / TRUST_ROOT_NAME, opened.trust_root_key)
    _create(root / AUDIENCE_KEYS_NAME, audience_keys_toml(opened.audience_keys))
    _create(root / JOURNAL_KEY_NAME, secrets.token_hex(JOURNAL_KEY_LEN).encode("ascii") + b"\n")
    # the software SAM on the TEST KEYS the virtual cards derive from: cards are checked for
    # genuineness and 3.0 cards open, as a PSAM would do it (refused in production)
    _create(root / SOFT_SAM_NAME, (TEST_KEYS / TEST_ROOTS).read_bytes())
    _new_store(root)
    text = DEVELOPMENT_SETTINGS.format(
        scenario=scenario,
        folder=root,
        terminal_id=_toml(credentials.terminal_id),
        url=_toml(platform_url),
        key_id=_toml(credentials.key_id),
        region=_toml(DEFAULT_REGION),
    )
    settings = root / SETTINGS_NAME
    _create(settings, text.encode("utf-8"))
    log.info("event=terminal_initialised mode=development terminal=%s", credentials.terminal_id)
    return InitResult(root, settings, False, platform_db, keys, scenario, platform_url)


def init_production(folder: str | Path, *, scenario: str = DEFAULT_SCENARIO) -> InitResult:
    """Write a production template: it refuses to start until the platform's keys are there.

    :param folder: the configuration folder (missing or without any of :data:`WRITTEN`)
    :param scenario: the scenario the terminal will serve (noted in the settings)
    :raises SscardError: the folder holds a configuration already
    :raises OSError: the folder cannot be written
    """
    root = _prepare(folder)
    _create(root / JOURNAL_KEY_NAME, secrets.token_hex(JOURNAL_KEY_LEN).encode("ascii") + b"\n")
    _new_store(root)
    settings = root / SETTINGS_NAME
    text = PRODUCTION_SETTINGS.format(scenario=scenario, folder=root)
    _create(settings, text.encode("utf-8"))
    log.info("event=terminal_initialised mode=production")
    return InitResult(root, settings, True, scenario=scenario)


def development_catalogue() -> str:
    """The reference platform's catalogue (应用目录) in development: every built-in profile's
    item, offered in every region.

    :raises ProfileError: a built-in profile that does not load
    """
    lines = [
        "# sscard init: the development catalogue, every built-in scenario everywhere",
        'format = "sscard-catalogue/1"',
    ]
    for path in sorted(PROFILE_DIR.glob("*.toml")):
        profile = load_profile(path.stem)
        lines += [
            "",
            "[[items]]",
            f"code = {_toml(profile.catalogue_item)}",
            f"name = {_toml(profile.name)}",
            f"scenario = {_toml(str(profile.scenario))}",
            'regions = ["*"]',
        ]
    return "\n".join(lines) + "\n"


def production_problems(settings: Settings) -> list[str]:
    """What keeps a production terminal from starting: keys not in place, or TEST KEYS.

    Empty for a development terminal (``production = false``).

    :param settings: the terminal settings
    :raises: nothing
    """
    if not settings.production:
        return []
    problems: list[str] = []
    if not settings.sync_url:
        problems.append("[sync] url is not set (the platform's https:// address)")
    if not settings.sync_key_id:
        problems.append("[sync] key_id is not set (the platform prints it at registration)")
    secret_files = (
        ("[sync] key_file", settings.sync_key_file, "the platform's registration writes it"),
        ("[store] pepper_file", settings.pepper_file, "the first `sscard sync --once` brings it"),
        ("[store] journal_key_file", settings.journal_key_file, "`sscard init` writes one"),
    )
    for key, path, how in secret_files:
        problems.extend(_key_file_problems(key, path, how, secret=True))
    public_files = (
        ("[store] deny_public_key", settings.deny_public_key),
        ("[ecard] trust_root_key", settings.ecard.trust_root_key),
    )
    for key, path in public_files:
        problems.extend(
            _key_file_problems(key, path, "the first `sscard sync --once` brings it", secret=False)
        )
    return problems


def check_ready(settings: Settings) -> None:
    """Refuse to start a production terminal whose keys are not in place.

    :param settings: the terminal settings
    :raises SscardError: one line naming every missing or refused key
    """
    problems = production_problems(settings)
    if problems:
        raise SscardError(
            f"{settings.source}: this production terminal cannot start: " + "; ".join(problems)
        )


def _key_file_problems(key: str, path: Path | None, how: str, *, secret: bool) -> list[str]:
    if path is None:
        return [f"{key} is not set ({how})"]
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        return [f"{key} {path} does not exist ({how})"]
    except OSError as exc:
        return [f"{key} {path} cannot be read: {exc.strerror}"]
    problems = []
    if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(f"{key} {path} has mode {stat.S_IMODE(mode):04o} (chmod 600 {path})")
    if _is_test_key(data):
        problems.append(f"{key} {path} is a public TEST KEY: production = true refuses test keys")
    return problems


def _is_test_key(data: bytes) -> bool:
    if marked_test_key(data):
        return True
    der = public_key_der(data)
    if der is not None:
        return known_test_key(der) is not None
    try:
        material = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return False
    return known_test_key(material) is not None


def _prepare(folder: str | Path) -> Path:
    root = Path(folder).absolute()
    if root.exists() and not root.is_dir():
        raise SscardError(f"{root} exists and is not a folder")
    found = [name for name in WRITTEN if (root / name).exists() or (root / name).is_symlink()]
    if found:
        raise SscardError(
            f"{root} holds a terminal configuration already ({', '.join(found)}): refusing to "
            "overwrite it; choose another folder or remove it first"
        )
    _mkdir(root)
    return root


def _mkdir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask


def _create(path: Path, data: bytes) -> None:
    """A new file, mode 0600, written and fsynced; an existing one is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, FILE_MODE)


def _new_store(root: Path) -> None:
    Store.open(root / STORE_NAME).close()
    for made in root.glob(f"{STORE_NAME}*"):
        os.chmod(made, FILE_MODE)


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def next_steps(result: InitResult) -> list[str]:
    """What to run after ``sscard init``, for the operator.

    :param result: what was written
    :raises: nothing
    """
    config = result.settings
    if result.production:
        return [
            f"production template written to {config} (production = true)",
            "it refuses to start until the platform's keys are in place:",
            "  1. register the terminal at the platform; put its key in "
            f"{result.folder / SYNC_KEY_NAME} (mode 0600),",
            "     and [sync] url, key_id and [terminal] id in the settings",
            f"  2. sscard sync --once --config {config}   (brings the pepper and the public keys)",
            f"  3. sscard doctor --config {config}",
        ]
    assert result.platform_db is not None and result.platform_keys is not None
    port = urlsplit(result.platform_url).port
    serve_port = f" --port={port}" if port is not None and port != DEFAULT_PORT else ""
    return [
        f"development terminal written to {config} (TEST KEYS; the reference platform in "
        f"{result.folder / PLATFORM_DIR})",
        "next:",
        f"  sscard platform serve --db {result.platform_db} --keys {result.platform_keys}"
        f"{serve_port} &",
        f"  sscard sync --once --config {config}",
        f"  sscard doctor --config {config}",
        f"  sscard tap --config {config} --scenario {result.scenario}",
    ]


#: the store's files, named alike in every template (relative to the settings file)
STORE_SECTION = """\
[store]
database = "store.db"
pepper_file = "pepper"
journal_key_file = "journal.key"
deny_public_key = "deny.pem"

"""

DEVELOPMENT_SETTINGS = (
    """\
# sscard init: a DEVELOPMENT terminal ({folder})
# It uses the public TEST KEYS and the reference platform on loopback:
#   sscard platform serve --db platform/platform.db --keys platform/keys
# Scenario: {scenario} (sscard tap --config terminal.toml --scenario {scenario}).
# Relative paths are taken from this file's folder.
production = false

[terminal]
id = {terminal_id}

[security]
soft_sam_keys = "soft-sam-roots.toml"   # TEST KEYS: the virtual cards' roots (development only)

"""
    + STORE_SECTION
    + """\
[ecard]
trust_root_key = "qr-root.pem"
audience_keys = "audience.keys"

[sync]
url = {url}
key_file = "sync.key"
key_id = {key_id}
region = {region}

[daemon]
admin_socket = "admin.sock"
"""
)

PRODUCTION_SETTINGS = (
    """\
# sscard init --production: a PRODUCTION terminal template ({folder})
# It refuses to start until the platform's keys are in place (sscard doctor says which):
# register this terminal at the platform, put its key in sync.key (mode 0600), fill in
# [terminal] id, [sync] url and key_id below, then run `sscard sync --once`: it brings the
# pepper, deny.pem and qr-root.pem. TEST KEYS are refused.
# Scenario: {scenario}. Relative paths are taken from this file's folder.
production = true

[terminal]
id = "T0001"                  # the id the platform registered this terminal under
device_number = ""            # 终端设备号, if the terminal has one

"""
    + STORE_SECTION
    + """\
[ecard]
trust_root_key = "qr-root.pem"

[sync]
# url = "https://platform.example/"
key_file = "sync.key"
key_id = ""
# pinned_cert_sha256 = "…"    # or ca_file = "platform-ca.pem"

[daemon]
admin_socket = "admin.sock"
"""
)
