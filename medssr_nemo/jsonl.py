"""Reading JSONL files row by row with errors that name the file and line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from medssr_nemo.records import RecordError


def iter_json_objects(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (``file:line``, object) for each non-blank line; a line that is not a JSON object
    raises ``RecordError`` naming the file and line."""
    path = Path(path)
    with open(path, encoding=encoding) as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecordError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row
