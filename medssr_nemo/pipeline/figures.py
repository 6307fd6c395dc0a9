"""The report's PNG figures, one function each, drawn with matplotlib's Agg backend and written
atomically. Each takes plain data (lists and dicts read from the run's artifacts), so it can be
drawn again from ``summary.json`` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from medssr_nemo.artifacts import atomic_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def training_curves(curves: Mapping[str, Mapping[str, Sequence[float | None]]], path: Path) -> Path:
    """Reward, KL to the reference and answer-format rate per step; one colour per stage, stage 2
    drawn after stage 1 on one step axis (it starts from stage 1's weights)."""
    plt = _pyplot()
    panels = [("reward/mean", "reward (mean over rollouts)"), ("train/kl", "KL to the reference policy"),
              ("answer/format_rate", "share of outputs with 'The answer is X'")]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    offset = 0
    for stage, series in curves.items():
        steps = list(series.get("step", []))
        xs = [offset + s for s in steps]
        for ax, (key, _title) in zip(axes, panels):
            ys = series.get(key, [])
            points = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=stage)
        offset += max(steps, default=0)
    for ax, (_key, title) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _save(fig, path)


def agreement_histogram(histogram: Mapping[str, Mapping[str, int]], threshold: float, path: Path) -> Path:
    """Questions per vote agreement (top votes / samples), split into kept and dropped."""
    plt = _pyplot()
    levels = sorted(histogram, key=float)
    kept = [histogram[level].get("kept", 0) for level in levels]
    dropped = [histogram[level].get("dropped", 0) for level in levels]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = range(len(levels))
    ax.bar(xs, kept, label="kept (labelled)", color="tab:green")
    ax.bar(xs, dropped, bottom=kept, label="dropped (tie or below τ)", color="tab:gray")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{float(level):.2f}" for level in levels])
    ax.set_xlabel(f"agreement of the majority answer (τ = {threshold})")
    ax.set_ylabel("questions")
    ax.set_title("Pseudo-label agreement")
    ax.legend(fontsize="small")
    return _save(fig, path)


def pseudo_label_accuracy(by_group: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Accuracy of the kept pseudo-labels against the known key, per question group, with counts
    and whiskers at the 95% Wilson interval (``ci95``) where the group has one."""
    plt = _pyplot()
    names = [n for n in by_group if by_group[n]["with_gold"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    values = [100.0 * by_group[n]["accuracy"] for n in names]
    intervals = [by_group[n].get("ci95") or [by_group[n]["accuracy"]] * 2 for n in names]
    whiskers = [[max(0.0, v - 100.0 * ci[0]) for v, ci in zip(values, intervals)],
                [max(0.0, 100.0 * ci[1] - v) for v, ci in zip(values, intervals)]]
    bars = ax.bar(range(len(names)), values, yerr=whiskers, capsize=3, color="tab:blue")
    for bar, name in zip(bars, names):
        g = by_group[name]
        ax.annotate(f"{g['correct']}/{g['with_gold']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("labels equal to the known key (%)")
    ax.set_title("Pseudo-label accuracy against the known key")
    return _save(fig, path)


def mix_achieved_vs_target(dimensions: Mapping[str, Mapping[str, Mapping[str, float | None]]], path: Path) -> Path:
    """Achieved vs target share of each value of each controlled dimension (rare ratio, types, ...)."""
    plt = _pyplot()
    names = list(dimensions)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        values = dimensions[name]
        labels = list(values)
        xs = range(len(labels))
        target = [values[v].get("target") for v in labels]
        achieved = [values[v].get("achieved") or 0.0 for v in labels]
        ax.bar([x - 0.2 for x in xs], achieved, 0.4, label="achieved")
        if any(t is not None for t in target):
            ax.bar([x + 0.2 for x in xs], [t or 0.0 for t in target], 0.4, label="target")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize="x-small")
    return _save(fig, path)


def alpha_comparison(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """One line per metric over the swept rare ratios α, with whiskers at the 95% interval over
    questions (``<key>_ci95`` in a row) where the row has one."""
    plt = _pyplot()
    alphas = [row["alpha"] for row in rows]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for key, label in (("stage1_macro", "stage 1: average accuracy"), ("stage1_rare", "stage 1: rare-disease accuracy"),
                       ("stage2_macro", "stage 2: average accuracy"), ("stage2_rare", "stage 2: rare-disease accuracy")):
        points = [(a, row.get(key), row.get(f"{key}_ci95")) for a, row in zip(alphas, rows) if row.get(key) is not None]
        if points:
            whiskers = [[max(0.0, y - ci[0]) if ci else 0.0 for _, y, ci in points],
                        [max(0.0, ci[1] - y) if ci else 0.0 for _, y, ci in points]]
            ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=whiskers, marker="o", capsize=3,
                        label=label)
    ax.set_xlabel("rare ratio α of the synthetic data")
    ax.set_ylabel("accuracy (%), 95% interval")
    ax.set_title("α sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)
