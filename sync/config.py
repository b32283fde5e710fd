"""What the sync client needs from the terminal settings, checked once.

The ``[sync]`` table names the platform and the request-signing key; ``[terminal] id`` is the
signer; the ``[store]`` and ``[ecard]`` tables name the files the platform's secrets are written
to (the pepper, the deny-list and trust-list public keys, the audience keys).
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from offline_store.keys import read_private_file
from sync.errors import SyncConfigError
from sync.transport import Credentials, RetryPolicy, SignedTransport

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["SECRET_KEY_LEN", "SecretFiles", "SyncConfig", "load_terminal_key"]

SECRET_KEY_LEN = 32


@dataclass(frozen=True, slots=True)
class SecretFiles:
    """Where the secrets the platform sends are written, one file each (``[store]`` and
    ``[ecard]`` name them); ``None``: that secret is not written. The two public keys are also
    read back from their files to check the lists they sign.

    :param pepper: the deny-list pepper (``[store] pepper_file``)
    :param deny_public_key: the deny-list public key (``[store] deny_public_key``)
    :param trust_root_key: the trust-list root key (``[ecard] trust_root_key``)
    :param audience_keys: the QR audience keys (``[ecard] audience_keys``)
    """

    pepper: Path | None = None
    deny_public_key: Path | None = None
    trust_root_key: Path | None = None
    audience_keys: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretFiles:
        """The files :class:`config.settings.Settings` names for the secrets.

        :param settings: the terminal settings
        """
        return cls(
            settings.pepper_file,
            settings.deny_public_key,
            settings.ecard.trust_root_key,
            settings.ecard.audience_keys,
        )


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """The sync client's settings.

    :param url: the platform's base URL
    :param credentials: terminal id, key id and key
    :param batch_rows: journal rows per upload request (1–5000)
    :param timeout_s: connect and read timeout of each request
    :param max_clock_offset_s: a local clock further off than this raises an alarm
    :param pinned_cert_sha256: the pinned certificate digest (hex), or ``None``
    :param ca_file: the CA file, or ``None``
    :param region: the region code the catalogue is fetched for, or ``None`` (not fetched)
    :param secret_files: where the platform's secrets are written
    :param prune: prune the acknowledged journal rows after a complete upload
    :param production: a production terminal: secrets holding a TEST KEY are refused
    """

    url: str
    credentials: Credentials
    batch_rows: int = 2000
    timeout_s: float = 10.0
    max_clock_offset_s: float = 120.0
    pinned_cert_sha256: str | None = None
    ca_file: Path | None = None
    region: str | None = None
    secret_files: SecretFiles = SecretFiles()
    prune: bool = True
    production: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, prune: bool = True) -> SyncConfig:
        """Build the configuration from :class:`config.settings.Settings`, reading the key.

        :param settings: the terminal settings
        :param prune: see the class
        :raises SyncConfigError: no ``[sync] url``, ``key_file`` or ``key_id``, or a key file
            that is unreadable, readable by others, or not 32 bytes in hex
        """
        url, key_file, key_id = settings.sync_url, settings.sync_key_file, settings.sync_key_id
        if not (url and key_file and key_id):
            needed = (("url", url), ("key_file", key_file), ("key_id", key_id))
            missing = ", ".join(name for name, value in needed if not value)
            raise SyncConfigError(
                f"{settings.source}: [sync] needs {missing} "
                "(`sscard platform terminal add` prints them)"
            )
        key = load_terminal_key(key_file)
        return cls(
            url=url,
            credentials=Credentials(settings.terminal_id, key_id, key),
            batch_rows=settings.sync_batch_rows,
            timeout_s=settings.sync_timeout_s,
            max_clock_offset_s=settings.max_clock_offset_s,
            pinned_cert_sha256=settings.pinned_cert_sha256,
            ca_file=settings.sync_ca_file,
            region=settings.sync_region,
            secret_files=SecretFiles.from_settings(settings),
            prune=prune,
            production=settings.production,
        )

    def transport(
        self,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> SignedTransport:
        """The terminal's one transport to the platform: every call (sync, e-card decoding)
        goes through it, with the pin or the CA file of these settings and nothing from the
        environment (:func:`sync.transport.platform_session`).

        :param session: a session to use instead (tests)
        :param policy: the retry policy (default :class:`RetryPolicy`)
        :param clock: the wall clock (signatures)
        :param stop: set to make a waiting retry give up
        :param rng: the random source of the jitter
        :raises: nothing
        """
        return SignedTransport(
            self.url,
            self.credentials,
            timeout_s=self.timeout_s,
            session=session,
            pinned_cert_sha256=self.pinned_cert_sha256,
            ca_file=str(self.ca_file) if self.ca_file else None,
            policy=policy,
            clock=clock,
            stop=stop,
            rng=rng,
        )


def load_terminal_key(path: str | Path) -> bytes:
    """Read the terminal's request-signing key: 64 hex characters in a 0600 file.

    :param path: the key file
    :raises SyncConfigError: unreadable, readable by group or others, or not 64 hex digits
    """
    text = read_private_file(path, "the sync key", SyncConfigError).strip()
    digits = set(string.hexdigits.encode("ascii"))
    if len(text) != 2 * SECRET_KEY_LEN or not all(b in digits for b in text):
        raise SyncConfigError(
            f"sync key file {path} must hold {2 * SECRET_KEY_LEN} hex characters "
            f"(a {SECRET_KEY_LEN}-byte key)"
        )
    return bytes.fromhex(text.decode("ascii"))
