"""The markdown table and the PNG chart of a summary comparing checkpoints."""

from __future__ import annotations

from medssr_nemo.eval.report import markdown_table, write_chart


def _summary():
    def m(mean, std, invalid, unknown=0):
        return {"accuracy_pct_mean": mean, "accuracy_pct_std": std, "no_answer_before_redecode": invalid,
                "unknown_after_redecode": unknown, "num_generations": 8}
    return {
        "benchmarks": ["medqa", "rarebench"], "rare": {"medqa": False, "rarebench": True}, "limit": 2,
        "protocol": {"prompt_style": "chat", "temperature": 0.6, "top_p": 0.95, "top_k": 20,
                     "max_new_tokens": 2048, "num_samples": 4, "recovery": True, "seed": 0},
        "checkpoints": [
            {"label": "base", "benchmarks": {"medqa": m(25.0, 5.0, 8, 2), "rarebench": m(12.5, 0.0, 6)},
             "macro_accuracy_pct": 18.75, "rare_accuracy_pct": 12.5},
            {"label": "stage2", "benchmarks": {"medqa": m(50.0, 10.0, 2)},
             "macro_accuracy_pct": 50.0, "rare_accuracy_pct": None},
        ],
    }


def _with_intervals():
    summary = _summary()
    base = summary["checkpoints"][0]
    base["benchmarks"]["medqa"].update(num_questions=2, ci95_pct=[10.0, 45.5], ci_method="bootstrap")
    base["benchmarks"]["rarebench"].update(num_questions=2, ci95_pct=[0.0, 40.25], ci_method="bootstrap")
    base.update(macro_ci95_pct=[8.0, 30.0], rare_ci95_pct=[0.0, 40.25])
    return summary


def test_markdown_table_gives_each_accuracy_its_interval_over_questions():
    text = markdown_table(_with_intervals())
    assert "Accuracy (%) [95% interval over questions]" in text
    assert "| base | 25.0 [10.0, 45.5] | 12.5 [0.0, 40.2] | 18.8 [8.0, 30.0] | 12.5 [0.0, 40.2] |" in text
    assert "bootstrap over questions, each question's samples kept together" in text


def test_markdown_says_a_tiny_evaluation_detects_nothing():
    text = markdown_table(_with_intervals())
    assert "medqa (2 q): none (too few questions)" in text
    assert "no paired test can reach p < 0.05" in text


def test_markdown_table_rows_per_checkpoint_with_mean_std_macro_and_rare():
    text = markdown_table(_summary())
    assert "mean ± std over samples" in text
    assert "| checkpoint | medqa | rarebench (rare) | Avg | Rare |" in text
    assert "| base | 25.00 ± 5.00 | 12.50 ± 0.00 | 18.75 | 12.50 |" in text
    assert "| stage2 | 50.00 ± 10.00 | – | 50.00 | – |" in text
    assert "| base | 100.0 / 25.0 | 75.0 / 0.0 |" in text   # no answer 8/8 and 6/8; still unknown 2/8 and 0/8
    assert "4 sample(s) per question" in text and "subsample of 2" in text


def test_chart_is_a_png(tmp_path):
    path = write_chart(_with_intervals(), tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_chart_whiskers_reach_the_interval_ends():
    from medssr_nemo.eval.report import bar_heights_and_whiskers

    base = _with_intervals()["checkpoints"][0]
    means, below, above = bar_heights_and_whiskers(base, ["medqa", "rarebench"])
    assert means == [25.0, 12.5, 18.75, 12.5]
    assert below == [15.0, 12.5, 10.75, 12.5] and above == [20.5, 27.75, 11.25, 27.75]
