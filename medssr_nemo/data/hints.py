"""A missing data file's error names the command that fetches it: every command's error guard
(``cli.common.run_guarded``) passes ``FileNotFoundError`` through ``with_fetch_hint``."""

from __future__ import annotations

import re
from pathlib import Path
from medssr_nemo.data.manifest import fetch_hint
from medssr_nemo.data.root import data_root

_HINT = "medssr data download"


def missing_data_paths(message: str, root: Path) -> list[str]:
    """Paths under ``root`` (relative to it) that ``message`` names."""
    found = []
    for prefix in {str(root), str(root.resolve())}:
        for match in re.finditer(re.escape(prefix.rstrip("/")) + r"/([^\s:;,'\")]+)", message):
            found.append(match.group(1).rstrip("."))
    return found


def with_fetch_hint(err: FileNotFoundError) -> str:
    """The error's text, plus which command fetches the file when it lies under the data root."""
    text = str(err)
    if _HINT in text:
        return text

    names = missing_data_paths(text + " " + str(getattr(err, "filename", "") or ""), data_root())
    return f"{text}; {fetch_hint(names)}" if names else text
