"""What every step of a sync works with: the signed transport to the platform, the open offline
store and the sync settings. The :class:`~sync.uploader.Uploader` and the
:class:`~sync.lists.ListUpdater` are both :class:`SyncStep`\\ s over the same three, made once
by :class:`~sync.client.SyncClient`."""

from __future__ import annotations

from offline_store import Store
from sync.config import SyncConfig
from sync.transport import SignedTransport

__all__ = ["SyncStep"]


class SyncStep:
    """The base of a sync step: the transport, the store and the settings it uses.

    :param transport: the signed transport to the platform
    :param store: the open offline store the step reads and writes
    :param config: the sync settings
    """

    def __init__(self, transport: SignedTransport, store: Store, config: SyncConfig) -> None:
        self.transport = transport
        self.store = store
        self.config = config
