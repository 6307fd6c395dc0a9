"""Result files: an append-only partial log that survives a kill (final files are written with
``medssr_nemo.artifacts``).

The partial log holds one JSON line per finished (question, sample), keyed by
(benchmark, question id, sample). Lines are appended and fsync-ed chunk by chunk; a kill can
leave at most one torn last line, which ``load`` drops (and cuts from the file, so later
appends start on a clean line).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

Key = tuple[str, str, int]


def row_key(row: dict[str, Any]) -> Key:
    return (row["benchmark"], row["id"], int(row["sample"]))


class PartialLog:
    """Append-only JSONL of finished samples."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[Key, dict[str, Any]]:
        """Finished rows by key; a torn final line (killed mid-write) is dropped from the file."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        rows: dict[Key, dict[str, Any]] = {}
        good_end = 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("unterminated line")
                row = json.loads(line)
            except ValueError:
                if good_end + len(line) < len(data):  # a bad line in the middle is not a torn write
                    raise ValueError(f"{self.path}: corrupt line at byte {good_end}; delete the file to restart "
                                     "this benchmark") from None
                break
            rows[row_key(row)] = row
            good_end += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        return rows

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
        if not text:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
