"""The reference one-card platform (一卡通平台): the server side of docs/sync.md.

For development, the tests and small sites (a museum with three gates): terminals upload their
journals, fetch signed deny and trust lists, the catalogue and their secrets, send heartbeats
and decode opaque e-card codes. SQLite by default, PostgreSQL by URL; FastAPI and uvicorn.

::

    platform = Platform.init("sqlite:///platform.db", "keys/")      # sscard platform init
    credentials = platform.add_terminal("T1", ("gate",), "440100")  # sscard platform terminal add
    PlatformServer(create_app("sqlite:///platform.db", "keys/"), "127.0.0.1", 8480).run()

Modules: :mod:`~sync.platform.db` (schema), :mod:`~sync.platform.keys` (keys folder),
:mod:`~sync.platform.journal` (uploads), :mod:`~sync.platform.chains` (listing, verifying),
:mod:`~sync.platform.denylist`, :mod:`~sync.platform.trust`, :mod:`~sync.platform.terminals`
(keys, heartbeats, secrets), :mod:`~sync.platform.catalogue`, :mod:`~sync.platform.ecard`
(decode table), :mod:`~sync.platform.service` (the facade), :mod:`~sync.platform.app` (HTTP),
:mod:`~sync.platform.server` (uvicorn).
"""

from sync.platform.app import create_app
from sync.platform.errors import (
    AlreadyExists,
    Busy,
    InvalidInput,
    NotFound,
    PlatformConfigError,
    PlatformError,
)
from sync.platform.keys import PlatformKeys
from sync.platform.server import PlatformServer
from sync.platform.service import Platform, Rotation

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
