"""The terminal: the reading flows, the command-line interface and (later) the daemon.

Nothing imports this package; it composes ``apdu``, ``drivers``, ``offline_store`` and ``sync``.
"""
