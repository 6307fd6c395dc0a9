"""The α sweep's comparison table read from each α's report summary.json: accuracies with their
95% intervals, and every stage against the base model per benchmark as well as on the averages."""

from __future__ import annotations

import json

import pytest

from medssr_nemo.eval.compare import compare, load_checkpoint
from medssr_nemo.pipeline.sweep import comparison_markdown, comparison_row

from test_eval_compare import write_results


def _report_summary(tmp_path):
    """A run's report/summary.json as the Report step writes it: the evaluation's checkpoints
    (hand-written numbers) and the paired comparisons (made by the real ``compare``)."""
    evals = tmp_path / "evals"
    write_results(evals, "base", "medqa", [[1]] * 10 + [[0]] * 30)
    write_results(evals, "base", "rarebench", [[1]] * 5 + [[0]] * 35, rare=True)
    write_results(evals, "stage1", "medqa", [[1]] * 20 + [[0]] * 20)     # +25 pts, 10 discordant
    write_results(evals, "stage1", "rarebench", [[1]] * 5 + [[0]] * 35, rare=True)
    checkpoints = [
        {"label": "base", "macro_accuracy_pct": 18.75, "macro_ci95_pct": [10.5, 29.0],
         "rare_accuracy_pct": 12.5, "rare_ci95_pct": [5.5, 26.1], "benchmarks": {}},
        {"label": "stage1", "macro_accuracy_pct": 31.25, "macro_ci95_pct": [21.0, 42.4],
         "rare_accuracy_pct": 12.5, "rare_ci95_pct": [5.5, 26.1], "benchmarks": {}},
    ]
    comparisons = [compare(load_checkpoint(evals / "base"), load_checkpoint(evals / "stage1"))]
    comparisons[0]["a"]["label"], comparisons[0]["b"]["label"] = "base", "stage1"
    run_dir = tmp_path / "alpha_0.3"
    (run_dir / "report").mkdir(parents=True)
    summary = {"synthesis": {"rare": {"achieved": 0.3}},
               "pseudo_labels": {"fraction_kept": 0.75, "accuracy_vs_key": {"all kept": {"accuracy": 0.4}}},
               "evaluation": {"checkpoints": checkpoints}, "comparisons": comparisons}
    (run_dir / "report" / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_sweep_row_carries_each_benchmarks_test_against_base(tmp_path):
    row = comparison_row(0.3, _report_summary(tmp_path))
    assert row["stage1_macro_ci95"] == [21.0, 42.4] and row["base_rare_ci95"] == [5.5, 26.1]
    medqa = row["stage1_vs_base_benchmarks"]["medqa"]
    assert medqa["difference_pct"] == pytest.approx(25.0) and medqa["test"] == "exact McNemar"
    assert medqa["p_value"] == pytest.approx(2 * 0.5 ** 10)                    # 10 of 10 discordant went to B
    assert row["stage1_vs_base_benchmarks"]["rarebench"]["rare"] is True
    assert row["stage1_vs_base"]["difference_pct"] == pytest.approx(12.5)
    assert row["stage1_vs_base_rare"]["difference_pct"] == 0.0


def test_sweep_table_prints_intervals_and_per_benchmark_rows(tmp_path):
    row = comparison_row(0.3, _report_summary(tmp_path))
    text = comparison_markdown([row], figure=None)
    assert "| 0.3 | 0.30 | 75.0% | 40.0% | 18.8 [10.5, 29.0] | 12.5 [5.5, 26.1] | 31.2 [21.0, 42.4] |" in text
    assert "| 0.3 | stage1 | medqa | +25.0 [" in text and "| 0.002 | exact McNemar |" in text
    assert "| 0.3 | stage1 | rarebench (rare) | +0.0 [" in text
    assert "| 0.3 | stage1 | **Avg** | +12.5 [" in text and "| 0.3 | stage1 | **Rare** | +0.0 [" in text
