"""The one base of everything the project opens and closes: ``with`` closes it.

Like :mod:`apdu.errors`, a root every package may use (``tests/unit/test_layers.py``).
"""

from __future__ import annotations

from typing import Self


class Closing:
    """A resource used with ``with``: entering returns it, leaving calls :meth:`close`,
    whether or not the block raised.

    A subclass defines :meth:`close`; a second call of it must do nothing.
    """

    def close(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
