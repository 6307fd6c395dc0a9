"""One rule for where the data lives, used by every command (see docs/data.md):

1. ``$MEDSSR_DATA`` when set;
2. else ``../shared/data`` beside the project root (the checkout that holds this package), when
   that directory exists;
3. else the user's cache directory: ``$XDG_CACHE_HOME/medssr_nemo/data`` (``~/.cache/...`` when
   ``XDG_CACHE_HOME`` is unset), where ``medssr data download`` puts the files.

The root may not exist yet (a fresh machine before its first download): readers then fail on the
missing file, and the error says which command fetches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MEDSSR_DATA"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class DataRoot:
    path: Path
    reason: str          # which rule chose it, for `medssr data status`


def shared_candidate(project_root: Path | None = None) -> Path:
    return ((project_root or PROJECT_ROOT) / ".." / "shared" / "data").resolve()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "medssr_nemo" / "data"


def resolve_data_root(project_root: Path | None = None) -> DataRoot:
    """The data root and the rule that chose it."""
    env = os.environ.get(ENV_VAR)
    if env:
        return DataRoot(Path(env).expanduser(), f"${ENV_VAR}")
    shared = shared_candidate(project_root)
    if shared.is_dir():
        return DataRoot(shared, "../shared/data beside the project")
    return DataRoot(cache_root(), "the user cache directory (no $MEDSSR_DATA, no ../shared/data)")


def data_root() -> Path:
    return resolve_data_root().path
