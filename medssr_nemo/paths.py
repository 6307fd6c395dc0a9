"""Where the project and its data live. The data root follows one rule everywhere
(``medssr_nemo.data.root``): ``$MEDSSR_DATA``, else ``../shared/data`` beside the project, else
the user's cache directory, which ``medssr data download`` fills."""

from __future__ import annotations

from pathlib import Path

from medssr_nemo.data.manifest import fetch_hint
from medssr_nemo.data.root import PROJECT_ROOT, data_root

__all__ = ["project_root", "data_root", "data_path"]


def project_root() -> Path:
    return PROJECT_ROOT


def data_path(relative: str) -> Path:
    """A file under the data root; a missing file is an error naming the full path and the
    command that fetches it."""
    path = data_root() / relative
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}; {fetch_hint([relative])}")
    return path
