"""The append-only log of sampled answers: the resume point of ``medssr label``.

Line 1 is a header ``{"identity": {...}}`` (input digest, model, sampling settings); every further
line is one finished question ``{"id", "answers", ...}``. Questions are appended (flushed and
fsynced) as they finish, so a kill loses at most the questions in flight. On reopening, a header
that differs from the run's identity is an error (samples from two settings must never mix), and a
torn last line (the kill hit mid-write) is cut off before anything new is appended.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medssr_nemo.artifacts import CorruptLogError, append_jsonl_durable, read_jsonl_log, write_text_atomic


class SamplesLogError(ValueError):
    """The samples log belongs to another run (different input, model or sampling settings)."""


class SamplesLog:
    def __init__(self, path: str | os.PathLike, identity: dict[str, Any]) -> None:
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity, sort_keys=True))  # normalised (tuples -> lists)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()
        else:
            write_text_atomic(self.path, json.dumps({"identity": self.identity}, sort_keys=True) + "\n")

    def _load(self) -> None:
        try:
            lines = read_jsonl_log(self.path, remedy="delete the file to start over")
        except CorruptLogError as err:
            raise SamplesLogError(str(err)) from None
        if not lines:
            raise SamplesLogError(f"{self.path}: empty samples log (no header line); delete it to start over")
        header = lines[0]
        if not isinstance(header, dict) or header.get("identity") != self.identity:
            raise SamplesLogError(
                f"{self.path} was written by a run with other settings: "
                f"{_differences((header.get('identity') if isinstance(header, dict) else None) or {}, self.identity)}. "
                "Delete it, or choose another label.output_name, to label with the new settings"
            )
        for entry in lines[1:]:
            self.entries[entry["id"]] = entry

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Add finished questions durably (one write, flush and fsync per call)."""
        append_jsonl_durable(self.path, entries)
        for entry in entries:
            self.entries[entry["id"]] = entry


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{prefix}{key}.")
            if inner:
                diffs.append(inner)
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} in the log, {b!r} now")
        if len(diffs) >= 5:
            break
    return "; ".join(diffs)
