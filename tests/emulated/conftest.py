"""Fixtures of the emulated tests: the pipeline's world (store, catalogue, deny list, clock)."""

from pipeline_support import world

__all__ = ["world"]
