"""The reference one-card platform (一卡通平台): the server side of docs/sync.md.

For development, the tests and small sites (a museum with three gates): terminals upload their
journals, fetch signed deny and trust lists, the catalogue and their secrets, send heartbeats
and decode opaque e-card codes. SQLite by default, PostgreSQL by URL; FastAPI and uvicorn.

::

    platform = Platform.init("sqlite:///platform.db", "keys/")      # sscard platform init
    credentials = platform.add_terminal("T1", ("gate",), "440100")  # sscard platform terminal add
    PlatformServer(create_app("sqlite:///platform.db", "keys/"), "127.0.0.1", 8480).run()

Modules: :mod:`~platform_server.db` (schema), :mod:`~platform_server.keys` (keys folder),
:mod:`~platform_server.batch` (an upload's format), :mod:`~platform_server.journal` (storing
uploads), :mod:`~platform_server.chains` (listing, verifying), :mod:`~platform_server.denylist`,
:mod:`~platform_server.trust`, :mod:`~platform_server.terminals` (keys, heartbeats, secrets),
:mod:`~platform_server.catalogue`, :mod:`~platform_server.ecard` (decode table),
:mod:`~platform_server.service` (the facade), :mod:`~platform_server.app` (HTTP),
:mod:`~platform_server.server` (uvicorn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apdu.faces import lazy_getattr

if TYPE_CHECKING:
    from platform_server.app import create_app
    from platform_server.errors import (
        AlreadyExists,
        Busy,
        InvalidInput,
        NotFound,
        PlatformConfigError,
        PlatformError,
    )
    from platform_server.keys import PlatformKeys
    from platform_server.server import PlatformServer
    from platform_server.service import Platform, Rotation

#: name → the module that defines it: imported on first use, so that ``sscard`` registers
#: ``sscard platform`` (:mod:`platform_server.cli`) without loading FastAPI and SQLAlchemy
_EXPORTS = {
    "create_app": "platform_server.app",
    "AlreadyExists": "platform_server.errors",
    "Busy": "platform_server.errors",
    "InvalidInput": "platform_server.errors",
    "NotFound": "platform_server.errors",
    "PlatformConfigError": "platform_server.errors",
    "PlatformError": "platform_server.errors",
    "PlatformKeys": "platform_server.keys",
    "PlatformServer": "platform_server.server",
    "Platform": "platform_server.service",
    "Rotation": "platform_server.service",
}

__all__ = [
    "AlreadyExists",
    "Busy",
    "InvalidInput",
    "NotFound",
    "Platform",
    "PlatformConfigError",
    "PlatformError",
    "PlatformKeys",
    "PlatformServer",
    "Rotation",
    "create_app",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
