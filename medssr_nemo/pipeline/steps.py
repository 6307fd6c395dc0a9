"""The steps of ``medssr run``, in order. Each one says which settings and files it depends on
(its fingerprint), which steps feed it, how to run (resuming from what its directory already
holds), and which files it leaves behind. The library calls are the same ones the single-job
commands use (``medssr data real``, ``synth``, ``label``, ``train``, ``eval``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from medssr_nemo import distributed
from medssr_nemo.config import MedSSRConfig
from medssr_nemo.data.eval_files import eval_dir
from medssr_nemo.data.prepare import prepare_real_data
from medssr_nemo.data.real import pool_inputs
from medssr_nemo.eval.runner import Checkpoint, checkpoint_prompt_style, run_eval
from medssr_nemo.eval.suite import effective_benchmarks
from medssr_nemo.grpo.trainer import run_training
from medssr_nemo.labelling.from_config import label, settings_from_config
from medssr_nemo.labelling.samples_log import SamplesLogError
from medssr_nemo.data.root import data_root
from medssr_nemo.pipeline.context import PipelineContext, Step, StepCallback
from medssr_nemo.pipeline.report import write_report
from medssr_nemo.records import QuestionRecord, is_kg_question, read_records, write_records
from medssr_nemo.synthesis.from_config import run_synthesis
from medssr_nemo.tracking.results import log_results

__all__ = ["STEPS", "PipelineContext", "Step", "StepCallback", "dependents", "stage1_training_records", "step_named"]


def _section_values(cfg: MedSSRConfig, name: str, drop: Sequence[str] = ()) -> dict[str, Any]:
    """The config section ``name`` as a dict, without the keys in ``drop``."""
    values = dataclasses.asdict(getattr(cfg, name))
    for key in drop:
        values.pop(key, None)
    return values


def _config_with(cfg: MedSSRConfig, **sections: dict[str, Any]) -> MedSSRConfig:
    """A copy of ``cfg`` with some fields replaced: ``output_dir="x"``, ``train={"steps": 3}``."""
    out = copy.deepcopy(cfg)
    for name, value in sections.items():
        if isinstance(value, dict):
            target = getattr(out, name)
            for key, item in value.items():
                setattr(target, key, item)
        else:
            setattr(out, name, value)
    return out


def _card(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# ---------------------------------------------------------------------------------------- 1
class RealData(Step):
    name, title = "real_data", "real data (decontaminated) and seed questions"
    shared = True       # an α sweep prepares it once

    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        return {"data": _section_values(cfg, "data", drop=("output_name",))}

    def input_files(self, ctx: PipelineContext) -> list[Path]:
        root = data_root()
        files = [p for pool in ctx.cfg.data.pools for p in pool_inputs(pool, root)]
        evals = eval_dir(root)
        files += sorted((evals / "medssr").glob("test_short_*.json")) + sorted((evals / "medxpertqa").glob("*.jsonl"))
        files += sorted((evals / "rarebench").glob("*.jsonl"))
        return files

    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        prepare_real_data(_config_with(ctx.cfg, output_dir=str(out), data={"output_name": "real"}))
        card = _card(out / "real.card.json")
        return {"written": card.get("total_written"), "pools": {k: v.get("written") for k, v in card.get("pools", {}).items()}}

    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        return [out / "real.jsonl", out / "real.card.json", out / "real.removed.jsonl", out / "real.stage1_seeds.jsonl"]


# ---------------------------------------------------------------------------------------- 2
def _stage1_off(cfg: MedSSRConfig) -> str | None:
    return None if cfg.pipeline.stage1.enabled else "pipeline.stage1.enabled=false: no self-supervised stage"


class Synthesis(Step):
    name, title = "synthesis", "synthetic questions"

    def disabled_reason(self, cfg: MedSSRConfig) -> str | None:
        return _stage1_off(cfg)

    def upstream(self, cfg: MedSSRConfig) -> list[str]:
        return ["real_data"]

    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        return {"synthesis": _section_values(cfg, "synthesis", drop=("show_progress", "output_name")),
                "data.decontam": _section_values(cfg, "data")["decontam"],
                "data.stage1_seed_share": cfg.data.stage1_seed_share}

    def input_files(self, ctx: PipelineContext) -> list[Path]:
        # the stage-1 seed reserve (data.stage1_seed_share), disjoint from stage 2's real.jsonl;
        # with no reserve (share 0) the seeds are stage 2's own questions
        reserve = ctx.shared_dir / "real_data" / "real.stage1_seeds.jsonl"
        if ctx.cfg.data.stage1_seed_share > 0:
            return [reserve]
        return [ctx.shared_dir / "real_data" / "real.jsonl"]

    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        cfg = ctx.cfg
        pools = list(cfg.synthesis.seed_pools)
        missing = [p for p in pools if p not in cfg.data.pools]
        if missing:
            raise ValueError(f"synthesis.seed_pools={pools} names {missing}, which data.pools={list(cfg.data.pools)} "
                             "does not prepare; add them to data.pools or drop them from synthesis.seed_pools")
        seeds = [r for r in read_records(self.input_files(ctx)[0]) if r.source in pools]
        step_cfg = _config_with(cfg, output_dir=str(out), synthesis={"output_name": "synthetic", "show_progress": ctx.progress})
        result = run_synthesis(step_cfg, seeds=seeds)
        card = result.card or _card(out / "synthetic.card.json")
        return {"seed_questions": len(seeds), "counts": card.get("counts"),
                "rare_share": card.get("distribution", {}).get("rare")}

    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        return [out / "synthetic.jsonl", out / "synthetic.card.json"]

    def recorded_inputs(self, out: Path) -> dict[str, Any]:
        return _card(out / "synthetic.card.json").get("inputs", {})


# ---------------------------------------------------------------------------------------- 3
def _model_settings(cfg: MedSSRConfig) -> dict[str, Any]:
    return _section_values(cfg, "model", drop=("name",))


class PseudoLabels(Step):
    name, title = "pseudo_labels", "offline pseudo-labels (majority vote of the initial policy)"
    collective = every_rank_generates = True
    # the sampled answers: a change of the vote rule alone (tau, ties) re-votes them without sampling
    kept_on_rerun = ("pseudo_labels.samples.jsonl",)

    def disabled_reason(self, cfg: MedSSRConfig) -> str | None:
        return _stage1_off(cfg)

    def upstream(self, cfg: MedSSRConfig) -> list[str]:
        return ["synthesis"]

    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        return {"model": _model_settings(cfg), "label": _section_values(cfg, "label", drop=("input", "output_name")),
                "sampling": settings_from_config(cfg).identity(), "rollout.engine": cfg.rollout.engine}

    def input_files(self, ctx: PipelineContext) -> list[Path]:
        return [ctx.run_dir / "synthesis" / "synthetic.jsonl"]

    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        step_cfg = _config_with(ctx.cfg, output_dir=str(out),
                            label={"input": str(self.input_files(ctx)[0]), "output_name": "pseudo_labels"})
        try:
            label(step_cfg, progress=ctx.progress)
        except SamplesLogError:   # the kept samples came from other questions, model or sampling
            (out / self.kept_on_rerun[0]).unlink()
            label(step_cfg, progress=ctx.progress)
        report = _card(out / "pseudo_labels.card.json").get("report", {})
        return {k: report.get(k) for k in ("questions", "labelled", "fraction_kept", "dropped", "accuracy_vs_gold")}

    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        return [out / f"pseudo_labels{suffix}" for suffix in (".jsonl", ".votes.jsonl", ".card.json")]


# ---------------------------------------------------------------------------------------- 4, 5
def stage1_training_records(synthetic: Sequence[QuestionRecord], labelled: Sequence[QuestionRecord],
                            kg_labels: str) -> list[QuestionRecord]:
    """The stage-1 training set, in synthesis order: the questions the vote kept (pseudo-labels);
    with ``kg_labels='gold'``, every knowledge-generated question trains on its known key instead."""
    by_id = {r.id: r for r in labelled}
    chosen = []
    for record in synthetic:
        if kg_labels == "gold" and is_kg_question(record):
            chosen.append(dataclasses.replace(by_id.get(record.id, record), label=record.gold, label_source="gold"))
        elif record.id in by_id:
            chosen.append(by_id[record.id])
    return chosen


# the stage sets data and steps itself; how often it checkpoints does not change what is trained
_TRAIN_KEYS_NOT_IN_RESULT = ("data", "steps", "save_every", "keep_checkpoints", "tensorboard", "loggers", "tracking")


class TrainStage(Step):
    """GRPO stage 1 (pseudo-labelled synthetic questions) or 2 (gold real questions)."""

    collective = True

    def __init__(self, number: int) -> None:
        self.number = number
        self.name = f"stage{number}"
        self.title = ("stage 1: self-supervised GRPO on pseudo-labelled synthetic questions" if number == 1
                      else "stage 2: supervised GRPO on human-annotated questions")

    def stage(self, cfg: MedSSRConfig) -> Any:
        return getattr(cfg.pipeline, self.name)

    def disabled_reason(self, cfg: MedSSRConfig) -> str | None:
        return None if self.stage(cfg).enabled else f"pipeline.{self.name}.enabled=false"

    def upstream(self, cfg: MedSSRConfig) -> list[str]:
        if self.number == 1:
            return ["synthesis", "pseudo_labels"]
        return ["real_data", "stage1"] if cfg.pipeline.stage1.enabled else ["real_data"]

    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        values = {"seed": cfg.seed, "model": _model_settings(cfg),
                  **{name: _section_values(cfg, name) for name in ("rollout", "policy", "grpo", "reward")},
                  "train": _section_values(cfg, "train", drop=_TRAIN_KEYS_NOT_IN_RESULT),
                  f"pipeline.{self.name}": dataclasses.asdict(self.stage(cfg))}
        if self.number == 1:
            values["pipeline.kg_labels"] = cfg.pipeline.kg_labels
        return values

    def input_files(self, ctx: PipelineContext) -> list[Path]:
        if self.number == 1:
            return [ctx.run_dir / "synthesis" / "synthetic.jsonl", ctx.run_dir / "pseudo_labels" / "pseudo_labels.jsonl"]
        return [ctx.shared_dir / "real_data" / "real.jsonl"]

    def start_model(self, ctx: PipelineContext) -> str:
        if self.number == 2 and ctx.cfg.pipeline.stage1.enabled:
            return str(ctx.run_dir / "stage1" / "hf_model")
        return ctx.cfg.model.path

    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        cfg, stage = ctx.cfg, self.stage(ctx.cfg)
        data = out / "train.jsonl"
        if self.number == 1:
            synthetic_path, labels_path = self.input_files(ctx)
            records = stage1_training_records(read_records(synthetic_path), read_records(labels_path), cfg.pipeline.kg_labels)
            if not records:
                raise ValueError(f"stage 1 has no training questions: the vote kept none of {synthetic_path}; "
                                 "lower label.min_agreement or raise label.num_samples")
        else:
            records = read_records(self.input_files(ctx)[0])
        if distributed.is_main():
            write_records(records, data)
        distributed.barrier()
        step_cfg = _config_with(cfg, output_dir=str(out), model={"path": self.start_model(ctx)},
                            train={"data": str(data), "steps": stage.steps},
                            policy={"lr": stage.lr if stage.lr is not None else cfg.policy.lr})
        metrics = run_training(step_cfg, callbacks=list(ctx.train_callbacks.get(self.name, ())),
                               show_progress=ctx.progress)
        keep = ("reward/mean", "answer/format_rate", "answer/valid_rate", "train/kl", "train/entropy")
        return {"start_model": self.start_model(ctx), "training_questions": len(records),
                "label_sources": {s: sum(r.label_source == s for r in records) for s in ("pseudo", "gold")},
                "final": {k: metrics.get(k) for k in keep}}

    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        return [out / "hf_model", out / "metrics.jsonl", out / "summary.json", out / "train.jsonl"]


# ---------------------------------------------------------------------------------------- 6
class Evaluate(Step):
    """The benchmark suite on one checkpoint: base (shared by an α sweep), stage 1 or stage 2."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.name = f"eval_{label}"
        self.title = f"evaluation of {'the base policy' if label == 'base' else label}"
        self.shared = label == "base"
        self.collective = self.every_rank_generates = True

    def disabled_reason(self, cfg: MedSSRConfig) -> str | None:
        if self.label == "base":
            return None
        return TrainStage(int(self.label[-1])).disabled_reason(cfg)

    def upstream(self, cfg: MedSSRConfig) -> list[str]:
        return [] if self.label == "base" else [self.label]

    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        values = {"eval": _section_values(cfg, "eval", drop=("checkpoints", "checkpoint_labels", "output_dir", "chart")),
                  "model.prompt_style": cfg.model.prompt_style, "model.dtype": cfg.model.dtype,
                  "rollout.engine": cfg.rollout.engine}
        if self.label == "base":
            values["model.path"] = cfg.model.path

        values["eval.suite"] = effective_benchmarks(cfg.eval.benchmarks)   # RareDis-Sub fetched later: re-run
        return values

    def reference(self, ctx: PipelineContext) -> str:
        return ctx.cfg.model.path if self.label == "base" else str(ctx.run_dir / self.label / "hf_model")

    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        # a trained checkpoint is prompted as its training was: model.prompt_style resolved on model.path
        style = checkpoint_prompt_style(Checkpoint("policy", ctx.cfg.model.path, ctx.cfg.model.prompt_style))
        step_cfg = _config_with(ctx.cfg, eval={"checkpoints": [self.reference(ctx)], "checkpoint_labels": [self.label],
                                               "checkpoint_prompt_styles": [ctx.cfg.eval.prompt_style or style],
                                               "output_dir": str(out), "chart": False})
        summary = run_eval(step_cfg, progress=ctx.progress)
        checkpoint = summary["checkpoints"][0]
        return {"macro_accuracy_pct": checkpoint["macro_accuracy_pct"], "rare_accuracy_pct": checkpoint["rare_accuracy_pct"]}

    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        return [out / "summary.json", out / "summary.md"]


# ---------------------------------------------------------------------------------------- 7
class Report(Step):
    name, title = "report", "report (report.md, figures, summary.json)"

    def upstream(self, cfg: MedSSRConfig) -> list[str]:
        return [s.name for s in STEPS if s.name != self.name and s.disabled_reason(cfg) is None]

    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        return {"pipeline.report_figures": cfg.pipeline.report_figures}

    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        summary = write_report(ctx, out, STEPS)
        log_results(ctx.cfg, out, evaluation=summary.get("evaluation"), comparisons=summary.get("comparisons") or (),
                    figures={k: out / v for k, v in summary["figures"].items()},
                    files=[out / "report.md", out / "summary.json"])
        return {"report": str(out / "report.md"), "figures": sorted(summary.get("figures", {}))}

    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        return [out]


STEPS: list[Step] = [RealData(), Synthesis(), PseudoLabels(), TrainStage(1), TrainStage(2),
                     Evaluate("base"), Evaluate("stage1"), Evaluate("stage2"), Report()]


def dependents(name: str, cfg: MedSSRConfig) -> list[str]:
    """The enabled steps that depend on step ``name``, directly or through other steps, in order."""
    found: set[str] = {name}
    for step in STEPS:
        if step.disabled_reason(cfg) is None and found & set(step.upstream(cfg)):
            found.add(step.name)
    return [s.name for s in STEPS if s.name in found and s.name != name]


def step_named(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(f"no pipeline step {name!r}; steps: {[s.name for s in STEPS]}")
