"""The offline store (SQLite): deny list, trust list, catalogue, journal, replay cache, audit.

Its contents arrive with the offline-store work (issue 4); the package exists so the layout of
DESIGN.md holds from the first commit."""
