"""Synchronisation with the one-card platform, the client side (docs/sync.md, sync/openapi.yaml).

:mod:`sync.auth` signs and checks requests; :mod:`sync.client` is the terminal side (journal
upload from the ack cursor, signed lists, secrets, clock). The reference platform, the server
side of the same contract, is :mod:`platform_server`.
"""
