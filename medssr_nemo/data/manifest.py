"""The data manifest (``manifest.json`` beside this module): every file the project reads from
the data root, with its size, sha256, dataset (and so licence) and upstream sources in fallback
order. ``medssr data download`` fetches from it and ``medssr data status`` checks against it; a
test checks it against the data's own ``SHA256SUMS`` so the two cannot drift.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from medssr_nemo.artifacts import file_sha256

__all__ = ["FileEntry", "Manifest", "Source", "file_sha256", "load_manifest"]

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
GROUPS = ("eval", "train", "knowledge")
HF_ENDPOINT_ENV = "HF_ENDPOINT"


@dataclass(frozen=True)
class Source:
    """One place a file can come from: a URL, or a Hugging Face Hub file (``hub`` = repo id)."""

    url: str = ""
    hub: str = ""
    file: str = ""
    revision: str = "main"
    extract: str = ""        # a member of the zip/tar this source downloads
    convert: str = ""        # a conversion of the downloaded file (medssr_nemo.data.convert)

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        endpoint = os.environ.get(HF_ENDPOINT_ENV, "https://huggingface.co").rstrip("/")
        return f"{endpoint}/datasets/{self.hub}/resolve/{quote(self.revision, safe='')}/{self.file}"

    def describe(self) -> str:
        where = f"hub dataset {self.hub}@{self.revision}:{self.file}" if self.hub else self.url
        if self.extract:
            where += f" (member {self.extract})"
        if self.convert:
            where += f" (converted by {self.convert})"
        return where


@dataclass(frozen=True)
class Dataset:
    name: str
    group: str
    title: str
    licence: str
    homepage: str
    note: str = ""


@dataclass(frozen=True)
class FileEntry:
    path: str                       # relative to the data root
    dataset: str
    size: int | None
    sha256: str | None              # None: not pinned (RareDis-Sub); checked by its row count instead
    sources: tuple[Source, ...]
    optional: bool = False          # a run goes on without it (and says so)
    rows: int | None = None


@dataclass(frozen=True)
class Manifest:
    datasets: dict[str, Dataset]
    files: tuple[FileEntry, ...] = field(default_factory=tuple)

    def entry(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def select(self, only: Sequence[str] = ()) -> list[FileEntry]:
        """Files named by ``only``: groups (eval, train, knowledge), dataset names, or paths
        (a directory prefix selects what it holds). Empty: every file."""
        if not only:
            return list(self.files)
        chosen: list[FileEntry] = []
        for token in only:
            token = token.strip().strip("/")
            hits = [f for f in self.files if token in (f.dataset, self.datasets[f.dataset].group, f.path)
                    or f.path.startswith(token + "/")]
            if not hits:
                raise LookupError(f"--only {token!r} names no data file; use a group ({', '.join(GROUPS)}), a dataset "
                                  f"({', '.join(self.datasets)}) or a path under the data root (see `medssr data status`)")
            chosen += [f for f in hits if f not in chosen]
        return chosen


def _source(raw: dict[str, Any], where: str) -> Source:
    known = {"url", "hub", "file", "revision", "extract", "convert"}
    if set(raw) - known or bool(raw.get("url")) == bool(raw.get("hub")):
        raise ValueError(f"{where}: a source is {{url}} or {{hub, file[, revision]}} with optional extract/convert; "
                         f"got keys {sorted(raw)}")
    return Source(**raw)


def parse_manifest(doc: dict[str, Any], where: str = "manifest") -> Manifest:
    datasets = {name: Dataset(name=name, **{k: v for k, v in spec.items()}) for name, spec in doc["datasets"].items()}
    files = []
    for index, raw in enumerate(doc["files"]):
        at = f"{where} files[{index}] ({raw.get('path')})"
        if raw.get("dataset") not in datasets:
            raise ValueError(f"{at}: dataset {raw.get('dataset')!r} is not one of {sorted(datasets)}")
        if not raw.get("sources"):
            raise ValueError(f"{at}: no sources")
        if raw.get("sha256") is None and not raw.get("optional"):
            raise ValueError(f"{at}: a required file needs a sha256")
        files.append(FileEntry(path=raw["path"], dataset=raw["dataset"], size=raw.get("size"), sha256=raw.get("sha256"),
                               sources=tuple(_source(s, at) for s in raw["sources"]),
                               optional=bool(raw.get("optional", False)), rows=raw.get("rows")))
    return Manifest(datasets=datasets, files=tuple(files))


@lru_cache(maxsize=4)
def _load(path: str) -> Manifest:
    return parse_manifest(json.loads(Path(path).read_text(encoding="utf-8")), where=path)


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    return _load(str(path or MANIFEST_PATH))


def fetch_hint(relative_paths: Iterable[str]) -> str:
    """The command that fetches these files or directories (paths relative to the data root)."""
    manifest = load_manifest()
    names: list[str] = []
    for raw in relative_paths:
        path = str(raw).strip("/")
        if path in GROUPS:
            hits = [path]
        else:
            hits = sorted({f.dataset for f in manifest.files if f.path == path or f.path.startswith(path + "/")})
        names += [n for n in hits if n not in names]
    only = f" --only {' '.join(names)}" if names else ""
    return f"fetch it with `medssr data download{only}` (docs/data.md)"


def required_for_run(cfg: Any, manifest: Manifest | None = None) -> list[FileEntry]:
    """What ``medssr run`` with ``cfg`` reads: the whole evaluation suite (scored and used for
    decontamination), the knowledge files, the training pools it names and PubMedQA's test ids
    (always excluded from training); RareDis-Sub when the run evaluates it or it can stand
    beside RareBench (optional: missing, the report says RareBench stands in)."""
    manifest = manifest or load_manifest()
    pool_dataset = {"medmcqa": "medmcqa", "pubmedqa": "pubmedqa", "mmlu": "mmlu_medical"}
    wanted = {pool_dataset.get(p, p) for p in cfg.data.pools}
    out = []
    for f in manifest.files:
        group = manifest.datasets[f.dataset].group
        if f.optional:
            if f.dataset == "raredis_sub" and ({"raredis_sub", "rarebench"} & set(cfg.eval.benchmarks)):
                out.append(f)
        elif group in ("eval", "knowledge") or f.dataset in wanted or f.path == "train/pubmedqa/test_ground_truth.json":
            out.append(f)
    return out
