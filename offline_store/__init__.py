"""The offline store (SQLite): deny list, journal, replay cache, access audit, catalogue,
e-card trust list.

One file per terminal, owned by one process (:class:`Store`). docs/offline-store.md is the
normative description of the schema, the identifiers, the deny-list and catalogue files and the
journal's hash chain.

The names below are imported from their modules on first use (PEP 562): a program that needs
one module of the store (the platform's operator commands need :class:`DenyReason`, the e-card
codec the trust table) does not load SQLite's wrapper and every table with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apdu.faces import lazy_getattr

if TYPE_CHECKING:
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
    from offline_store.entry import JournalEntry, JournalOutcome
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
    from offline_store.journal import Journal, JournalBacklog
    from offline_store.keys import load_key_file, load_pepper_file
    from offline_store.meta import Meta
    from offline_store.replay import ReplayCache
    from offline_store.store import Store
    from offline_store.trust import StoredTrustList, TrustStore

#: name → the module that defines it
_EXPORTS = {
    "AuditLog": "offline_store.audit",
    "AuditRow": "offline_store.audit",
    "Catalogue": "offline_store.catalogue",
    "CatalogueItem": "offline_store.catalogue",
    "ChainReport": "offline_store.chain",
    "JournalRow": "offline_store.chain",
    "DayCounts": "offline_store.daycount",
    "DenyListKind": "offline_store.denyfile",
    "DenyReason": "offline_store.denyfile",
    "Verifier": "offline_store.denyfile",
    "accept_unsigned": "offline_store.denyfile",
    "ed25519_verifier": "offline_store.denyfile",
    "load_verifier": "offline_store.denyfile",
    "DenyEntry": "offline_store.denylist",
    "DenyList": "offline_store.denylist",
    "DenyStatus": "offline_store.denylist",
    "ImportResult": "offline_store.denylist",
    "CatalogueError": "offline_store.errors",
    "DenyListError": "offline_store.errors",
    "DenySignatureError": "offline_store.errors",
    "DenyVersionError": "offline_store.errors",
    "JournalError": "offline_store.errors",
    "SchemaTooNew": "offline_store.errors",
    "SecretFileError": "offline_store.errors",
    "StoreError": "offline_store.errors",
    "StoreLocked": "offline_store.errors",
    "TrustVersionError": "offline_store.errors",
    "ListAge": "offline_store.freshness",
    "ListName": "offline_store.freshness",
    "ListState": "offline_store.freshness",
    "META_DENY_CURRENT_AT": "offline_store.freshness",
    "list_ages": "offline_store.freshness",
    "canonical_card_id": "offline_store.identity",
    "canonical_ecard_id": "offline_store.identity",
    "keyed_card_hash": "offline_store.identity",
    "pepper_check": "offline_store.identity",
    "Journal": "offline_store.journal",
    "JournalBacklog": "offline_store.journal",
    "JournalEntry": "offline_store.entry",
    "JournalOutcome": "offline_store.entry",
    "load_key_file": "offline_store.keys",
    "load_pepper_file": "offline_store.keys",
    "Meta": "offline_store.meta",
    "ReplayCache": "offline_store.replay",
    "Store": "offline_store.store",
    "StoredTrustList": "offline_store.trust",
    "TrustStore": "offline_store.trust",
}

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
