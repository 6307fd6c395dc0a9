"""Paired comparison of two evaluated checkpoints on the same questions (``medssr eval compare``).

A checkpoint's results are the directory ``run_eval`` writes for it: one sub-directory per
benchmark holding ``protocol.json`` and ``generations.jsonl``. Two results are comparable only
when they were made with the same protocol (prompt style, sampling, samples per question,
re-decode; the seed may differ) on the same question ids; anything else is refused, naming what
differs. Per benchmark: the difference B − A in percentage points, its 95% interval and p-value
(one sample per question: Newcombe's paired score interval and the exact McNemar test; several:
the sign-flip permutation test of the per-question differences and the question bootstrap
interval widened where it is too narrow; ``medssr_nemo.eval.stats``) and the minimum detectable
difference; then the same for the average over benchmarks and over the rare-disease ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from medssr_nemo.eval import stats
from medssr_nemo.eval.results import IDENTITY, BenchmarkResult, read_benchmark_result

# protocol fields that may differ between comparable results (the seed only picks other samples)
FREE_PROTOCOL_FIELDS = ("seed",)


@dataclass
class CheckpointResults:
    label: str
    directory: Path
    benchmarks: dict[str, BenchmarkResult]
    rare: dict[str, bool]


def _is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob(f"*/{IDENTITY}"))


def _candidates(root: Path) -> list[Path]:
    """Checkpoint directories under an eval output directory or a pipeline run directory."""
    found = [p for p in sorted(root.glob("*")) if _is_checkpoint_dir(p)]
    found += [p for p in sorted(root.glob("eval_*/*")) if _is_checkpoint_dir(p)]
    return found


def resolve(spec: str) -> Path:
    """The checkpoint directory a command-line argument names.

    ``DIR`` is a checkpoint directory (``<eval output>/<label>``), or an eval output / pipeline run
    directory holding exactly one evaluated checkpoint; ``DIR:LABEL`` picks one checkpoint of an
    eval output directory (``DIR/LABEL``) or of a pipeline run (``DIR/eval_LABEL/LABEL``; the base
    model of an α sweep is found in the sweep's root)."""
    path, label = Path(spec), None
    if not path.exists() and ":" in spec:
        head, label = spec.rsplit(":", 1)
        path = Path(head)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory (expected evaluation results, e.g. runs/x/eval/stage2 "
                                "or runs/x:stage2)")
    if label is not None:
        for candidate in (path / label, path / f"eval_{label}" / label, path.parent / f"eval_{label}" / label):
            if _is_checkpoint_dir(candidate):
                return candidate
        options = ", ".join(p.name for p in _candidates(path)) or "none"
        raise FileNotFoundError(f"{spec}: no evaluated checkpoint {label!r} under {path} (found: {options})")
    if _is_checkpoint_dir(path):
        return path
    found = _candidates(path)
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(f"{path} holds no evaluation results (no <checkpoint>/<benchmark>/{IDENTITY})")
    raise ValueError(f"{path} holds several evaluated checkpoints ({', '.join(p.name for p in found)}); "
                     f"name one as {path}:LABEL")


def load_checkpoint(directory: str | Path) -> CheckpointResults:
    """Every finished benchmark of one checkpoint directory; rare flags from the summary next to it."""
    directory = Path(directory)
    benchmarks = {p.parent.name: read_benchmark_result(p.parent) for p in sorted(directory.glob(f"*/{IDENTITY}"))
                  if (p.parent / "generations.jsonl").exists()}
    if not benchmarks:
        raise FileNotFoundError(f"{directory}: no finished benchmark (each needs {IDENTITY} and generations.jsonl)")
    rare: dict[str, bool] = {}
    for p in sorted(directory.glob("*/metrics.json")):
        rare[p.parent.name] = bool(json.loads(p.read_text(encoding="utf-8")).get("rare"))
    summary = directory.parent / "summary.json"
    if summary.exists():
        rare.update(json.loads(summary.read_text(encoding="utf-8")).get("rare", {}))
    return CheckpointResults(directory.name, directory, benchmarks, rare)


def incompatibilities(a: CheckpointResults, b: CheckpointResults) -> list[str]:
    """Why ``a`` and ``b`` cannot be compared question by question (empty: they can)."""
    problems: list[str] = []
    shared = [n for n in a.benchmarks if n in b.benchmarks]
    if not shared:
        return [f"no benchmark in common ({a.label}: {', '.join(a.benchmarks)}; {b.label}: {', '.join(b.benchmarks)})"]
    protocol_diffs: dict[str, tuple[Any, Any]] = {}
    for name in shared:
        pa, pb = a.benchmarks[name].identity.get("protocol", {}), b.benchmarks[name].identity.get("protocol", {})
        for key in sorted(set(pa) | set(pb)):
            if key not in FREE_PROTOCOL_FIELDS and pa.get(key) != pb.get(key):
                protocol_diffs.setdefault(key, (pa.get(key), pb.get(key)))
        if a.benchmarks[name].question_ids != b.benchmarks[name].question_ids:
            ra, rb = a.benchmarks[name], b.benchmarks[name]
            same_set = set(ra.question_ids) == set(rb.question_ids)
            problems.append(f"question ids differ on {name} ({len(ra.question_ids)} vs {len(rb.question_ids)} questions"
                            + (", same ids in another order)" if same_set else
                               f", {len(set(ra.question_ids) ^ set(rb.question_ids))} not shared)"))
    if "prompt_style" in protocol_diffs:
        style_a, style_b = protocol_diffs.pop("prompt_style")
        problems.insert(0, f"prompt style differs ({style_a} vs {style_b})")
    if protocol_diffs:
        problems.insert(0, "protocol differs in " + ", ".join(f"{k} ({va} vs {vb})" for k, (va, vb) in protocol_diffs.items()))
    return problems


def compare(a: CheckpointResults, b: CheckpointResults, resamples: int = stats.DEFAULT_RESAMPLES) -> dict[str, Any]:
    """B − A per shared benchmark and on the averages; refuses incomparable results."""
    problems = incompatibilities(a, b)
    if problems:
        raise ValueError(f"cannot compare {a.directory} with {b.directory}: " + "; ".join(problems))
    shared = [n for n in a.benchmarks if n in b.benchmarks]
    per_benchmark = {}
    for name in shared:
        result = stats.paired_comparison(a.benchmarks[name].correct, b.benchmarks[name].correct, resamples,
                                         seed=stats.seed_for("compare", name))
        per_benchmark[name] = {**result.as_dict(), "rare": bool(a.rare.get(name) or b.rare.get(name))}
    averages = {}
    for key, names in (("average", shared), ("rare", [n for n in shared if per_benchmark[n]["rare"]])):
        if names:
            pairs = [(a.benchmarks[n].correct, b.benchmarks[n].correct) for n in names]
            averages[key] = {"benchmarks": names,
                             "accuracy_a_pct": sum(per_benchmark[n]["accuracy_a_pct"] for n in names) / len(names),
                             "accuracy_b_pct": sum(per_benchmark[n]["accuracy_b_pct"] for n in names) / len(names),
                             **stats.paired_macro_comparison(pairs, resamples, seed=stats.seed_for("compare", key))}
    first = a.benchmarks[shared[0]].identity.get("protocol", {})
    label_a, label_b = a.label, b.label
    if label_a == label_b:   # e.g. the same policy evaluated in two output directories
        label_a, label_b = f"{a.directory.parent.name}/{a.label}", f"{b.directory.parent.name}/{b.label}"
    return {"a": {"label": label_a, "directory": str(a.directory)}, "b": {"label": label_b, "directory": str(b.directory)},
            "num_samples": first.get("num_samples"), "benchmarks": per_benchmark, **averages,
            "only_in_a": [n for n in a.benchmarks if n not in b.benchmarks],
            "only_in_b": [n for n in b.benchmarks if n not in a.benchmarks]}


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _diff(value: float, interval: Sequence[float]) -> str:
    return f"{value:+.1f} [{interval[0]:+.1f}, {interval[1]:+.1f}]"


def markdown(result: dict[str, Any], title: bool = True) -> str:
    """The comparison as a table a reader can take in at a glance, with how to read it."""
    a, b = result["a"]["label"], result["b"]["label"]
    lines = [f"### {a} → {b}", ""] if title else []
    lines += [f"| benchmark | questions | {a} (%) | {b} (%) | {b} − {a} (pts) [95% CI] | p | test | detectable (pts) |",
              "|---|---:|---:|---:|---:|---:|---|---:|"]
    for name, r in result["benchmarks"].items():
        lines.append(f"| {name}{' (rare)' if r['rare'] else ''} | {r['num_questions']} | {r['accuracy_a_pct']:.1f} | "
                     f"{r['accuracy_b_pct']:.1f} | {_diff(r['difference_pct'], r['ci95_pct'])} | {_p(r['p_value'])} | "
                     f"{r['test']} | {stats.describe_mdd(r['mdd_pct'])} |")
    for key, title_text in (("average", "Avg"), ("rare", "Rare")):
        if key in result:
            r = result[key]
            lines.append(f"| **{title_text}** ({len(r['benchmarks'])} benchmarks) | | {r['accuracy_a_pct']:.1f} | "
                         f"{r['accuracy_b_pct']:.1f} | {_diff(r['difference_pct'], r['ci95_pct'])} | {_p(r['p_value'])} | "
                         f"{r['test']} | |")
    significant = [n for n, r in result["benchmarks"].items() if r["p_value"] < 0.05]
    lines += ["", f"Significant at p < 0.05 (not corrected for {len(result['benchmarks'])} comparisons): "
                  + (", ".join(significant) if significant else "none") + ". "
                  "One sample per question: Newcombe interval, exact McNemar p; several: p from the sign-flip "
                  "permutation test of the per-question differences (exact up to 16 differing questions; at least "
                  "2·0.5ⁿ, so below 6 differing questions never under 0.05), interval from the paired bootstrap over "
                  "questions widened to the paired t-interval and, where every question moved the same way, to the "
                  "sign-count interval; Avg and Rare: the same permutation test on the average, interval from "
                  "square-and-add of the benchmarks' intervals (and the stratified bootstrap, several samples); "
                  "`detectable` is the difference this many questions detects with power 0.8 at α = 0.05, "
                  "(z₀.₉₇₅ + z₀.₈)·σ_d/√n with σ_d the observed spread of per-question differences."]
    if result.get("only_in_a") or result.get("only_in_b"):
        lines += ["", "Not compared (evaluated for one side only): "
                      + ", ".join(result.get("only_in_a", []) + result.get("only_in_b", [])) + "."]
    return "\n".join(lines) + "\n"


def compare_in_order(directories: Sequence[Path], labels: Sequence[str] | None = None,
                     resamples: int = stats.DEFAULT_RESAMPLES) -> list[dict[str, Any]]:
    """Each checkpoint against the one before it (base → stage 1 → stage 2), then the last
    against the first when there are more than two; ``labels`` name them (default: directory
    names). A pair that cannot be compared gives ``{"a", "b", "error"}`` instead of stopping the
    caller (a report still gets written)."""
    named = list(zip(labels or [Path(d).name for d in directories], directories))
    pairs = list(zip(named, named[1:]))
    if len(named) > 2:
        pairs.append((named[0], named[-1]))
    results = []
    for (label_a, a), (label_b, b) in pairs:
        try:
            result = compare(load_checkpoint(a), load_checkpoint(b), resamples)
        except (ValueError, FileNotFoundError) as err:
            result = {"a": {"directory": str(a)}, "b": {"directory": str(b)}, "error": str(err)}
        result["a"]["label"], result["b"]["label"] = label_a, label_b
        results.append(result)
    return results


def markdown_many(results: Sequence[dict[str, Any]]) -> str:
    """Several comparisons, one table each; an incomparable pair says why."""
    parts = []
    for result in results:
        if "error" in result:
            parts.append(f"### {result['a']['label']} → {result['b']['label']}\n\nNot compared: {result['error']}\n")
        else:
            parts.append(markdown(result))
    return "\n".join(parts)
