"""Human-readable reports of a summary: a markdown table and a PNG bar chart comparing
checkpoints (e.g. base vs stage 1 vs stage 2) side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

Summary = Mapping[str, Any]   # the ``summary.json`` layout written by the runner


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown_table(summary: Summary) -> str:
    """Accuracy (mean ± std over samples, percent) per benchmark and checkpoint, the macro average
    and the rare-disease column; then the share of outputs without a valid answer."""
    names = summary["benchmarks"]
    rare = summary["rare"]
    header = ["checkpoint", *[f"{n} (rare)" if rare.get(n) else n for n in names], "Avg", "Rare"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for ckpt in summary["checkpoints"]:
        cells = [ckpt["label"]]
        for name in names:
            m = ckpt["benchmarks"].get(name)
            cells.append("–" if m is None else f"{m['accuracy_pct_mean']:.2f} ± {m['accuracy_pct_std']:.2f}")
        cells += [_fmt(ckpt["macro_accuracy_pct"]), _fmt(ckpt["rare_accuracy_pct"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Outputs with no answer before the constrained re-decode (% of generations):", ""]
    lines += ["| checkpoint | " + " | ".join(names) + " |", "|" + "|".join(["---"] + ["---:"] * len(names)) + "|"]
    for ckpt in summary["checkpoints"]:
        cells = [ckpt["label"]]
        for name in names:
            m = ckpt["benchmarks"].get(name)
            cells.append("–" if m is None else f"{100.0 * m['no_answer_before_redecode'] / m['num_generations']:.1f}")
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


def write_chart(summary: Summary, path: str | os.PathLike) -> Path:
    """Grouped bars: one group per benchmark (+ Avg, Rare), one bar per checkpoint, std whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["benchmarks"])
    groups = names + ["Avg", "Rare"]
    checkpoints = summary["checkpoints"]
    width = 0.8 / max(1, len(checkpoints))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(checkpoints)) ** 0.5 + 2), 4.5))
    for k, ckpt in enumerate(checkpoints):
        means, stds = [], []
        for name in names:
            m = ckpt["benchmarks"].get(name)
            means.append(m["accuracy_pct_mean"] if m else 0.0)
            stds.append(m["accuracy_pct_std"] if m else 0.0)
        means += [ckpt["macro_accuracy_pct"] or 0.0, ckpt["rare_accuracy_pct"] or 0.0]
        stds += [0.0, 0.0]
        xs = [i + (k - (len(checkpoints) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=ckpt["label"])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=35, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("MedSSR evaluation: accuracy per benchmark (mean ± std over samples)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path
