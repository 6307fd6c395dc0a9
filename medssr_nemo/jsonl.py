"""Reading JSONL files row by row with errors that name the file and line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


class RecordError(ValueError):
    """A question record (or the file line it came from) is malformed. Defined here, below
    ``records``, so both the row reader and the record type raise it without an import cycle."""


def read_json_document(path: str | os.PathLike, expected: type, description: str, encoding: str = "utf-8") -> Any:
    """The JSON document in ``path``, which must be a ``expected`` (list or dict); otherwise a
    ``RecordError`` naming the file, the parse error's line, or ``description`` (what it should hold)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding=encoding))
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(document, expected):
        raise RecordError(f"{path}: expected {description}, got {type(document).__name__}")
    return document


def iter_json_lines(path: str | os.PathLike, encoding: str = "utf-8"
                    ) -> Iterator[tuple[int, Any, json.JSONDecodeError | None]]:
    """Yield (line number, value, None) for each non-blank line, or (line number, None, the
    parse error) for a line that is not JSON; the caller decides whether that is fatal."""
    with open(path, encoding=encoding) as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as err:
                yield lineno, None, err


def iter_json_objects(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (``file:line``, object) for each non-blank line; a line that is not a JSON object
    raises ``RecordError`` naming the file and line."""
    for lineno, row, err in iter_json_lines(path, encoding):
        where = f"{Path(path)}:{lineno}"
        if err is not None:
            raise RecordError(f"{where}: not valid JSON ({err.msg})")
        if not isinstance(row, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row
