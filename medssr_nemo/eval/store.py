"""Result files: an append-only partial log that survives a kill (final files are written with
``medssr_nemo.artifacts``).

The partial log holds one JSON line per finished (question, sample), keyed by
(benchmark, question id, sample). Lines are appended and fsync-ed chunk by chunk; a kill can
leave at most one torn last line, which ``load`` drops (and cuts from the file, so later
appends start on a clean line).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from medssr_nemo.artifacts import append_jsonl_durable, read_jsonl_log

Key = tuple[str, str, int]


def row_key(row: dict[str, Any]) -> Key:
    return (row["benchmark"], row["id"], int(row["sample"]))


class PartialLog:
    """Append-only JSONL of finished samples."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[Key, dict[str, Any]]:
        """Finished rows by key; a torn final line (killed mid-write) is dropped from the file."""
        rows = read_jsonl_log(self.path, remedy="delete the file to restart this benchmark")
        return {row_key(row): row for row in rows}

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        append_jsonl_durable(self.path, rows)
