"""Where converted models are cached (``MEDSSR_CACHE``, default ``~/.cache/medssr_nemo``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("MEDSSR_CACHE", Path.home() / ".cache" / "medssr_nemo"))
    root.mkdir(parents=True, exist_ok=True)
    return root
