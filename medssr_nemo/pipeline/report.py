"""The run's report: ``report/report.md``, its PNG figures and ``report/summary.json``.

Everything is read back from the artifacts the steps wrote (cards, vote log, metrics logs, eval
summaries), so the report shows what the run measured, and says what the setting was, including
how far it is from the paper's scale.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from medssr_nemo.artifacts import write_json_atomic, write_text_atomic
from medssr_nemo.config import MedSSRConfig
from medssr_nemo.eval.compare import compare_in_order, markdown_many
from medssr_nemo.eval.report import markdown_table, write_chart
from medssr_nemo.eval.stats import wilson_interval
from medssr_nemo.eval.suite import rare_benchmark_note
from medssr_nemo.pipeline import figures
from medssr_nemo.pipeline.context import PipelineContext, Step
from medssr_nemo.pipeline.manifest import MANIFEST_FILE
from medssr_nemo.records import is_kg_question, read_records

PAPER_MODELS = ("qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "llama3.1-8b")
CURVE_KEYS = ("reward/mean", "train/kl", "answer/format_rate", "answer/valid_rate")
COLLAPSE_KEYS = ("collapse/reward_agreement", "collapse/self_agreement", "collapse/key_accuracy",
                 "collapse/self_agreement_drift")   # grpo/collapse.py


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------------------ the setting
def describe_setting(cfg: MedSSRConfig) -> dict[str, Any]:
    p = cfg.pipeline
    return {
        "model": {"name": cfg.model.name, "path": cfg.model.path, "prompt_style": cfg.model.prompt_style,
                  "dtype": cfg.model.dtype, "policy_backend": cfg.policy.backend, "rollout_engine": cfg.rollout.engine},
        "data": {"pools": list(cfg.data.pools), "max_per_pool": cfg.data.max_per_pool},
        "synthesis": {"synthesizer": cfg.synthesis.synthesizer, "knowledge": cfg.synthesis.knowledge,
                      "num_questions": cfg.synthesis.num_questions, "alpha": cfg.synthesis.alpha,
                      "seed_pools": list(cfg.synthesis.seed_pools)},
        "pseudo_labels": {"n": cfg.label.num_samples, "tau": cfg.label.min_agreement, "ties": cfg.label.tie_rule,
                          "below_tau": cfg.label.below_min_agreement, "kg_labels": p.kg_labels},
        "grpo": {"prompts_per_step": cfg.grpo.prompts_per_step, "group_size": cfg.grpo.group_size,
                 "rollout_max_new_tokens": cfg.rollout.max_new_tokens, "temperature": cfg.rollout.temperature,
                 "lr": cfg.policy.lr, "kl_coef": cfg.grpo.kl_coef,
                 "reward": {k: [f"{t.weight} x {t.name}" for t in v] for k, v in cfg.reward.sources.items()}},
        "stages": {"stage1": {"enabled": p.stage1.enabled, "steps": p.stage1.steps, "lr": p.stage1.lr or cfg.policy.lr},
                   "stage2": {"enabled": p.stage2.enabled, "steps": p.stage2.steps, "lr": p.stage2.lr or cfg.policy.lr}},
        "eval": {"benchmarks": list(cfg.eval.benchmarks), "limit": cfg.eval.limit, "num_samples": cfg.eval.num_samples,
                 "max_new_tokens": cfg.eval.max_new_tokens, "temperature": cfg.eval.temperature,
                 "greedy": cfg.eval.greedy},
    }


def scale_gaps(cfg: MedSSRConfig) -> list[str]:
    """Where this run differs from the paper's scale and protocol (docs/design.md)."""
    gaps = []
    if cfg.model.name not in PAPER_MODELS:
        gaps.append(f"model {cfg.model.name} is not one of the paper's policies ({', '.join(PAPER_MODELS)})")
    if cfg.eval.limit:
        gaps.append(f"evaluation on a subsample of {cfg.eval.limit} questions per benchmark, not the full sets")
    if cfg.eval.max_new_tokens < 2048:
        gaps.append(f"evaluation answers get {cfg.eval.max_new_tokens} new tokens (paper: 2048)")
    if cfg.eval.num_samples != 4 or cfg.eval.greedy:
        gaps.append(f"{'greedy, ' if cfg.eval.greedy else ''}{cfg.eval.num_samples} sample(s) per evaluation "
                    "question (paper: 4 at temperature 0.6)")
    if cfg.grpo.group_size != 8:
        gaps.append(f"{cfg.grpo.group_size} rollouts per prompt (paper: 8)")
    stage_steps = [getattr(cfg.pipeline, s).steps for s in ("stage1", "stage2") if getattr(cfg.pipeline, s).enabled]
    if stage_steps and max(stage_steps) < 50:
        gaps.append(f"{' + '.join(map(str, stage_steps))} GRPO steps of {cfg.grpo.prompts_per_step} prompts: "
                    "a demonstration of the mechanics, far too short to expect the paper's gains")
    if cfg.synthesis.num_questions < 1000 and cfg.pipeline.stage1.enabled:
        gaps.append(f"{cfg.synthesis.num_questions} synthetic questions")

    if note := rare_benchmark_note(cfg.eval.benchmarks):
        gaps.append(note)
    return gaps


# ------------------------------------------------------------------------------ per step
def synthesis_section(out: Path) -> dict[str, Any]:
    card = _read_json(out / "synthetic.card.json")
    dist = card.get("distribution", {})
    dims: dict[str, dict[str, dict[str, float | None]]] = {}
    if "rare" in dist:
        dims["rare-disease share"] = {"rare": {"target": dist["rare"].get("target"), "achieved": dist["rare"].get("achieved")}}
    for key, title in (("question_type", "question type (rare)"), ("difficulty", "difficulty (rare)"),
                       ("category", "category (rare)")):
        d = dist.get(key) or {}
        achieved, target = d.get("achieved") or {}, d.get("target") or {}
        if achieved or target:
            dims[title] = {v: {"target": target.get(v) if target else None, "achieved": achieved.get(v, 0.0)}
                           for v in sorted(set(achieved) | set(target))}
    return {"counts": card.get("counts", {}), "mix": dims, "filters": card.get("filters", {}).get("dropped_total", {}),
            "rare": dist.get("rare", {})}


def pseudo_label_section(run_dir: Path) -> dict[str, Any]:
    out = run_dir / "pseudo_labels"
    card = _read_json(out / "pseudo_labels.card.json")
    votes = _read_jsonl(out / "pseudo_labels.votes.jsonl")
    synthetic = {r.id: r for r in read_records(run_dir / "synthesis" / "synthetic.jsonl")} \
        if (run_dir / "synthesis" / "synthetic.jsonl").exists() else {}
    histogram: dict[str, dict[str, int]] = defaultdict(lambda: {"kept": 0, "dropped": 0})
    groups: dict[str, list[bool]] = defaultdict(list)
    for vote in votes:
        if vote.get("agreement") is None:
            continue
        histogram[f"{vote['agreement']:.4f}"]["kept" if vote["kept"] else "dropped"] += 1
        if vote["kept"] and vote.get("gold") is not None:
            record = synthetic.get(vote["id"])
            correct = vote["label"] == vote["gold"]
            groups["all kept"].append(correct)
            if record is not None:
                groups["knowledge-generated (rare)" if is_kg_question(record) else "seed-based"].append(correct)
            groups[f"agreement {vote['agreement']:.2f}"].append(correct)
    accuracy = {name: {"with_gold": len(v), "correct": sum(v), "accuracy": sum(v) / len(v) if v else None,
                       "ci95": list(wilson_interval(sum(v), len(v))) if v else None}   # Wilson, over questions
                for name, v in sorted(groups.items(), key=lambda kv: (kv[0].startswith("agreement"), kv[0]))}
    report = card.get("report", {})
    return {"questions": report.get("questions"), "labelled": report.get("labelled"),
            "fraction_kept": report.get("fraction_kept"), "dropped": report.get("dropped", {}),
            "sample_rates": report.get("sample_rates", {}), "agreement_histogram": dict(histogram),
            "accuracy_vs_key": accuracy, "tau": card.get("vote_rule", {}).get("min_agreement")}


def training_section(out: Path) -> dict[str, Any]:
    rows = _read_jsonl(out / "metrics.jsonl")
    curves: dict[str, list[Any]] = {"step": [r["step"] for r in rows]}
    for key in CURVE_KEYS:
        curves[key] = [r.get(key) for r in rows]
    stamp = _read_json(out / "_step.json")

    def window(key: str, first: bool) -> float | None:
        values = [v for v in curves[key] if v is not None]
        part = values[: max(1, len(values) // 4)] if first else values[-max(1, len(values) // 4):]
        return sum(part) / len(part) if part else None

    section = {"steps": len(rows), "curves": curves, "summary": stamp.get("summary", {}), "seconds": stamp.get("seconds"),
               "first_quarter": {k: window(k, True) for k in CURVE_KEYS},
               "last_quarter": {k: window(k, False) for k in CURVE_KEYS}}
    if any(k in r for r in rows for k in COLLAPSE_KEYS):
        for key in COLLAPSE_KEYS:
            curves[key] = [r.get(key) for r in rows]
        section["collapse"] = {"steps_monitored": sum(1 for r in rows if COLLAPSE_KEYS[0] in r),
                               "first_quarter": {k: window(k, True) for k in COLLAPSE_KEYS},
                               "last_quarter": {k: window(k, False) for k in COLLAPSE_KEYS},
                               "key_accuracy_ci95": {"first_quarter": key_accuracy_interval(rows, True),
                                                     "last_quarter": key_accuracy_interval(rows, False)}}
    return section


def key_accuracy_interval(rows: Sequence[Mapping[str, Any]], first: bool) -> list[float] | None:
    """Wilson 95% interval (fractions) of the collapse monitor's key accuracy over the first or
    last quarter of the monitored steps: the mean of the steps' accuracies as the share, the
    knowledge-keyed questions those steps saw (``collapse/questions``, summed over the steps; a
    question drawn in two steps counts twice) as n: the question is the unit, since a question's
    rollouts are not independent. None where no step counted its questions."""
    steps = [(r["collapse/key_accuracy"], int(r.get("collapse/questions") or 0)) for r in rows
             if r.get("collapse/key_accuracy") is not None]
    part = steps[: max(1, len(steps) // 4)] if first else steps[-max(1, len(steps) // 4):]
    n = sum(q for _, q in part)
    if not n:
        return None
    share = sum(a for a, _ in part) / len(part)
    return list(wilson_interval(share * n, n))


def evaluated_checkpoints(ctx: PipelineContext, steps: Sequence[Step]) -> list[Path]:
    """The finished base / stage 1 / stage 2 evaluation directories, in that order."""
    found = []
    by_name = {step.name: step for step in steps}
    for label in ("base", "stage1", "stage2"):
        step = by_name.get(f"eval_{label}")
        if step is not None and step.disabled_reason(ctx.cfg) is None and (ctx.dir(step) / label).is_dir():
            found.append(ctx.dir(step) / label)
    return found


def combined_eval(ctx: PipelineContext, steps: Sequence[Step]) -> dict[str, Any] | None:
    """The base / stage 1 / stage 2 eval summaries as one summary (the eval report layout)."""
    parts = []
    by_name = {step.name: step for step in steps}
    for label in ("base", "stage1", "stage2"):
        step = by_name.get(f"eval_{label}")
        if step is not None and step.disabled_reason(ctx.cfg) is None:
            summary = _read_json(ctx.dir(step) / "summary.json")
            if summary:
                parts.append(summary)
    if not parts:
        return None
    combined = {k: v for k, v in parts[0].items() if k != "checkpoints"}
    combined["checkpoints"] = [c for part in parts for c in part["checkpoints"]]
    return combined


# ------------------------------------------------------------------------------ writing
def write_report(ctx: PipelineContext, out: Path, steps: Sequence[Step]) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and the figures of the run into ``out``; ``steps``
    are the pipeline's steps (the report reads their directories and manifest entries)."""
    cfg, run_dir = ctx.cfg, ctx.run_dir
    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_json(run_dir / MANIFEST_FILE)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "setting": describe_setting(cfg), "scale_gaps": scale_gaps(cfg),
                               "steps": {step.name: {k: entry.get(k) for k in ("status", "seconds", "action", "reason")}
                                         for step in steps if step.name != "report"
                                         for entry in [manifest.get("steps", {}).get(step.name, {})]},
                               "figures": {}}
    draw = cfg.pipeline.report_figures
    real_card = _read_json(ctx.shared_dir / "real_data" / "real.card.json")
    summary["real_data"] = {"written": real_card.get("total_written"),
                            "pools": {k: v.get("written") for k, v in real_card.get("pools", {}).items()},
                            "removed_eval_overlap": {k: v.get("removed_contaminated_total")
                                                     for k, v in real_card.get("pools", {}).items()}}
    if cfg.pipeline.stage1.enabled:
        summary["synthesis"] = synthesis_section(run_dir / "synthesis")
        summary["pseudo_labels"] = pseudo_label_section(run_dir)
        if draw and summary["synthesis"]["mix"]:
            summary["figures"]["mix"] = figures.mix_achieved_vs_target(summary["synthesis"]["mix"],
                                                                       out / "synthesis_mix.png").name
        labels = summary["pseudo_labels"]
        if draw and labels["agreement_histogram"]:
            summary["figures"]["agreement"] = figures.agreement_histogram(
                labels["agreement_histogram"], cfg.label.min_agreement, out / "agreement_histogram.png").name
        if draw and any(g["with_gold"] for g in labels["accuracy_vs_key"].values()):
            summary["figures"]["label_accuracy"] = figures.pseudo_label_accuracy(
                labels["accuracy_vs_key"], out / "pseudo_label_accuracy.png").name
    summary["training"] = {stage: training_section(run_dir / stage) for stage in ("stage1", "stage2")
                           if getattr(cfg.pipeline, stage).enabled}
    if draw and summary["training"]:
        summary["figures"]["training"] = figures.training_curves(
            {k: v["curves"] for k, v in summary["training"].items()}, out / "training_curves.png").name
    evaluation = combined_eval(ctx, steps)
    summary["evaluation"] = evaluation
    if evaluation is not None and draw:
        summary["figures"]["accuracy"] = write_chart(evaluation, out / "accuracy_per_benchmark.png").name
    if evaluation is not None:   # paired tests on the same questions: base -> stage 1 -> stage 2
        summary["comparisons"] = compare_in_order(evaluated_checkpoints(ctx, steps))
    write_json_atomic(out / "summary.json", summary)
    text = render_markdown(summary, markdown_table(evaluation) if evaluation else None)
    write_text_atomic(out / "report.md", text)
    return summary


def collapse_lines(training: Mapping[str, Any]) -> list[str]:
    """The collapse monitor's table (stages that monitored it), key accuracy with the Wilson
    interval of the last quarter."""
    monitored = {stage: t["collapse"] for stage, t in training.items() if t.get("collapse")}
    if not monitored:
        return []
    lines = ["", "**Collapse monitor** (questions with a knowledge-base key): how often the pseudo-label "
                 "reward agrees with the key's reward, the policy's agreement with its own pseudo labels "
                 "and its drift since the first step, and accuracy against the key with the Wilson 95% interval "
                 "of the last quarter over its questions; first → last quarter.",
             "", "| stage | steps | reward agreement | self-agreement | key accuracy [95% CI] | drift (last quarter) |",
             "|---|---:|---|---|---|---:|"]
    for stage, c in monitored.items():
        first, last = c["first_quarter"], c["last_quarter"]
        cells = []
        for k in COLLAPSE_KEYS:
            if k == COLLAPSE_KEYS[3]:
                cells.append(_num(last[k], 3))
                continue
            cell = f"{_num(first[k], 2)} → {_num(last[k], 2)}"
            interval = (c.get("key_accuracy_ci95") or {}).get("last_quarter") if k == "collapse/key_accuracy" else None
            cells.append(cell + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
        lines.append(f"| {stage} | {c['steps_monitored']} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(summary: Mapping[str, Any], eval_table: str | None) -> str:
    s = summary["setting"]
    fig = summary["figures"]
    lines = ["# MedSSR run report", "", f"Run directory: `{summary['run_dir']}`", "", "## Setting", ""]
    m, syn, lab, g, st, ev = s["model"], s["synthesis"], s["pseudo_labels"], s["grpo"], s["stages"], s["eval"]
    lines += [
        f"- Policy: **{m['name']}** (`{m['path']}`), {m['prompt_style']} prompts, {m['dtype']}, "
        f"`{m['policy_backend']}` backend, `{m['rollout_engine']}` rollouts.",
        f"- Real data: pools {', '.join(s['data']['pools'])}"
        + (f" (at most {s['data']['max_per_pool']} per pool)" if s["data"]["max_per_pool"] else "") + ".",
        f"- Synthesis: {syn['num_questions']} questions by `{syn['synthesizer']}` from `{syn['knowledge']}`, "
        f"rare ratio α = {syn['alpha']}, seeds from {', '.join(syn['seed_pools'])}.",
        f"- Pseudo-labels: n = {lab['n']} votes, τ = {lab['tau']} (below τ: {lab['below_tau']}; ties: {lab['ties']}); "
        "knowledge-generated questions train on: "
        + ("the vote." if lab["kg_labels"] == "pseudo" else "their known key (ablation)."),
        f"- GRPO: {g['prompts_per_step']} prompts x {g['group_size']} rollouts per step, {g['rollout_max_new_tokens']} new "
        f"tokens at temperature {g['temperature']}, KL coefficient {g['kl_coef']}; rewards "
        + "; ".join(f"{k}: {' + '.join(v)}" for k, v in g["reward"].items()) + ".",
        "- Stages: " + ", ".join(f"{name} {'%d steps at lr %g' % (v['steps'], v['lr']) if v['enabled'] else 'skipped'}"
                                 for name, v in st.items()) + ".",
        f"- Evaluation: {len(ev['benchmarks'])} benchmarks"
        + (f", {ev['limit']} questions each" if ev["limit"] else ", full sets")
        + f", {ev['num_samples']} sample(s), {ev['max_new_tokens']} new tokens"
        + (", greedy" if ev["greedy"] else f", temperature {ev['temperature']}") + ".",
    ]
    if summary["scale_gaps"]:
        lines += ["", "**Scale.** These numbers are what this run measured at this setting, not the paper's: "
                      + "; ".join(summary["scale_gaps"]) + "."]
    lines += ["", "## Steps", "", "| step | status | last action | seconds |", "|---|---|---|---:|"]
    for name, entry in summary["steps"].items():
        lines.append(f"| {name} | {entry.get('status')} | {entry.get('action') or '–'} | {_num(entry.get('seconds'), 1)} |")
    real = summary["real_data"]
    lines += ["", "## 1. Real data", "",
              f"{real['written']} decontaminated questions ({', '.join(f'{k}: {v}' for k, v in real['pools'].items())}); "
              f"removed for overlap with the evaluation suite: "
              + ", ".join(f"{k}: {v}" for k, v in real["removed_eval_overlap"].items()) + "."]
    if "synthesis" in summary:
        syn_out = summary["synthesis"]
        counts = syn_out["counts"]
        lines += ["", "## 2. Synthetic questions", "",
                  f"{counts.get('written')} of {counts.get('planned')} planned questions written; the filters dropped "
                  + (", ".join(f"{n} for {k}" for k, n in syn_out["filters"].items()) or "nothing") + ".",
                  "", "| dimension | value | target | achieved |", "|---|---|---:|---:|"]
        for dim, values in syn_out["mix"].items():
            for value, pair in values.items():
                lines.append(f"| {dim} | {value} | {_num(pair['target'])} | {_num(pair['achieved'])} |")
        if "mix" in fig:
            lines += ["", f"![achieved vs target mix]({fig['mix']})"]
        labels = summary["pseudo_labels"]
        rates = labels["sample_rates"]
        lines += ["", "## 3. Pseudo-labels", "",
                  f"{labels['labelled']} of {labels['questions']} questions labelled ({_pct(labels['fraction_kept'])}); "
                  f"dropped: {labels['dropped'] or 'none'}. Of all samples, {_pct(rates.get('follows_format'))} stated "
                  f"'The answer is X' and {_pct(rates.get('recovered'))} needed the constrained re-decode.", "",
                  "| questions | labels equal to the known key [95% Wilson interval] |", "|---|---:|"]
        for name, acc in labels["accuracy_vs_key"].items():
            interval = acc.get("ci95")
            lines.append(f"| {name} | {acc['correct']}/{acc['with_gold']} = {_pct(acc['accuracy'])}"
                         + (f" [{_pct(interval[0])}, {_pct(interval[1])}]" if interval else "") + " |")
        for key, alt in (("agreement", "agreement histogram"), ("label_accuracy", "pseudo-label accuracy")):
            if key in fig:
                lines += ["", f"![{alt}]({fig[key]})"]
    if summary["training"]:
        lines += ["", "## 4-5. GRPO stages", "",
                  "| stage | steps | questions | reward first → last quarter | format rate | KL (last quarter) |",
                  "|---|---:|---:|---|---|---:|"]
        for stage, t in summary["training"].items():
            first, last = t["first_quarter"], t["last_quarter"]
            lines.append(f"| {stage} | {t['steps']} | {t['summary'].get('training_questions', '–')} | "
                         f"{_num(first['reward/mean'])} → {_num(last['reward/mean'])} | "
                         f"{_num(first['answer/format_rate'], 2)} → {_num(last['answer/format_rate'], 2)} | "
                         f"{_num(last['train/kl'], 5)} |")
        if "training" in fig:
            lines += ["", f"![reward, KL and format rate per stage]({fig['training']})"]
        lines += collapse_lines(summary["training"])
    if eval_table:
        lines += ["", "## 6. Evaluation", "", "Accuracy (%) per benchmark; `Rare` averages the rare-disease benchmarks.",
                  "", eval_table.rstrip()]
        if "accuracy" in fig:
            lines += ["", f"![accuracy per benchmark]({fig['accuracy']})"]
        if summary.get("comparisons"):
            lines += ["", "### Paired comparisons on the same questions", "",
                      "Differences are in percentage points, later checkpoint minus earlier; one sample per question: "
                      "exact McNemar p-value and Newcombe interval; several samples: sign-flip permutation p-value and "
                      "a question-bootstrap interval widened where few questions make it too narrow (docs/statistics.md).",
                      "", markdown_many(summary["comparisons"]).rstrip()]
    lines += ["", "All numbers are in `summary.json` next to this file; every step's settings, input hashes, "
                  "versions and timings are in the run's `manifest.json`.", ""]
    return "\n".join(lines)
