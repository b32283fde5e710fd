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
from typing import Any

import requests

from offline_store.keys import read_private_file
from sync.errors import SyncConfigError
from sync.transport import Credentials, RetryPolicy, SignedTransport

__all__ = ["SECRET_KEY_LEN", "SyncConfig", "load_terminal_key"]

SECRET_KEY_LEN = 32


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
    :param pepper_file: where the deny-list pepper is written, or ``None``
    :param deny_public_key: where the deny-list public key is read from and written to
    :param trust_root_key: where the trust-list root key is read from and written to
    :param audience_keys: where the QR audience keys are written, or ``None``
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
    pepper_file: Path | None = None
    deny_public_key: Path | None = None
    trust_root_key: Path | None = None
    audience_keys: Path | None = None
    prune: bool = True
    production: bool = False

    @classmethod
    def from_settings(cls, settings: Any, *, prune: bool = True) -> SyncConfig:
        """Build the configuration from :class:`config.settings.Settings`, reading the key.

        :param settings: the terminal settings
        :param prune: see the class
        :raises SyncConfigError: no ``[sync] url``, ``key_file`` or ``key_id``, or a key file
            that is unreadable, readable by others, or not 32 bytes in hex
        """
        missing = [
            name
            for name, value in (
                ("url", settings.sync_url),
                ("key_file", settings.sync_key_file),
                ("key_id", settings.sync_key_id),
            )
            if not value
        ]
        if missing:
            raise SyncConfigError(
                f"{settings.source}: [sync] needs {', '.join(missing)} "
                "(`sscard platform terminal add` prints them)"
            )
        key = load_terminal_key(settings.sync_key_file)
        return cls(
            url=settings.sync_url,
            credentials=Credentials(settings.terminal_id, settings.sync_key_id, key),
            batch_rows=settings.sync_batch_rows,
            timeout_s=settings.sync_timeout_s,
            max_clock_offset_s=settings.max_clock_offset_s,
            pinned_cert_sha256=settings.pinned_cert_sha256,
            ca_file=settings.sync_ca_file,
            region=settings.sync_region,
            pepper_file=settings.pepper_file,
            deny_public_key=settings.deny_public_key,
            trust_root_key=settings.trust_root_key,
            audience_keys=settings.audience_keys,
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
