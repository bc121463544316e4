"""Where runs live by default."""

from __future__ import annotations

from pathlib import Path

import platformdirs


def default_runs_dir() -> Path:
    """The user's data directory for chipctl runs (overridden by --runs-dir)."""
    return Path(platformdirs.user_data_dir("chipctl", appauthor=False)) / "runs"
