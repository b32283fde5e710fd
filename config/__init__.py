"""Terminal settings and the ready-made scenario profiles."""
