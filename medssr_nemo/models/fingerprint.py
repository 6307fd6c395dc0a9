"""A checkpoint's weight fingerprint: what evaluation results are keyed by, so new weights in
the same place are never mistaken for the ones already evaluated.

The fingerprint is sha256 over (file name, sha256 of the file) of every weight file of the
model directory. File hashes are remembered by (absolute path, size, mtime) in
``<cache_root>/weights_sha256.json``, so an unchanged multi-GB checkpoint is read once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from medssr_nemo.artifacts import file_sha256
from medssr_nemo.models.cache import cache_root
from medssr_nemo.models.loading import local_model_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".distcp")


def weight_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def directory_fingerprint(directory: str | os.PathLike) -> str:
    """sha256 over the names and contents of the weight files under ``directory``."""
    directory = Path(directory)
    files = weight_files(directory)
    if not files:
        raise FileNotFoundError(f"model directory {directory} holds no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    cache = _HashCache()
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(directory).as_posix()}\0{cache.sha256(path)}\n".encode())
    cache.save()
    return digest.hexdigest()


def weights_fingerprint(reference: str) -> str:
    """The fingerprint of the weights ``reference`` loads (embedded name, directory or hub id);
    a hub id with no local snapshot is fingerprinted by its name alone (``name_only``)."""

    directory = local_model_dir(reference)
    return directory_fingerprint(directory) if directory is not None else name_only(reference)


def name_only(reference: str) -> str:
    """The fingerprint of a hub id whose weights are not on this machine: its name, which says
    nothing about the weights; loading the model fetches them, after which they can be hashed."""
    return f"hub:{reference}"


class _HashCache:
    def __init__(self) -> None:
        self.path = cache_root() / "weights_sha256.json"
        try:
            self.entries: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self.entries:
            self.entries[key] = file_sha256(path)
            self.dirty = True
        return self.entries[key]

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.entries, indent=0, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:   # a read-only cache only costs re-hashing next time
            tmp.unlink(missing_ok=True)
