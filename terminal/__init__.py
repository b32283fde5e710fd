"""The terminal: the reading flows, the command-line interface and (later) the daemon.

Nothing imports this package; it composes ``apdu``, ``ecard``, ``drivers``, ``offline_store``,
``sync`` and ``config`` (:mod:`terminal.compose`), and its command line registers the reference
platform's operator commands (:mod:`platform_server.cli`).
"""
