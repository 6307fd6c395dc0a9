"""Accuracy as the paper reports it, and the cross-benchmark summary.

Per benchmark: the accuracy of sample s is the share of questions whose s-th answer is right;
the reported accuracy is the mean over samples and its spread the population std over samples
(``numpy.std``, as the paper's script), both in percent. Across benchmarks: the macro average of
the benchmark means, and the rare-disease column (mean over the benchmarks flagged rare).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping


def benchmark_metrics(rows: Iterable[Mapping[str, Any]], num_samples: int) -> dict[str, Any]:
    """Accuracy mean/std (percent) over samples plus answer-validity counts."""
    rows = list(rows)
    per_sample: list[list[bool]] = [[] for _ in range(num_samples)]
    for row in rows:
        per_sample[int(row["sample"])].append(bool(row["correct"]))
    if any(len(s) != len(per_sample[0]) for s in per_sample) or not per_sample[0]:
        raise ValueError(f"every sample index needs one row per question; got {[len(s) for s in per_sample]}")
    accuracies = [100.0 * sum(s) / len(s) for s in per_sample]
    mean = sum(accuracies) / len(accuracies)
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / len(accuracies))
    return {
        "num_questions": len(per_sample[0]),
        "num_samples": num_samples,
        "accuracy_pct_mean": mean,
        "accuracy_pct_std": std,
        "accuracy_pct_per_sample": accuracies,
        # outputs the answer reader found nothing in (what the paper's script calls invalid before
        # its recovery), those the re-decode gave a letter, and those still without one
        "no_answer_before_redecode": sum(1 for r in rows if r["free_answer"] is None),
        "recovered_by_redecode": sum(1 for r in rows if r["recovered"]),
        "unknown_after_redecode": sum(1 for r in rows if r["answer"] is None),
        "follows_format": sum(1 for r in rows if r["follows_format"]),
        "truncated": sum(1 for r in rows if r["finish_reason"] == "length"),
        "num_generations": len(rows),
    }


def summarize(per_benchmark: Mapping[str, Mapping[str, Any]], rare: Mapping[str, bool]) -> dict[str, Any]:
    """Macro average over all benchmarks and over the rare-disease ones (None if there are none)."""
    means = {name: m["accuracy_pct_mean"] for name, m in per_benchmark.items()}
    rare_means = [v for name, v in means.items() if rare.get(name)]
    return {
        "macro_accuracy_pct": sum(means.values()) / len(means) if means else None,
        "rare_accuracy_pct": sum(rare_means) / len(rare_means) if rare_means else None,
        "num_benchmarks": len(means),
        "num_rare_benchmarks": len(rare_means),
    }
