"""Terminal settings and the ready-made scenario profiles."""

from pathlib import Path

#: the built-in scenario profiles (``config/profiles/*.toml``, shipped with the package)
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
