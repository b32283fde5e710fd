"""The errors of the offline store, all below :class:`apdu.errors.SscardError`::

    SscardError
    └── StoreError                 the offline store refused or could not do something
        ├── StoreLocked            another Store (this process or another) owns the file
        ├── SchemaTooNew           the file was written by a newer sscard
        ├── SecretFileError        a key or pepper file that is unreadable, too open or malformed
        ├── DenyListError          a deny-list file that does not parse (names the line)
        │   ├── DenySignatureError the detached signature is missing or does not verify
        │   └── DenyVersionError   a delta on the wrong base, a replayed older list, no rollback
        ├── JournalError           a journal entry or operation that cannot be done
        ├── CatalogueError         a catalogue file that does not parse or breaks the schema
        └── TrustVersionError      an e-card trust list older than the active one

No message ever holds a personal value or a key: card numbers are masked or left out, and
personal fields are named, never shown.
"""

from __future__ import annotations

from apdu.errors import SscardError

__all__ = [
    "CatalogueError",
    "DenyListError",
    "DenySignatureError",
    "DenyVersionError",
    "JournalError",
    "SchemaTooNew",
    "SecretFileError",
    "StoreError",
    "StoreLocked",
    "TrustVersionError",
]


class StoreError(SscardError):
    """The offline store refused an operation or could not carry it out."""


class StoreLocked(StoreError):
    """Another :class:`~offline_store.Store` owns the database file.

    :param path: the database file
    :param pid: the process holding the lock, when it wrote its pid
    """

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"offline store {path} is in use by {holder}")


class SchemaTooNew(StoreError):
    """The database file carries a schema version newer than this code knows.

    :param path: the database file
    :param found: the file's schema version
    :param known: the newest version this code knows
    """

    def __init__(self, path: str, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"offline store {path} was written by a newer sscard (schema version {found}, "
            f"this version knows up to {known}); upgrade sscard, the file is left untouched"
        )


class SecretFileError(StoreError):
    """A journal-key or pepper file that is unreadable, readable by others, or malformed."""


class DenyListError(StoreError):
    """A deny-list file that does not follow ``sscard-deny/1``; nothing was applied."""


class DenySignatureError(DenyListError):
    """The deny-list file's detached signature is missing or does not verify."""


class DenyVersionError(DenyListError):
    """A list that does not fit the active version: wrong base, older, or no rollback left."""


class JournalError(StoreError):
    """A journal entry that cannot be stored, or a journal operation that cannot be done."""


class CatalogueError(StoreError):
    """A catalogue file that does not parse or breaks the ``sscard-catalogue/1`` schema."""


class TrustVersionError(StoreError):
    """An e-card trust list whose version is not newer than the active one; nothing changed."""
