"""Synchronisation with the one-card platform and the reference platform server.

Its contents arrive with the sync work (issue 6); the package exists so the layout of
DESIGN.md holds from the first commit."""
