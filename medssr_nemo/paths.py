"""Where the shared data lives: ``MEDSSR_DATA``, else ``../shared/data`` beside the project root
(the checkout that holds this package), else ``../shared/data`` beside the working directory."""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    return _PROJECT_ROOT


def data_root() -> Path:
    env = os.environ.get("MEDSSR_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"MEDSSR_DATA={env} is not a directory")
        return root
    for base in (_PROJECT_ROOT, Path.cwd()):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "cannot find the shared data: set MEDSSR_DATA, or place it at ../shared/data "
        f"beside the project ({_PROJECT_ROOT})"
    )


def data_path(relative: str) -> Path:
    """A file under the data root; a missing file is an error naming the full path."""
    path = data_root() / relative
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    return path
