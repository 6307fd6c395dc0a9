"""Accuracy as the paper reports it, and the cross-benchmark summary.

Per benchmark: the accuracy of sample s is the share of questions whose s-th answer is right;
the reported accuracy is the mean over samples and its spread the population std over samples
(``numpy.std``, as the paper's script), both in percent. Beside them, a 95% interval over
questions (``medssr_nemo.eval.stats``: Wilson for one sample, a question bootstrap otherwise) and
the minimum detectable difference at this size. Across benchmarks: the macro average of the
benchmark means, and the rare-disease column (mean over the benchmarks flagged rare), each with a
stratified question-bootstrap interval when the per-question results are given.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from medssr_nemo.eval import stats


def benchmark_metrics(rows: Iterable[Mapping[str, Any]], num_samples: int) -> dict[str, Any]:
    """Accuracy mean/std (percent) over samples plus answer-validity counts."""
    rows = list(rows)
    per_sample: list[list[bool]] = [[] for _ in range(num_samples)]
    for row in rows:
        per_sample[int(row["sample"])].append(bool(row["correct"]))
    if any(len(s) != len(per_sample[0]) for s in per_sample) or not per_sample[0]:
        raise ValueError(f"every sample index needs one row per question; got {[len(s) for s in per_sample]}")
    accuracies = [100.0 * sum(s) / len(s) for s in per_sample]
    _, matrix = stats.correctness_matrix(rows, num_samples)
    interval = stats.accuracy_interval(matrix, seed=stats.seed_for(rows[0].get("benchmark")))
    mean = sum(accuracies) / len(accuracies)
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / len(accuracies))
    return {
        "num_questions": len(per_sample[0]),
        "num_samples": num_samples,
        "accuracy_pct_mean": mean,
        "accuracy_pct_std": std,
        "accuracy_pct_per_sample": accuracies,
        **interval.as_dict(),
        "mdd_pct": stats.minimum_detectable_difference(len(per_sample[0])),
        # outputs the answer reader found nothing in (what the paper's script calls invalid before
        # its recovery), those the re-decode gave a letter, and those still without one
        "no_answer_before_redecode": sum(1 for r in rows if r["free_answer"] is None),
        "recovered_by_redecode": sum(1 for r in rows if r["recovered"]),
        "unknown_after_redecode": sum(1 for r in rows if r["answer"] is None),
        "follows_format": sum(1 for r in rows if r["follows_format"]),
        "truncated": sum(1 for r in rows if r["finish_reason"] == "length"),
        "num_generations": len(rows),
    }


def summarize(per_benchmark: Mapping[str, Mapping[str, Any]], rare: Mapping[str, bool],
              correctness: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Macro average over all benchmarks and over the rare-disease ones (None if there are none);
    with ``correctness`` (benchmark -> (questions, samples) 0/1 matrix) also their bootstrap
    intervals (``macro_ci95_pct``, ``rare_ci95_pct``)."""
    means = {name: m["accuracy_pct_mean"] for name, m in per_benchmark.items()}
    rare_names = [name for name in means if rare.get(name)]
    out: dict[str, Any] = {
        "macro_accuracy_pct": sum(means.values()) / len(means) if means else None,
        "rare_accuracy_pct": sum(means[n] for n in rare_names) / len(rare_names) if rare_names else None,
        "num_benchmarks": len(means),
        "num_rare_benchmarks": len(rare_names),
    }
    if correctness is not None and means:
        out["macro_ci95_pct"] = list(_macro_interval([correctness[n] for n in means], "macro"))
        out["rare_ci95_pct"] = list(_macro_interval([correctness[n] for n in rare_names], "rare")) if rare_names else None
    return out


def _macro_interval(matrices: list[np.ndarray], name: str) -> tuple[float, float]:
    interval = stats.macro_bootstrap_interval(matrices, seed=stats.seed_for(name, len(matrices)))
    return interval.low_pct, interval.high_pct
