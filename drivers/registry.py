"""One registry of back-ends per device kind: a name → a class, imported on first use.

Readers, code scanners and indicators each have one small interface and several back-ends
(python-can's ``Bus(interface=…)``): the settings and the command line name a back-end, the
registry imports its module only then (the camera needs OpenCV, the serial one pyserial, the
PC/SC one pyscard), and an unknown name is one clear error that lists the known ones::

    SCANNERS: Registry[Scanner] = Registry("scanner", ScannerError, {
        "serial": "drivers.scanners.serial:SerialScanner",
    })
    SCANNERS.load("serial")                                # the class
    SCANNERS.create({"backend": "serial", "port": "/dev/ttyACM0"})   # an instance
    SCANNERS.create("stdin")

A registry is a read-only mapping of name → target, so ``sorted(SCANNERS)`` lists the names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from apdu.errors import SscardError

T = TypeVar("T")

#: the key of a settings spec that names the back-end; the others are its arguments
BACKEND_KEY = "backend"


class Registry(Mapping[str, str], Generic[T]):
    """The back-ends of one device kind, by name.

    :param kind: what a back-end is, for messages (``scanner``, ``indicator``, ``reader``)
    :param error: the error class of that kind, raised for an unknown or unloadable name
    :param targets: name → ``"package.module:Class"``, imported on first use
    """

    def __init__(
        self, kind: str, error: type[SscardError], targets: Mapping[str, str] | None = None
    ) -> None:
        self.kind = kind
        self.error = error
        self._targets: dict[str, str] = {}
        for name, target in (targets or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str) -> None:
        """Add a back-end (a plug-in's too), or replace the one of that name.

        :param name: the name settings and options use
        :param target: ``"package.module:Class"``
        :raises ValueError: a target that is not ``module:Class``
        """
        module_name, _, class_name = target.partition(":")
        if not module_name or not class_name.isidentifier():
            raise ValueError(f"{self.kind} {name!r}: {target!r} is not 'module:Class'")
        self._targets[name] = target

    def load(self, name: str) -> type[T]:
        """The class registered under ``name``, its module imported now.

        :param name: the back-end's name
        :raises SscardError: (the registry's error class) an unknown name, listing the known
            ones, or a back-end whose module cannot be imported
        """
        try:
            target = self._targets[name]
        except KeyError:
            raise self.error(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._targets))}"
            ) from None
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise self.error(f"{self.kind} {name!r} cannot be loaded: {exc}") from exc
        cls: type[T] = getattr(module, class_name)
        return cls

    def create(self, spec: str | Mapping[str, Any], **defaults: Any) -> T:
        """A back-end built from a settings spec: its name, or a table whose ``backend`` key
        names it and whose other keys are its keyword arguments.

        :param spec: ``"stdin"`` or ``{"backend": "serial", "port": "/dev/ttyACM0"}``
        :param defaults: keyword arguments the spec's own keys override
        :raises SscardError: (the registry's error class) no ``backend`` key, an unknown name,
            an unloadable back-end, or arguments the back-end does not take
        """
        if isinstance(spec, str):
            name, arguments = spec, {}
        else:
            arguments = dict(spec)
            name = arguments.pop(BACKEND_KEY, None)
            if not isinstance(name, str):
                raise self.error(f"a {self.kind} needs a {BACKEND_KEY!r} name")
        cls = self.load(name)
        try:
            return cls(**{**defaults, **arguments})
        except TypeError as exc:  # an argument the back-end does not know: the spec's fault
            raise self.error(f"{self.kind} {name!r}: {exc}") from exc

    def by_class_name(self, class_name: str) -> type[T] | None:
        """The back-end whose class is called ``class_name`` (a package's lazy attributes),
        else ``None``.

        :param class_name: e.g. ``"SerialScanner"``
        :raises SscardError: (the registry's error class) its module cannot be imported
        """
        for name, target in self._targets.items():
            if target.partition(":")[2] == class_name:
                return self.load(name)
        return None

    def __getitem__(self, name: str) -> str:
        return self._targets[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._targets)})"
