"""The reference platform as one object: a database, a keys folder and a clock.

Every operator command and every HTTP route is one call here::

    with Platform.open("sqlite:///platform.db", "keys/") as platform:
        credentials = platform.add_terminal("440100-T0001", ("transit",), "440100")
        platform.deny("ssc:440100:A01023450", DenyReason.LOST)
        result = platform.upload("440100-T0001", parse_batch(body))

Each method runs in one transaction of its own (docs/sync.md §10).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from apdu.resources import Closing
from ecard.keys import Alg
from offline_store.denyfile import DenyReason
from offline_store.identity import keyed_card_hash
from platform_server import (
    batch,
    cards,
    catalogue,
    chains,
    clearing,
    deferred,
    denylist,
    ecard,
    journal,
    payments,
    terminals,
    trust,
)
from platform_server.db import open_engine, transaction
from platform_server.errors import InvalidInput, PlatformConfigError
from platform_server.keys import PlatformKeys
from platform_server.nonces import PersistentNonces
from sync.auth import NonceCache, verify_request
from sync.deferred import Confirmation, ConfirmRequest
from sync.status import CardStatus
from sync.wire import quote

__all__ = ["Platform", "Rotation"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Rotation:
    """What ``platform keys rotate`` did for one algorithm.

    :param alg: the algorithm
    :param kid: the new key's kid (hex)
    :param retiring: the kids that leave the trust list at ``retire_at``
    :param retire_at: when they leave it, seconds since 1970
    :param trust_version: the trust list published with the new key
    """

    alg: Alg
    kid: str
    retiring: tuple[str, ...]
    retire_at: float
    trust_version: int


class Platform(Closing):
    """The reference platform.

    :param engine: the database (:func:`platform_server.db.open_engine`)
    :param keys: the keys folder, or ``None`` for the commands that need no key
    :param clock: wall clock, seconds since 1970
    :param nonces: the memory cache of request nonces (default: one with the standard
        limits); every nonce is also kept in the database (:mod:`platform_server.nonces`)
    """

    def __init__(
        self,
        engine: Engine,
        keys: PlatformKeys | None,
        clock: Clock = time.time,
        nonces: NonceCache | None = None,
    ) -> None:
        self.engine = engine
        self._keys = keys
        self.clock = clock
        self.nonces = PersistentNonces(engine, nonces)
        self._deny_files = denylist.DenyFileCache()

    @classmethod
    def open(
        cls,
        db_url: str,
        keys: PlatformKeys | str | Path | None = None,
        *,
        clock: Clock = time.time,
    ) -> Platform:
        """Open the database (creating its schema) and load the keys folder.

        :param db_url: ``sqlite:///file``, ``postgresql+psycopg://…`` or a file path
        :param keys: a keys folder, loaded keys, or ``None``
        :param clock: wall clock
        :raises PlatformConfigError: the database or the keys cannot be used
        """
        loaded = PlatformKeys.load(keys) if isinstance(keys, str | Path) else keys
        engine = open_engine(db_url, clock())
        platform = cls(engine, loaded, clock)
        if loaded is not None:
            try:
                with platform._write() as conn:
                    trust.register(conn, loaded, clock())
            except BaseException:
                engine.dispose()
                raise
        return platform

    @classmethod
    def init(
        cls,
        db_url: str,
        keys_dir: str | Path,
        *,
        test_keys: str | Path | None = None,
        clock: Clock = time.time,
    ) -> Platform:
        """Create a keys folder and the database, and publish the first trust list.

        :param db_url: the database
        :param keys_dir: the keys folder to create (empty or missing)
        :param test_keys: copy the repository's public TEST KEYS from this folder
        :param clock: wall clock
        :raises PlatformConfigError: the folder holds keys already, or the database fails
        """
        keys = PlatformKeys.create(keys_dir, test_keys=test_keys)
        platform = cls.open(db_url, keys, clock=clock)
        platform.trust_list()
        return platform

    def close(self) -> None:
        """Close the database connections (idempotent).

        :raises: nothing
        """
        self.nonces.close()
        self.engine.dispose()

    @property
    def keys(self) -> PlatformKeys:
        """The keys folder.

        :raises PlatformConfigError: the platform was opened without one
        """
        if self._keys is None:
            raise PlatformConfigError("this needs the platform's keys folder (--keys DIR)")
        return self._keys

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with transaction(self.engine) as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with transaction(self.engine, readonly=True) as conn:
            yield conn

    # --- requests --------------------------------------------------------------------------

    def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, str, bytes]:
        """Check a request's signature (:func:`sync.auth.verify_request`).

        :param method: the HTTP method
        :param path: the path and query as received
        :param headers: the request headers (case-insensitive mapping)
        :param body: the body bytes
        :returns: the terminal id, the key id and the key
        :raises AuthError: with the failure code
        :raises NonceLimit: the terminal sent too many requests within the window
        :raises Busy: the database stayed locked
        """
        used: dict[str, bytes] = {}

        def key_for(terminal_id: str, key_id: str) -> bytes | None:
            with self._read() as conn:
                key = terminals.key_for(conn, terminal_id, key_id)
            if key is not None:
                used["key"] = key
            return key

        terminal_id = verify_request(
            method, path, headers, body, key_for=key_for, nonces=self.nonces, now=self.clock()
        )
        return terminal_id, str(headers.get("X-Sscard-Key-Id")), used["key"]

    # --- terminals -------------------------------------------------------------------------

    def add_terminal(
        self, terminal_id: str, scenarios: Sequence[str], region: str
    ) -> terminals.Credentials:
        """Register a terminal; its key is in the answer and nowhere else but the database.

        :param terminal_id: 1–32 letters, digits, ``-``, ``_``
        :param scenarios: the scenarios it serves
        :param region: its six-digit region code
        :raises InvalidInput: a malformed value
        :raises AlreadyExists: the id is taken
        """
        names = terminals.parse_scenarios(scenarios)
        with self._write() as conn:
            return terminals.add(conn, terminal_id, names, region, self.clock())

    def list_terminals(self, terminal_id: str | None = None) -> list[terminals.TerminalInfo]:
        """Every registered terminal (or one), with its last heartbeat.

        :param terminal_id: one terminal, or ``None``
        :raises: nothing beyond the database's own errors
        """
        with self._read() as conn:
            return terminals.list_terminals(conn, terminal_id)

    def heartbeat(self, terminal_id: str, report: terminals.HeartbeatReport) -> float:
        """Store a heartbeat.

        :param terminal_id: the signer
        :param report: the report
        :returns: the platform's time
        :raises Busy: the database stayed locked
        """
        now = self.clock()
        with self._write() as conn:
            terminals.heartbeat(conn, terminal_id, report, now)
        return now

    def secrets_for(self, terminal_id: str, key: bytes) -> dict[str, str]:
        """The secrets a terminal receives, encrypted to the key it signed with.

        :param terminal_id: the signer
        :param key: the signer's key
        :raises NotFound: an unknown terminal
        """
        with self._read() as conn:
            info = terminals.info(conn, terminal_id)
        plaintext = self.keys.terminal_secrets(info.scenarios)
        log.info(
            "event=secrets_sent terminal=%s audience_keys=%d",
            quote(terminal_id),
            len(plaintext["audience_keys"]),
        )
        return terminals.encrypt_secrets(plaintext, key, terminal_id)

    # --- journal ---------------------------------------------------------------------------

    def upload(self, terminal_id: str, rows: Sequence[batch.UploadedRow]) -> batch.BatchResult:
        """Apply a batch of a terminal's journal rows in one transaction.

        :param terminal_id: the signer
        :param rows: :func:`platform_server.batch.parse_batch`
        :raises NotFound: an unregistered terminal
        :raises Busy: the database stayed locked
        """
        now = self.clock()
        roots = self._keys.payments if self._keys is not None else None
        with self._write() as conn:
            result = journal.ingest(conn, terminal_id, rows, now)
            purchases: dict[int, tuple[int, int, payments.PaymentFact]] = {}
            for row in rows:  # the row ingest stored for a seq: the first valid one
                if (
                    row.payment is not None
                    and row.seq in result.stored
                    and row.hash_ok
                    and row.terminal_id == terminal_id
                ):
                    purchases.setdefault(row.seq, (row.seq, row.wall_time_us, row.payment))
            payments.record(conn, terminal_id, [purchases[s] for s in sorted(purchases)], roots)
        log.info(
            "event=journal_batch terminal=%s rows=%d accepted=%d duplicates=%d rejected=%d "
            "ack_seq=%d",
            quote(terminal_id),
            len(rows),
            result.accepted,
            result.duplicates,
            len(result.rejected),
            result.ack_seq,
        )
        return result

    def journal_rows(
        self, terminal_id: str, after_seq: int, limit: int = journal.MAX_PAGE_ROWS
    ) -> list[dict[str, Any]]:
        """A terminal's own stored journal rows after ``after_seq``, as uploaded.

        :param terminal_id: the terminal that signed the request
        :param after_seq: the last seq the terminal still holds
        :param limit: at most this many rows
        :raises NotFound: an unknown terminal
        """
        with self._read() as conn:
            return journal.own_rows(conn, terminal_id, after_seq, limit)

    def clearing(self, day: str) -> clearing.ClearingReport:
        """A day's clearing (清分) per terminal and per card issuer (docs/clearing.md).

        :param day: ``YYYY-MM-DD``
        :raises InvalidInput: not such a date
        """
        checked = clearing.parse_day(day)
        with self._read() as conn:
            return clearing.clearing_day(conn, checked)

    def transactions(self, terminal_id: str | None = None, limit: int = 50) -> list[chains.TxRow]:
        """The newest journal rows, oldest first.

        :param terminal_id: one terminal, or ``None`` for all
        :param limit: how many
        :raises NotFound: an unknown terminal
        """
        with self._read() as conn:
            return chains.list_rows(conn, terminal_id, limit)

    def verify_chains(self, terminal_id: str | None = None) -> list[chains.ChainSummary]:
        """Check every stored row's hash and link again, per terminal.

        :param terminal_id: one terminal, or ``None`` for all
        :raises NotFound: an unknown terminal
        """
        with self._read() as conn:
            return chains.verify_chains(conn, terminal_id)

    # --- deny list -------------------------------------------------------------------------

    def card_hash(self, canonical: str) -> str:
        """A card's keyed hash with the deployment's pepper.

        :param canonical: ``ssc:…`` or ``ecard:…`` (offline_store.identity)
        :raises StoreError: not a canonical identifier
        """
        return keyed_card_hash(self.keys.pepper, canonical)

    def deny(
        self, canonical: str, reason: DenyReason, effective: dt.date | None = None
    ) -> denylist.DenyChange:
        """List a card (挂失, 注销 …): a new list version.

        :param canonical: the card's canonical identifier
        :param reason: why
        :param effective: the first day it applies (default: today)
        :raises StoreError: not a canonical identifier
        """
        day = effective or dt.date.fromtimestamp(self.clock())
        card_hash = self.card_hash(canonical)
        with self._write() as conn:
            return denylist.change(
                conn, card_hash, reason=DenyReason(reason), effective=day, now=self.clock()
            )

    def undeny(self, canonical: str) -> denylist.DenyChange:
        """Unlist a card (解挂): a new list version.

        :param canonical: the card's canonical identifier
        :raises NotFound: ``not_listed``
        """
        card_hash = self.card_hash(canonical)
        with self._write() as conn:
            return denylist.change(conn, card_hash, reason=None, effective=None, now=self.clock())

    def deny_status(self) -> denylist.DenyStatus:
        """The current list version.

        :raises: nothing beyond the database's own errors
        """
        with self._read() as conn:
            return denylist.status(conn)

    def card_status(self, terminal_id: str, card_hash: str) -> CardStatus:
        """One card's entry on the current deny list, for a terminal whose list is stale.

        :param terminal_id: the signer (logged, with the answer; never the hash)
        :param card_hash: the card's keyed hash
        :raises: nothing beyond the database's own errors
        """
        with self._read() as conn:
            found = cards.status(conn, card_hash)
        log.info(
            "event=card_status terminal=%s listed=%s version=%d",
            quote(terminal_id),
            found.listed,
            found.version,
        )
        return found

    def deny_file(self, since: int | None) -> denylist.DenyFile | None:
        """The signed file bringing a terminal from ``since`` to the current version.

        :param since: the terminal's version (``None``/0: it has none)
        :returns: ``None`` when ``since`` is current, else a delta or a snapshot
        :raises PlatformConfigError: no keys folder
        """
        keys = self.keys
        with self._read() as conn:
            version = denylist.current_version(conn, lock=True, shared=True)
            if since == version:
                return None
            key = since if since is not None and 1 <= since < version else None
            cached = self._deny_files.get(version, key)
            if cached is not None:
                return cached
            made = denylist.make_file(conn, keys, since)
        if made is not None:
            self._deny_files.put(key, made)
        return made

    # --- trust list and keys ---------------------------------------------------------------

    def trust_list(self) -> trust.TrustListInfo:
        """The trust list to serve now (a new version first when one is due).

        :raises PlatformConfigError: no keys folder
        """
        keys = self.keys
        with self._write() as conn:
            return trust.current(conn, keys, self.clock())

    def qr_keys(self) -> list[trust.QrKeyInfo]:
        """Every registered QR key.

        :raises: nothing beyond the database's own errors
        """
        with self._read() as conn:
            return trust.qr_keys(conn)

    def rotate_keys(self, alg: Alg, grace_s: float) -> Rotation:
        """Make a new QR signing key; the old ones of ``alg`` leave the trust list after
        ``grace_s``. A new trust list naming old and new keys is published at once.

        :param alg: ES256 or SM2
        :param grace_s: seconds the old keys stay listed
        :raises PlatformConfigError: no keys folder, or the key file cannot be written
        """
        keys = self.keys
        key, staged = keys.stage_qr_key(alg)
        now = self.clock()
        try:
            with self._write() as conn:
                kid, retiring = trust.rotate(conn, key, grace_s, now)
                published = trust.current(conn, keys, now)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        keys.commit_qr_key(staged, key)
        return Rotation(Alg(alg), kid, retiring, now + max(grace_s, 0.0), published.version)

    # --- catalogue -------------------------------------------------------------------------

    def load_catalogue(self, path: str | Path) -> int:
        """Replace the catalogue with a ``.toml`` or ``.json`` file's items.

        :param path: the file
        :returns: the number of items
        :raises InvalidInput: unreadable or off-schema (nothing changes)
        """
        path = Path(path)
        if path.suffix not in (".toml", ".json"):
            raise InvalidInput(f"{path}: a catalogue file ends in .toml or .json")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        with self._write() as conn:
            return catalogue.load(conn, raw, path.suffix[1:], str(path), self.clock())

    def catalogue_for(self, region: str) -> catalogue.CatalogueDocument:
        """The catalogue for a region.

        :param region: six digits
        :raises InvalidInput: ``invalid_region``
        """
        with self._read() as conn:
            return catalogue.document(conn, region)

    # --- e-card codes ----------------------------------------------------------------------

    def issue_ecard(
        self, persona: Mapping[str, Any], valid_s: float = ecard.DEFAULT_CODE_VALIDITY_S
    ) -> ecard.IssuedCode:
        """Store an opaque national code for a persona.

        :param persona: a persona document
        :param valid_s: how long it may be decoded
        :raises InvalidInput: ``invalid_persona``
        """
        keys = self.keys
        with self._write() as conn:
            return ecard.issue(conn, keys, persona, now=self.clock(), valid_s=valid_s)

    def decode(self, terminal_id: str, request: ecard.DecodeRequest) -> dict[str, Any]:
        """Decode an opaque code for the terminal that signed the request.

        :param terminal_id: the signer
        :param request: the request
        :raises DecodeRefused: the reason of the 422 answer
        """
        keys = self.keys
        with self._read() as conn:
            signer = terminals.info(conn, terminal_id)
            return ecard.decode(conn, keys, signer, request, self.clock())

    def confirm_deferred(self, terminal_id: str, request: ConfirmRequest) -> Confirmation:
        """Judge a deferred e-card code of the signing terminal as of its scan.

        :param terminal_id: the signer
        :param request: the deferred row's seq and the code
        :raises NotFound: ``not_deferred`` or ``code_mismatch``
        """
        keys = self.keys
        with self._read() as conn:
            signer = terminals.info(conn, terminal_id)
            return deferred.confirm(conn, keys, signer, request)

    def deferred_codes(
        self, terminal_id: str | None = None, limit: int = 50
    ) -> list[deferred.DeferredCode]:
        """The newest deferred codes and what became of them.

        :param terminal_id: one terminal, or ``None`` for all
        :param limit: how many
        :raises NotFound: an unknown terminal
        """
        with self._read() as conn:
            if terminal_id is not None:
                terminals.info(conn, terminal_id)
            return deferred.deferred_codes(conn, terminal_id, limit)
