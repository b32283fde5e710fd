"""Lazy package faces (PEP 562): a package's ``__init__`` lists its public names, each with the
module that defines it, and imports that module only when the name is first used.

Like :mod:`apdu.errors` and :mod:`apdu.resources`, a root every package may use
(``tests/unit/test_layers.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of a lazy package face.

    ``__getattr__ = lazy_getattr(__name__, _EXPORTS)``; the face keeps ``_EXPORTS`` as a
    literal dict, which the layer test reads to see through the face.

    :param package: the package's name, for the error message
    :param exports: public name → the module that defines it
    :raises: nothing (the returned function raises :class:`AttributeError` for a name not in
        ``exports``)
    """

    def exported(name: str) -> Any:
        """A name of the package's ``__all__``, from its module (imported on first use)."""
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return exported
