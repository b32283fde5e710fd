"""The terminal daemon (``sscard run``) and its admin socket (:mod:`terminal.daemon.admin`)."""
