"""Reading finished evaluation results back: the per-question correctness of one checkpoint on
one benchmark (``<checkpoint>/<benchmark>/generations.jsonl``) and the identity it was made under
(``protocol.json``), for intervals and paired comparisons."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, MutableMapping

import numpy as np

from medssr_nemo.eval import stats

GENERATIONS, IDENTITY = "generations.jsonl", "protocol.json"


@dataclass
class BenchmarkResult:
    """One checkpoint's answers on one benchmark, as a correctness matrix."""

    name: str
    directory: Path
    identity: dict[str, Any]        # protocol.json: protocol, question_ids_sha256, checkpoint, ...
    question_ids: list[str]
    correct: np.ndarray             # (questions, samples) of 0/1, rows in question_ids order


def read_benchmark_result(directory: str | Path) -> BenchmarkResult:
    """Correctness per (question, sample) from a finished benchmark directory."""
    directory = Path(directory)
    identity_path, generations = directory / IDENTITY, directory / GENERATIONS
    for path in (identity_path, generations):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {directory} is not a finished benchmark evaluation "
                                    f"(it needs {IDENTITY} and {GENERATIONS})")
    identity = json.loads(identity_path.read_text(encoding="utf-8"))
    rows = []
    with open(generations, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append({"id": row["id"], "sample": row["sample"], "correct": row["correct"]})
            except (ValueError, KeyError) as err:
                raise ValueError(f"{generations}:{number}: expected a JSON row with id, sample and correct ({err})") from None
    num_samples = int(identity.get("protocol", {}).get("num_samples") or 1 + max(int(r["sample"]) for r in rows))
    ids, matrix = stats.correctness_matrix(rows, num_samples)
    return BenchmarkResult(directory.name, directory, identity, ids, matrix)


def checkpoint_correctness(checkpoint_dir: str | Path, benchmarks: Mapping[str, MutableMapping[str, Any]]) -> dict[str, np.ndarray]:
    """Correctness matrices of a checkpoint's benchmarks (``benchmarks``: name -> metrics). Metrics
    written before intervals existed get theirs added in place."""
    matrices = {}
    for name, metrics in benchmarks.items():
        result = read_benchmark_result(Path(checkpoint_dir) / name)
        matrices[name] = result.correct
        if "ci95_pct" not in metrics:
            metrics.update(stats.accuracy_interval(result.correct, seed=stats.seed_for(name)).as_dict())
            metrics["mdd_pct"] = stats.minimum_detectable_difference(result.correct.shape[0])
    return matrices
