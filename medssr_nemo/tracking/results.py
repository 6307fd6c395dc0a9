"""Sending a finished run's results to the trackers: the eval summary (accuracies with their
intervals, paired comparisons) as flat numbers, the report's figures and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from medssr_nemo.tracking.trackers import config_dict, trackers_for


def eval_summary_values(evaluation: Mapping[str, Any] | None,
                        comparisons: Sequence[Mapping[str, Any]] = ()) -> dict[str, float]:
    """``eval/<checkpoint>/<benchmark>/accuracy_pct`` (+ ``_ci95_low``/``_ci95_high``), the
    ``avg``/``rare`` columns, and ``compare/<a>_to_<b>/<benchmark|avg|rare>/{difference_pct,p_value}``."""
    values: dict[str, Any] = {}
    for ckpt in (evaluation or {}).get("checkpoints", []):
        prefix = f"eval/{ckpt['label']}"
        cells = [(name, m["accuracy_pct_mean"], m.get("ci95_pct")) for name, m in ckpt["benchmarks"].items()]
        cells += [("avg", ckpt.get("macro_accuracy_pct"), ckpt.get("macro_ci95_pct")),
                  ("rare", ckpt.get("rare_accuracy_pct"), ckpt.get("rare_ci95_pct"))]
        for name, mean, interval in cells:
            values[f"{prefix}/{name}/accuracy_pct"] = mean
            if interval:
                values[f"{prefix}/{name}/accuracy_pct_ci95_low"], values[f"{prefix}/{name}/accuracy_pct_ci95_high"] = interval
    for comparison in comparisons:
        if "error" in comparison:
            continue
        prefix = f"compare/{comparison['a']['label']}_to_{comparison['b']['label']}"
        rows = dict(comparison["benchmarks"])
        rows.update({k: comparison[k] for k in ("average", "rare") if k in comparison})
        for name, row in rows.items():
            key = "avg" if name == "average" else name
            values[f"{prefix}/{key}/difference_pct"] = row["difference_pct"]
            values[f"{prefix}/{key}/p_value"] = row["p_value"]
    return {k: v for k, v in values.items() if v is not None}


def log_results(cfg: Any, directory: str | Path, *, evaluation: Mapping[str, Any] | None = None,
                comparisons: Sequence[Mapping[str, Any]] = (), figures: Mapping[str, Path] | None = None,
                files: Sequence[Path] = ()) -> None:
    """One tracker run for a report or an evaluation (W&B and MLflow; TensorBoard only follows
    training). Does nothing when no such tracker is configured."""
    trackers = trackers_for(cfg, directory, with_tensorboard=False)
    if not trackers:
        return
    trackers.log_config(config_dict(cfg))
    trackers.log_summary(eval_summary_values(evaluation, comparisons))
    for key, path in (figures or {}).items():
        trackers.log_image(f"figures/{key}", Path(path))
    for path in files:
        if Path(path).exists():
            trackers.log_file(Path(path))
    trackers.close()
