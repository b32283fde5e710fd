"""The reference one-card platform (一卡通平台): the server side of docs/sync.md.

For development, the tests and small sites (a museum with three gates): terminals upload their
journals, fetch signed deny and trust lists, the catalogue and their secrets, send heartbeats
and decode opaque e-card codes. SQLite by default, PostgreSQL by URL; FastAPI and uvicorn.

::

    platform = Platform.init("sqlite:///platform.db", "keys/")      # sscard platform init
    credentials = platform.add_terminal("T1", ("gate",), "440100")  # sscard platform terminal add
    PlatformServer(create_app("sqlite:///platform.db", "keys/"), "127.0.0.1", 8480).run()

Modules: :mod:`~platform_server.db` (schema), :mod:`~platform_server.keys` (keys folder),
:mod:`~platform_server.journal` (uploads), :mod:`~platform_server.chains` (listing, verifying),
:mod:`~platform_server.denylist`, :mod:`~platform_server.trust`, :mod:`~platform_server.terminals`
(keys, heartbeats, secrets), :mod:`~platform_server.catalogue`, :mod:`~platform_server.ecard`
(decode table), :mod:`~platform_server.service` (the facade), :mod:`~platform_server.app` (HTTP),
:mod:`~platform_server.server` (uvicorn).
"""

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
