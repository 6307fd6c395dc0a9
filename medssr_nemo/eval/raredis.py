"""RareDis-Sub, the paper's rare-disease benchmark (2122 questions), published only on the
Hugging Face Hub as the dataset ``tdlhl/RareDis-Sub``.

The loader reads a *snapshot* of that dataset repository: a directory as
``huggingface-cli download --repo-type dataset tdlhl/RareDis-Sub --local-dir DIR`` leaves it
(data files at the top or under ``data/``, as JSON lists, JSONL or Parquet, e.g. the hub's
``data/test-00000-of-00001.parquet``), or a single data file. Rows use the paper's evaluation
layout ``{id, question, gold, name}`` (options as ``A. ...`` lines in ``question``) or the
``{question, options, answer}`` layout; every question is rare.

Where the snapshot is found: an explicit path, else ``$MEDSSR_RAREDIS_SUB``, else the data root's
``eval/raredis_sub/`` (where ``medssr data download`` puts it), else the local Hugging Face cache; a download is tried last and, where the hub cannot be reached (as on machines
without network access), fails with an error that says how to provide the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medssr_nemo.eval.formats import record_from_row
from medssr_nemo.data.root import data_root
from medssr_nemo.records import QuestionRecord, RecordError

HUB_REPO_ID = "tdlhl/RareDis-Sub"
ENV_VAR = "MEDSSR_RAREDIS_SUB"
EXPECTED_COUNT = 2122
_DATA_SUFFIXES = (".json", ".jsonl", ".parquet")
_NOT_DATA = {"dataset_infos.json", "dataset_info.json", "config.json"}


class HubUnavailableError(FileNotFoundError):
    """The dataset is neither local nor downloadable here."""


def locate_snapshot(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The local snapshot directory (or file) of RareDis-Sub; see the module docstring."""
    if path:
        found = Path(path).expanduser()
        if not found.exists():
            raise FileNotFoundError(f"RareDis-Sub snapshot not found: {found}")
        return found
    if os.environ.get(ENV_VAR):
        return locate_snapshot(os.environ[ENV_VAR], download=False)

    fetched = data_root() / "eval" / "raredis_sub"      # `medssr data download --only raredis_sub`
    if fetched.is_dir() and any(fetched.glob("*.parquet")):
        return fetched
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - transformers depends on it
        raise HubUnavailableError(f"huggingface_hub is needed to fetch {HUB_REPO_ID}: {err}") from err
    try:
        return Path(snapshot_download(HUB_REPO_ID, repo_type="dataset", local_files_only=True))
    except Exception:  # not in the cache: fall through to a download
        pass
    if not download:
        raise HubUnavailableError(_how_to_provide(f"{HUB_REPO_ID} is not in the local Hugging Face cache"))
    try:
        return Path(snapshot_download(HUB_REPO_ID, repo_type="dataset", etag_timeout=10))
    except Exception as err:
        raise HubUnavailableError(_how_to_provide(
            f"cannot download {HUB_REPO_ID} from the Hugging Face Hub "
            f"({type(err).__name__}: {' '.join(str(err).split())[:160]})"
        )) from None


def _how_to_provide(reason: str) -> str:
    return (
        f"RareDis-Sub is published only on the Hugging Face Hub: {reason}. On a machine with hub "
        f"access run `huggingface-cli download --repo-type dataset {HUB_REPO_ID} --local-dir DIR`, "
        f"copy DIR here and set {ENV_VAR}=DIR (or eval.custom_benchmarks.<name>: {{path: DIR, "
        "format: raredis_hub, rare: true}); RareBench (benchmark 'rarebench') is the offline "
        "rare-disease benchmark"
    )


def data_files(snapshot: Path) -> list[Path]:
    """The data files of a snapshot, in path order (a file is its own only data file)."""
    if snapshot.is_file():
        return [snapshot]
    files = sorted(
        p for p in snapshot.rglob("*")
        if p.is_file() and p.suffix in _DATA_SUFFIXES and p.name not in _NOT_DATA
        and not any(part.startswith(".") for part in p.relative_to(snapshot).parts)
    )
    if not files:
        raise FileNotFoundError(f"RareDis-Sub snapshot {snapshot} holds no .json, .jsonl or .parquet data file")
    return files


def _rows(path: Path) -> list[tuple[str, object]]:
    """(where, row) pairs of one data file."""
    if path.suffix == ".parquet":
        import datasets

        return [(f"{path} row {i}", row) for i, row in enumerate(datasets.Dataset.from_parquet(str(path)))]
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8-sig") as handle:
            for lineno, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append((f"{path}:{lineno}", json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise RecordError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        return rows
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(items, dict) and isinstance(items.get("data"), list):
        items = items["data"]
    if not isinstance(items, list):
        raise RecordError(f"{path}: expected a JSON list of question objects, got {type(items).__name__}")
    return [(f"{path} item {i}", row) for i, row in enumerate(items)]


def read_raredis_snapshot(snapshot: str | os.PathLike) -> list[QuestionRecord]:
    """Every RareDis-Sub question of a local snapshot (directory or data file), ``rare=True``."""
    records, seen = [], set()
    for path in data_files(Path(snapshot)):
        for where, row in _rows(path):
            record = record_from_row(row, where, default_id=f"raredis-{len(records)}", source="raredis_sub")
            if record.id in seen:
                raise RecordError(f"{where}: duplicate question id {record.id!r}")
            seen.add(record.id)
            record.rare = True
            records.append(record)
    return records
