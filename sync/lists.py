"""List updates from the platform (deny list, trust list, catalogue) and the terminal's
secrets that verify them (docs/sync.md).

Each list is verified and applied through the offline store in one transaction: a list that
fails its signature changes nothing. The pinned keys come from the configured files, else from
the secrets the platform sent this terminal (encrypted to its key); a TEST KEY is refused on a
production terminal. No key, pepper or personal value is ever logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ecard.testkeys import public_key_der, refuse_test_key
from offline_store import DenyListError, Store, ed25519_verifier
from offline_store.freshness import META_DENY_CURRENT_AT
from sync.answers import deny_signature, json_answer
from sync.config import SyncConfig
from sync.errors import SyncConfigError
from sync.provisioning import (
    TerminalSecrets,
    audience_keys_toml,
    open_secrets,
    write_private_file,
)
from sync.reports import CatalogueReport, DenyReport, SecretsReport, TrustReport
from sync.step import SyncStep
from sync.transport import Exchange, SignedTransport

__all__ = ["ListUpdater", "TrustSaver"]

# the sync client's lines keep the logger they always had: operators filter on it
log = logging.getLogger("sync.client")

PATH_DENY = "/v1/deny"
PATH_TRUST = "/v1/trust"
PATH_CATALOGUE = "/v1/catalogue"
PATH_SECRETS = "/v1/secrets"
H_DENY_SIGNATURE = "X-Sscard-Deny-Signature"
MAX_DENY_STEPS = 64  # deltas applied in one update at most: a platform that never says 204
META_CATALOGUE_ETAG = "sync.catalogue_etag"
ANSWERS_NEWER = frozenset({200, 204})  # 204: the version asked about is the newest

TrustSaver = Callable[[Store, bytes, bytes, float], object]
"""``saver(store, list bytes, root public key PEM, now)``: verify a trust list and keep it
(:func:`ecard.trust.save_trust_list`); raises to refuse it."""


class ListUpdater(SyncStep):
    """Brings one terminal's lists up to date and fetches its secrets.

    :param transport: the signed transport to the platform
    :param store: the open offline store the lists go into
    :param config: the sync settings (key files, secret files, production flag)
    :param clock: the wall clock (freshness, trust-list checks)
    :param trust_saver: verifies and keeps a trust list; without one the trust list is not
        updated (:meth:`update_trust` says so)
    """

    def __init__(
        self,
        transport: SignedTransport,
        store: Store,
        config: SyncConfig,
        clock: Callable[[], float] = time.time,
        trust_saver: TrustSaver | None = None,
    ) -> None:
        super().__init__(transport, store, config)
        self.clock = clock
        self._trust_saver = trust_saver
        self._secrets: TerminalSecrets | None = None

    def update_deny(self) -> DenyReport:
        """Bring the deny list up to date: the deltas (or a snapshot) since the active version,
        each verified with the pinned Ed25519 key and applied in one transaction.

        :returns: the versions before and after, and what was applied
        :raises DenySignatureError: a list whose signature is missing or wrong; nothing changed
        :raises DenyListError: a list that does not parse or does not apply; nothing changed
        :raises SyncConfigError: no deny-list public key (settings or secrets)
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        verify = ed25519_verifier(self._public_key("deny_public_key"))
        before = self.store.deny.status().version
        imported: list[tuple[int, str, int]] = []
        for _ in range(MAX_DENY_STEPS):
            active = self.store.deny.status().version
            exchange = self._newer(PATH_DENY, active)
            if exchange.status == 204:
                # the platform confirmed the list is current: that is what freshness means
                self.store.meta.set({META_DENY_CURRENT_AT: f"{self.clock():.3f}"})
                break
            signature = deny_signature(exchange.headers.get(H_DENY_SIGNATURE))
            try:
                result = self.store.deny.import_bytes(exchange.body, signature, verify)
            except DenyListError as exc:
                log.error("event=sync_deny_refused since=%s error=%s", active, type(exc).__name__)
                raise
            if result.already_applied:
                break
            imported.append((result.version, str(result.kind), result.file_entries))
            log.info(
                "event=sync_deny_applied version=%d kind=%s entries=%d",
                result.version,
                result.kind,
                result.file_entries,
            )
        return DenyReport(before, self.store.deny.status().version, tuple(imported))

    def update_trust(self) -> TrustReport:
        """Bring the e-card trust list up to date, verified against the pinned root key.

        :returns: the versions before and after
        :raises SyncConfigError: no trust saver, or no root key (settings or secrets)
        :raises SscardError: the list does not verify or is older (from the trust saver);
            nothing changed
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        if self._trust_saver is None:
            raise SyncConfigError("no trust-list verifier was given to the sync client")
        root = self._public_key("trust_root_key")
        info = self.store.trust.info()
        before = info.version if info else None
        exchange = self._newer(PATH_TRUST, before)
        if exchange.status == 200:
            self._trust_saver(self.store, exchange.body, root, self.clock())
        after = self.store.trust.info()
        return TrustReport(before, after.version if after else None)

    def update_catalogue(self, region: str | None = None) -> CatalogueReport:
        """Replace the application catalogue with the platform's items for a region.

        The whole catalogue is fetched every time (it is small), so its load time, which the
        pipeline judges staleness by, says when the terminal last heard from the platform.

        :param region: a six-digit region code; ``None`` lets the platform use the region the
            terminal was registered with
        :returns: the items loaded
        :raises SyncConfigError: a region that is not six digits
        :raises CatalogueError: the answer breaks the catalogue format; nothing changed
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        if region is not None and not (len(region) == 6 and region.isascii() and region.isdigit()):
            raise SyncConfigError("the catalogue region must be 6 digits")
        query = {"region": region} if region is not None else None
        exchange, _ = self.transport.request("GET", PATH_CATALOGUE, query=query)
        source = f"{self.config.url.rstrip('/')}{PATH_CATALOGUE}?region={region or '-'}"
        items = self.store.catalogue.load_bytes(exchange.body, "json", source)
        etag = exchange.headers.get("ETag")
        self.store.meta.set({META_CATALOGUE_ETAG: etag[:200] if etag else None})
        return CatalogueReport(region or "registered", items, etag)

    def fetch_secrets(self) -> SecretsReport:
        """Fetch the terminal's secrets and write each to its configured file (0600, atomic).

        The deny-list and trust-list public keys are also kept for this client's list updates
        when the settings name no file for them.

        :returns: which secrets were written, unchanged or have no file configured
        :raises SyncProtocolError: the document does not decrypt with this terminal's key, or
            breaks the contract
        :raises RefusedTestKey: a production terminal was sent a TEST KEY; nothing is written
        :raises OSError: a file could not be written
        :raises SyncError: see :meth:`SignedTransport.request`
        """
        _, document = self.transport.request("GET", PATH_SECRETS, check=json_answer)
        credentials = self.config.credentials
        secrets = open_secrets(document, credentials.key, credentials.terminal_id)
        self._refuse_test_keys(secrets)
        self._secrets = secrets
        to = self.config.secret_files
        files: tuple[tuple[str, Path | None, bytes], ...] = (
            ("pepper", to.pepper, secrets.pepper.hex().encode("ascii") + b"\n"),
            ("deny_public_key", to.deny_public_key, secrets.deny_public_key),
            ("trust_root_key", to.trust_root_key, secrets.trust_root_key),
            ("audience_keys", to.audience_keys, audience_keys_toml(secrets.audience_keys)),
        )
        written: list[str] = []
        unchanged: list[str] = []
        missing: list[str] = []
        changed: list[str] = []
        for name, path, data in files:
            if path is None:
                missing.append(name)
                continue
            existed = path.exists()
            if write_private_file(path, data):
                written.append(name)
                if existed:
                    changed.append(name)
                log.info("event=sync_secret_written name=%s path=%s", name, path)
            else:
                unchanged.append(name)
        if "pepper" in changed:
            log.warning("event=sync_pepper_changed path=%s", to.pepper)
        return SecretsReport(tuple(written), tuple(unchanged), tuple(missing), tuple(changed))

    def _newer(self, path: str, version: int | None) -> Exchange:
        """GET a list newer than ``version`` (the whole list without one): 200 with it, 204
        when ``version`` is current."""
        query = {"since": str(version)} if version is not None else None
        exchange, _ = self.transport.request("GET", path, query=query, accept=ANSWERS_NEWER)
        return exchange

    def _refuse_test_keys(self, secrets: TerminalSecrets) -> None:
        """On a production terminal, refuse secrets that hold a TEST KEY (a platform set up
        with ``platform init --test-keys``)."""
        production = self.config.production
        for name in ("trust_root_key", "deny_public_key"):
            pem = bytes(getattr(secrets, name))
            der = public_key_der(pem) or b""
            refuse_test_key(der, f"the {name} the platform sent", production=production, text=pem)
        for kid, key in secrets.audience_keys.items():
            refuse_test_key(key, f"the audience key {kid} the platform sent", production=production)

    def _public_key(self, name: str) -> bytes:
        """A pinned public key: the configured file, else the one the secrets brought (a TEST
        KEY is refused on a production terminal)."""
        path: Path | None = getattr(self.config.secret_files, name)
        if path is not None and path.exists():
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise SyncConfigError(f"cannot read {name} {path}: {exc.strerror}") from exc
            refuse_test_key(
                public_key_der(pem) or b"",
                f"{name} {path}",
                production=self.config.production,
                text=pem,
            )
            return pem
        if self._secrets is not None:
            return bytes(getattr(self._secrets, name))
        where = f"{path} does not exist" if path is not None else "no file is configured"
        raise SyncConfigError(f"no {name} to verify with: {where} and no secrets were fetched")
