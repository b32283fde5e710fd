"""Synchronisation with the one-card platform (docs/sync.md, sync/openapi.yaml).

:mod:`sync.auth` signs and checks requests; :mod:`sync.client` is the terminal side (journal
upload from the ack cursor, signed lists, secrets, clock); :mod:`sync.platform` is the
reference platform; :mod:`sync.hsm_service` the reference HSM service of the two-step mode.
"""
