"""Human-readable reports of a summary: markdown tables and a PNG bar chart comparing
checkpoints (e.g. base vs stage 1 vs stage 2) side by side, each accuracy with its 95% interval
over questions (``medssr_nemo.eval.stats``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from medssr_nemo.eval import stats

from medssr_nemo.artifacts import atomic_path

Summary = Mapping[str, Any]   # the ``summary.json`` layout written by the runner


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _with_interval(value: float | None, interval: Sequence[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else f"{value:.1f}"


def _method_note(summary: Summary) -> str:
    methods = {m.get("ci_method") for c in summary["checkpoints"] for m in c["benchmarks"].values()} - {None}
    parts = []
    if "wilson" in methods:
        parts.append("Wilson score interval (one sample per question)")
    if "bootstrap" in methods:
        parts.append("bootstrap over questions, each question's samples kept together")
    return " and ".join(parts) or "not available"


def markdown_table(summary: Summary) -> str:
    """Accuracy per benchmark and checkpoint with its 95% interval over questions, the macro
    average and the rare-disease column; the paper's mean ± std over samples; the minimum
    detectable difference at this size; then the share of outputs without a valid answer."""
    names = summary["benchmarks"]
    rare = summary["rare"]
    header = ["checkpoint", *[f"{n} (rare)" if rare.get(n) else n for n in names], "Avg", "Rare"]
    rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
    lines = ["Accuracy (%) [95% interval over questions]:", "", "| " + " | ".join(header) + " |", rule]
    for ckpt in summary["checkpoints"]:
        cells = [ckpt["label"]]
        for name in names:
            m = ckpt["benchmarks"].get(name)
            cells.append("–" if m is None else _with_interval(m["accuracy_pct_mean"], m.get("ci95_pct")))
        cells += [_with_interval(ckpt["macro_accuracy_pct"], ckpt.get("macro_ci95_pct")),
                  _with_interval(ckpt["rare_accuracy_pct"], ckpt.get("rare_ci95_pct"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Intervals: {_method_note(summary)}; Avg and Rare: bootstrap redrawing each benchmark's questions "
                  "(one sample per question: square-and-add of the benchmarks' Wilson intervals).",
              "", "As the paper reports it, mean ± std over samples (%; the std is 0 with one sample):", "",
              "| " + " | ".join(header) + " |", rule]
    for ckpt in summary["checkpoints"]:
        cells = [ckpt["label"]]
        for name in names:
            m = ckpt["benchmarks"].get(name)
            cells.append("–" if m is None else f"{m['accuracy_pct_mean']:.2f} ± {m['accuracy_pct_std']:.2f}")
        cells += [_fmt(ckpt["macro_accuracy_pct"]), _fmt(ckpt["rare_accuracy_pct"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", mdd_paragraph(summary)]
    lines += ["", "Outputs with no answer before the constrained re-decode / still unknown after it "
                  "(% of generations):", ""]
    lines += ["| checkpoint | " + " | ".join(names) + " |", "|" + "|".join(["---"] + ["---:"] * len(names)) + "|"]
    for ckpt in summary["checkpoints"]:
        cells = [ckpt["label"]]
        for name in names:
            m = ckpt["benchmarks"].get(name)
            cells.append("–" if m is None else f"{100.0 * m['no_answer_before_redecode'] / m['num_generations']:.1f} / "
                                               f"{100.0 * m.get('unknown_after_redecode', 0) / m['num_generations']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    p = summary["protocol"]
    lines += ["", f"Protocol: prompt style {p['prompt_style']}, temperature {p['temperature']}, top-p {p['top_p']}, "
                  f"top-k {p['top_k']}, {p['max_new_tokens']} new tokens, {p['num_samples']} sample(s) per question, "
                  f"answer extraction {p.get('answer_extraction', 'paper')}, "
                  f"constrained re-decode {'on' if p['recovery'] else 'off'}, seed {p['seed']}"
                  + (f", subsample of {summary['limit']} per benchmark" if summary.get("limit") else "") + "."]
    styles = [f"{c['label']} {c['prompt_style']}" for c in summary["checkpoints"] if c.get("prompt_style")]
    if styles:
        lines += [f"Prompt template per checkpoint: {', '.join(styles)}."]
    return "\n".join(lines) + "\n"


def mdd_paragraph(summary: Summary) -> str:
    """The smallest difference between two checkpoints each benchmark can detect at its size."""
    sizes: dict[str, int] = {}
    for ckpt in summary["checkpoints"]:
        for name, m in ckpt["benchmarks"].items():
            if m.get("num_questions"):
                sizes.setdefault(name, int(m["num_questions"]))
    if not sizes:
        return ""
    cells = [f"{name} ({n} q): {stats.describe_mdd(stats.minimum_detectable_difference(n))}" for name, n in sizes.items()]
    text = ("Minimum detectable difference between two checkpoints (percentage points; two-sided α = 0.05, power 0.8, "
            "worst case of 50% accuracy and no gain from pairing: MDD = (z₀.₉₇₅ + z₀.₈)·√(0.5/n) = 2.80·√(0.5/n)): "
            + "; ".join(cells) + ".")
    if any(stats.minimum_detectable_difference(n) is None for n in sizes.values()):
        text += (f" With fewer than {stats.min_questions_for_significance()} questions no paired test can reach "
                 "p < 0.05, whatever the difference: such a run shows the mechanics, not a result.")
    elif any(stats.minimum_detectable_difference(n) > 10 for n in sizes.values()):   # type: ignore[operator]
        text += " Differences smaller than these are within this run's noise."
    return text


def bar_heights_and_whiskers(ckpt: Mapping[str, Any], names: Sequence[str]) -> tuple[list[float], list[float], list[float]]:
    """One checkpoint's bars (each benchmark, then Avg and Rare) and the whisker lengths below and
    above each bar: to the ends of the 95% interval, or the std over samples where none is stored."""
    cells = [(ckpt["benchmarks"][n]["accuracy_pct_mean"], ckpt["benchmarks"][n].get("ci95_pct"),
              ckpt["benchmarks"][n]["accuracy_pct_std"]) if n in ckpt["benchmarks"] else (None, None, 0.0)
             for n in names]
    cells += [(ckpt["macro_accuracy_pct"], ckpt.get("macro_ci95_pct"), 0.0),
              (ckpt["rare_accuracy_pct"], ckpt.get("rare_ci95_pct"), 0.0)]
    means, below, above = [], [], []
    for mean, interval, std in cells:
        means.append(mean or 0.0)
        below.append(max(0.0, (mean or 0.0) - interval[0]) if interval else std)
        above.append(max(0.0, interval[1] - (mean or 0.0)) if interval else std)
    return means, below, above


def write_chart(summary: Summary, path: str | os.PathLike) -> Path:
    """Grouped bars: one group per benchmark (+ Avg, Rare), one bar per checkpoint, whiskers at
    the 95% interval over questions (the std over samples where no interval was stored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["benchmarks"])
    groups = names + ["Avg", "Rare"]
    checkpoints = summary["checkpoints"]
    width = 0.8 / max(1, len(checkpoints))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(checkpoints)) ** 0.5 + 2), 4.5))
    for k, ckpt in enumerate(checkpoints):
        means, below, above = bar_heights_and_whiskers(ckpt, names)
        xs = [i + (k - (len(checkpoints) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, means, width, yerr=[below, above], capsize=2, label=ckpt["label"])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=35, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("MedSSR evaluation: accuracy per benchmark (95% interval over questions)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path
