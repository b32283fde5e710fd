"""A process that owns a terminal's store as the daemon does, for the tests of the operator
commands' fallback: ``python tests/admin_holder.py CONFIG serve|hold``.

``serve``: opens the store and answers the admin socket (terminal/daemon/admin.py) with a real
sync on request; ``hold``: opens the store and answers nothing (a one-shot command holding it).
Prints ``ready`` when it holds the store; lets it go when its standard input closes.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import load_settings
from ecard import save_trust_list
from offline_store import Store, load_key_file, load_pepper_file
from sync.client import SyncClient
from sync.config import SyncConfig
from terminal import operator
from terminal.daemon.admin import AdminServer


def main() -> None:
    settings = load_settings(sys.argv[1])
    assert settings.pepper_file is not None and settings.journal_key_file is not None
    store = Store.open(
        settings.database,
        pepper=load_pepper_file(settings.pepper_file),
        journal_key=load_key_file(settings.journal_key_file),
    )
    lock = threading.Lock()

    def sync_now() -> dict[str, object]:
        with (
            lock,
            SyncClient(
                SyncConfig.from_settings(settings), store, trust_saver=save_trust_list
            ) as client,
        ):
            return operator.sync_answer(client.sync_once()).to_json()

    server = AdminServer(
        settings=settings,
        store=store,
        store_lock=lock,
        status=lambda: {"daemon": "running", "holder": "tests/admin_holder.py"},
        sync_now=sync_now,
    )
    if sys.argv[2] == "serve":
        server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.close()
    store.close()


if __name__ == "__main__":
    main()
