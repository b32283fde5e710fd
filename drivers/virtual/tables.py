"""The one check every table of a persona file starts with (``[keys]``, ``[pin]``,
``[medical]``, ``[transit]``, ``[medical_account]``): it is a table, and names no key the card
does not know. Each table's module raises its own error class, with the same messages.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["checked_table"]


def checked_table(
    table: Any, allowed: Collection[str], where: str, error: type[ValueError]
) -> dict[str, Any]:
    """Return a persona file's table once it is a table with no key but ``allowed``.

    :param table: the value from the document
    :param allowed: the keys the table may have
    :param where: the table, for messages (``persona.toml [pin]``)
    :param error: the error class to raise
    :raises ValueError: ``error``, for a value that is not a table or has unknown keys
    """
    if not isinstance(table, dict):
        raise error(f"{where}: must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise error(f"{where}: unknown keys {unknown}")
    return table
