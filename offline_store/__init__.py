"""The offline store (SQLite): deny list, journal, replay cache, access audit, catalogue,
e-card trust list.

One file per terminal, owned by one process (:class:`Store`). docs/offline-store.md is the
normative description of the schema, the identifiers, the deny-list and catalogue files and the
journal's hash chain.
"""

from offline_store.audit import AuditLog, AuditRow
from offline_store.catalogue import Catalogue, CatalogueItem
from offline_store.chain import ChainReport, JournalRow
from offline_store.daycount import DayCounts
from offline_store.denyfile import (
    DenyListKind,
    DenyReason,
    Verifier,
    accept_unsigned,
    ed25519_verifier,
    load_verifier,
)
from offline_store.denylist import DenyEntry, DenyList, DenyStatus, ImportResult
from offline_store.errors import (
    CatalogueError,
    DenyListError,
    DenySignatureError,
    DenyVersionError,
    JournalError,
    SchemaTooNew,
    SecretFileError,
    StoreError,
    StoreLocked,
    TrustVersionError,
)
from offline_store.freshness import (
    META_DENY_CURRENT_AT,
    ListAge,
    ListName,
    ListState,
    list_ages,
)
from offline_store.identity import (
    canonical_card_id,
    canonical_ecard_id,
    keyed_card_hash,
    pepper_check,
)
from offline_store.journal import Journal, JournalBacklog, JournalEntry, JournalOutcome
from offline_store.keys import load_key_file, load_pepper_file
from offline_store.meta import Meta
from offline_store.replay import ReplayCache
from offline_store.store import Store
from offline_store.trust import StoredTrustList, TrustStore

__all__ = [
    "META_DENY_CURRENT_AT",
    "AuditLog",
    "AuditRow",
    "Catalogue",
    "CatalogueError",
    "CatalogueItem",
    "ChainReport",
    "DayCounts",
    "DenyEntry",
    "DenyList",
    "DenyListError",
    "DenyListKind",
    "DenyReason",
    "DenySignatureError",
    "DenyStatus",
    "DenyVersionError",
    "ImportResult",
    "Journal",
    "JournalBacklog",
    "JournalEntry",
    "JournalError",
    "JournalOutcome",
    "JournalRow",
    "ListAge",
    "ListName",
    "ListState",
    "Meta",
    "ReplayCache",
    "SchemaTooNew",
    "SecretFileError",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoredTrustList",
    "TrustStore",
    "TrustVersionError",
    "Verifier",
    "accept_unsigned",
    "canonical_card_id",
    "canonical_ecard_id",
    "ed25519_verifier",
    "keyed_card_hash",
    "list_ages",
    "load_key_file",
    "load_pepper_file",
    "load_verifier",
    "pepper_check",
]
