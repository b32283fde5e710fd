"""The errors of the configuration, under their own root.

``config/`` sits at the bottom of the layout beside ``apdu/`` and imports nothing of the
project (DESIGN.md: the standard library and pydantic), so its errors cannot derive from
:class:`apdu.errors.SscardError`. Where a failure becomes an answer they are answered like one:
:mod:`terminal.outcomes` classifies both, and ``sscard``'s edge
(:func:`terminal.cli.edge.run_command`) prints both as one line::

    ConfigError
    └── SettingsError   a settings file that cannot be read, does not parse or breaks the schema
"""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file (and the key)."""
