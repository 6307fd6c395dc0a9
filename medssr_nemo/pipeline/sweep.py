"""The α sweep: one pipeline per rare ratio in ``pipeline.alpha_sweep``, each in
``<output_dir>/alpha_<α>/``, sharing the steps that do not depend on α (real data, the base
model's evaluation) from ``<output_dir>``; then one comparison report."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from medssr_nemo.artifacts import write_json_atomic, write_text_atomic
from medssr_nemo.config import MedSSRConfig
from medssr_nemo.eval.compare import compare_in_order, markdown_many
from medssr_nemo.pipeline.context import StepCallback
from medssr_nemo.pipeline.figures import alpha_comparison
from medssr_nemo.pipeline.runner import PipelineResult, run_pipeline


def alpha_dir(root: Path, alpha: float) -> Path:
    return root / f"alpha_{alpha:g}"


def comparison_row(alpha: float, run_dir: Path) -> dict[str, Any]:
    """One α's headline numbers, read from its report's summary.json."""
    path = run_dir / "report" / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    row: dict[str, Any] = {"alpha": alpha, "run_dir": str(run_dir)}
    synthesis = summary.get("synthesis") or {}
    row["rare_share_achieved"] = (synthesis.get("rare") or {}).get("achieved")
    labels = summary.get("pseudo_labels") or {}
    row["labels_kept"] = labels.get("fraction_kept")
    row["label_accuracy"] = ((labels.get("accuracy_vs_key") or {}).get("all kept") or {}).get("accuracy")
    for ckpt in (summary.get("evaluation") or {}).get("checkpoints", []):
        row[f"{ckpt['label']}_macro"] = ckpt.get("macro_accuracy_pct")
        row[f"{ckpt['label']}_rare"] = ckpt.get("rare_accuracy_pct")
        row[f"{ckpt['label']}_macro_ci95"] = ckpt.get("macro_ci95_pct")
        row[f"{ckpt['label']}_rare_ci95"] = ckpt.get("rare_ci95_pct")
    # the report's paired tests of each stage against the base model: each benchmark, Avg, Rare
    for comparison in summary.get("comparisons") or []:
        if comparison["a"]["label"] == "base" and "average" in comparison:
            label = comparison["b"]["label"]
            row[f"{label}_vs_base"] = _tested(comparison["average"])
            row[f"{label}_vs_base_benchmarks"] = {name: {**_tested(r), "rare": bool(r.get("rare"))}
                                                  for name, r in comparison.get("benchmarks", {}).items()}
            if "rare" in comparison:
                row[f"{label}_vs_base_rare"] = _tested(comparison["rare"])
    return row


def _tested(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result.get(k) for k in ("difference_pct", "ci95_pct", "p_value", "test")}


def final_checkpoint_dir(run_dir: Path, cfg: MedSSRConfig) -> Path | None:
    """The evaluation directory of an α run's last trained stage (what the α values are compared on)."""
    for label in ("stage2", "stage1"):
        if getattr(cfg.pipeline, label).enabled and (run_dir / f"eval_{label}" / label).is_dir():
            return run_dir / f"eval_{label}" / label
    return None


def _with_interval(value: float | None, interval: Sequence[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else f"{value:.1f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def comparison_markdown(rows: Sequence[dict[str, Any]], figure: str | None,
                        between_alphas: Sequence[dict[str, Any]] = ()) -> str:
    """The sweep's table (each α's accuracies with their 95% intervals over questions), each
    stage against the base model per benchmark and on the averages, and the α values against
    each other."""
    def fmt(value: Any, pct: bool = False) -> str:
        if value is None:
            return "–"
        return f"{100 * value:.1f}%" if pct else f"{value:.2f}"

    lines = ["# α sweep", "", "One pipeline per rare ratio α; base-model numbers are shared. Accuracies in % "
             "with their 95% interval over questions.", "",
             "| α | rare share achieved | labels kept | label accuracy | base avg | base rare | stage 1 avg | "
             "stage 1 rare | stage 2 avg | stage 2 rare | report |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cells = [_with_interval(r.get(f"{label}_{kind}"), r.get(f"{label}_{kind}_ci95"))
                 for label in ("base", "stage1", "stage2") for kind in ("macro", "rare")]
        lines.append(f"| {r['alpha']:g} | {fmt(r.get('rare_share_achieved'))} | {fmt(r.get('labels_kept'), True)} | "
                     f"{fmt(r.get('label_accuracy'), True)} | " + " | ".join(cells) +
                     f" | [{Path(r['run_dir']).name}]({Path(r['run_dir']).name}/report/report.md) |")
    if figure:
        lines += ["", f"![accuracy over α]({figure})"]
    tested = [(r, label) for r in rows for label in ("stage1", "stage2") if r.get(f"{label}_vs_base")]
    if tested:
        lines += ["", "Each stage against the base model on the same questions, per benchmark and on the averages "
                      "(tests as in each report's paired comparisons; docs/statistics.md):", "",
                  "| α | stage | benchmark | − base (pts) [95% CI] | p | test |", "|---:|---|---|---:|---:|---|"]
        for r, label in tested:
            cells = [(f"{name}{' (rare)' if t.get('rare') else ''}", t)
                     for name, t in (r.get(f"{label}_vs_base_benchmarks") or {}).items()]
            cells.append(("**Avg**", r[f"{label}_vs_base"]))
            if r.get(f"{label}_vs_base_rare"):
                cells.append(("**Rare**", r[f"{label}_vs_base_rare"]))
            for name, t in cells:
                lines.append(f"| {r['alpha']:g} | {label} | {name} | {t['difference_pct']:+.1f} [{t['ci95_pct'][0]:+.1f}, "
                             f"{t['ci95_pct'][1]:+.1f}] | {_p(t['p_value'])} | {t.get('test') or ''} |")
    if between_alphas:
        lines += ["", "## Between α values (last stage, same questions)", "", markdown_many(between_alphas).rstrip()]
    return "\n".join(lines) + "\n"


def run_sweep(cfg: MedSSRConfig, *, progress: bool = True, echo: Callable[[str], None] = print,
              train_callbacks: dict[str, Sequence[StepCallback]] | None = None) -> tuple[list[PipelineResult], Path]:
    """Run every α's pipeline (each resumable like a single run), then write the comparison."""
    root = Path(cfg.output_dir)
    alphas = list(cfg.pipeline.alpha_sweep)
    results, rows = [], []
    for index, alpha in enumerate(alphas, start=1):
        sub = copy.deepcopy(cfg)
        sub.synthesis.alpha = alpha
        sub.pipeline.alpha_sweep = []
        sub.output_dir = str(alpha_dir(root, alpha))
        echo(f"== α sweep {index}/{len(alphas)}: α = {alpha:g} -> {sub.output_dir}")
        result = run_pipeline(sub, run_dir=sub.output_dir, shared_dir=root, progress=progress,
                              train_callbacks=train_callbacks, echo=echo)
        results.append(result)
        rows.append(comparison_row(alpha, result.run_dir))
    figure = None
    if cfg.pipeline.report_figures:
        figure = alpha_comparison(rows, root / "comparison.png").name

    finals = [(alpha, final_checkpoint_dir(r.run_dir, cfg)) for alpha, r in zip(alphas, results)]
    finals = [(alpha, d) for alpha, d in finals if d is not None]
    between = compare_in_order([d for _, d in finals], labels=[f"α={a:g} {d.name}" for a, d in finals]) \
        if len(finals) > 1 else []
    write_json_atomic(root / "comparison.json", {"alphas": alphas, "rows": rows, "between_alphas": between})
    report = write_text_atomic(root / "comparison.md", comparison_markdown(rows, figure, between))
    return results, Path(report)
