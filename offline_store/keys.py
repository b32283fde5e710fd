"""The store's two secrets, read from files only their owner can read (mode 0600).

* the journal key: 32 bytes (AES-256-GCM) for the personal fields of journal rows, written as
  64 hex characters (one line) or as the 32 raw bytes;
* the deny-list pepper: at least 16 bytes shared with the platform (see
  :mod:`offline_store.identity`), written as hex (one line) or as raw bytes.

The rule is the one of :func:`drivers.keyfile.read_secret`: a file that the group or others can
read is refused with the ``chmod`` to run. Values never appear in messages or logs.
"""

from __future__ import annotations

import stat
import string
from pathlib import Path

from offline_store.errors import SecretFileError
from offline_store.identity import MIN_PEPPER_LEN

__all__ = ["JOURNAL_KEY_LEN", "load_key_file", "load_pepper_file", "read_private_file"]

JOURNAL_KEY_LEN = 32
_HEX_DIGITS = frozenset(string.hexdigits.encode("ascii"))


def read_private_file(
    path: str | Path, what: str, error: type[Exception] = SecretFileError
) -> bytes:
    """Read a secret from a file only its owner can read (mode 0600); the store's key files
    and the sync key file alike.

    :param path: the file
    :param what: what it holds, in messages (``journal key``: "cannot read journal key file …")
    :param error: the error class to raise
    :raises SecretFileError: (or ``error``) unreadable, or readable by group or others, with the
        ``chmod`` to run
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} file {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(
            f"{what} file {path} has mode {stat.S_IMODE(mode):04o}; it must be 0600 "
            f"(chmod 600 {path})"
        )
    return data


def _hex_or_none(data: bytes) -> bytes | None:
    text = data.strip()
    if text and len(text) % 2 == 0 and all(b in _HEX_DIGITS for b in text):
        return bytes.fromhex(text.decode("ascii"))
    return None


def load_key_file(path: str | Path) -> bytes:
    """Read the 32-byte journal key: 64 hex characters (surrounding whitespace ignored) or 32
    raw bytes; a file of hex digits is always read as hex.

    :param path: the key file, mode 0600
    :raises SecretFileError: unreadable, readable by group or others, or not 32 bytes either way
    """
    data = read_private_file(path, "journal key")
    # hex text wins: 32 random bytes are all hex digits with a probability of about 10^-34,
    # while a 16-byte key written as 32 hex digits must not pass for a 32-byte raw key
    key = _hex_or_none(data)
    if key is None:
        key = data
    if len(key) != JOURNAL_KEY_LEN:
        raise SecretFileError(
            f"journal key file {path} must hold {JOURNAL_KEY_LEN} bytes: "
            f"{2 * JOURNAL_KEY_LEN} hex characters or {JOURNAL_KEY_LEN} raw bytes"
        )
    return key


def load_pepper_file(path: str | Path) -> bytes:
    """Read the deny-list pepper: hex text (an even number of hex digits, surrounding whitespace
    ignored) is decoded, anything else is taken as raw bytes; at least 16 bytes either way.

    :param path: the pepper file, mode 0600
    :raises SecretFileError: unreadable, readable by group or others, or shorter than 16 bytes
    """
    data = read_private_file(path, "pepper")
    pepper = _hex_or_none(data)
    if pepper is None:
        pepper = data
    if len(pepper) < MIN_PEPPER_LEN:
        raise SecretFileError(
            f"pepper file {path} must hold at least {MIN_PEPPER_LEN} bytes "
            f"({2 * MIN_PEPPER_LEN} hex characters)"
        )
    return pepper
