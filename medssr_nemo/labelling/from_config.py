"""Pseudo-labelling from the config (what ``medssr label`` and the pipeline's ``pseudo_labels``
step run): read ``label.input``, build the ``LabelJob`` and the engine, sample, vote, write.

The policy is ``model.path``; sampling comes from ``label.*`` where set, else from ``rollout.*``;
the engine is ``rollout.engine`` with ``rollout.batch_size`` sequences per call. Outputs go to
``output_dir`` (see ``medssr_nemo.labelling.run``). A killed run continues where it stopped when
started again with the same settings; a finished one is not redone.
"""

from __future__ import annotations

from typing import Any


from medssr_nemo.artifacts import file_sha256
from medssr_nemo.config import MedSSRConfig
from medssr_nemo.config.schema.answer import answer_extraction
from medssr_nemo.labelling.run import LabelJob, LabelSettings
from medssr_nemo.labelling.vote import VoteRule
from medssr_nemo.models.loading import model_type_or_none
from medssr_nemo.records import read_records
from medssr_nemo.rollout.for_checkpoint import engine_for_checkpoint


def settings_from_config(cfg: MedSSRConfig) -> LabelSettings:
    """``label.*`` sampling where set, else ``rollout.*``; the prompt style of ``model``."""
    lab, roll = cfg.label, cfg.rollout
    pick = lambda mine, default: default if mine is None else mine  # noqa: E731
    return LabelSettings.build(
        prompt_style=cfg.model.prompt_style, num_samples=lab.num_samples,
        temperature=float(pick(lab.temperature, roll.temperature)), top_p=float(pick(lab.top_p, roll.top_p)),
        top_k=int(pick(lab.top_k, roll.top_k)), max_new_tokens=int(pick(lab.max_new_tokens, roll.max_new_tokens)),
        recovery=lab.recovery, seed=lab.seed, max_prompt_tokens=cfg.model.max_prompt_tokens,
        answer_extraction=answer_extraction(cfg, "label"),
    )


def label(cfg: MedSSRConfig, engine: Any = None, tokenizer: Any = None, progress: bool = True) -> int:
    """Run ``medssr label``; ``engine``/``tokenizer`` replace loading ``model.path`` (tests, notebooks)."""
    if not cfg.label.input:
        raise ValueError("label.input is not set: give a JSONL/Parquet file of question records "
                         "(e.g. from `medssr synth`), as label.input=PATH")
    records = read_records(cfg.label.input)
    if cfg.label.limit:
        records = records[: cfg.label.limit]
    if not records:
        raise ValueError(f"label.input={cfg.label.input} holds no question records")
    rule = VoteRule(min_agreement=cfg.label.min_agreement, below_min_agreement=cfg.label.below_min_agreement,  # type: ignore[arg-type]
                    tie_rule=cfg.label.tie_rule, seed=cfg.label.seed)  # type: ignore[arg-type]
    job = LabelJob(records, settings_from_config(cfg), rule, cfg.output_dir, cfg.label.output_name,
                   model_id=cfg.model.path, extra_identity={"engine": cfg.rollout.engine},
                   inputs={str(cfg.label.input): file_sha256(cfg.label.input)},
                   model_type=model_type_or_none(cfg.model.path) if engine is None else None)
    if job.finished():
        print(f"medssr label: {job.records_path} is up to date (same input, model and settings); nothing to do")
        return 0
    log = job.open_log()
    done = len(records) - len(job.pending(log))
    if done:
        print(f"medssr label: resuming, {done} of {len(records)} questions already sampled in {job.samples_path}")
    if job.pending(log):
        if engine is None:
            engine, tokenizer = build_engine(cfg)
        log = job.sample(engine, tokenizer, questions_per_chunk=max(1, cfg.rollout.batch_size // cfg.label.num_samples),
                         progress=progress, log=log)
    card = job.finalize(log)
    report = card["report"]
    print(f"labelled {report['labelled']} of {report['questions']} questions (kept {report['fraction_kept']}); "
          f"dropped {report['dropped']}; agreement histogram {report['agreement_histogram']}")
    accuracy = report["accuracy_vs_gold"]["labelled"]
    if accuracy["with_gold"]:
        print(f"pseudo-label accuracy against the known key: {accuracy['correct']}/{accuracy['with_gold']} "
              f"= {accuracy['accuracy']}")
    print(f"wrote {job.records_path} (card: {job.card_path})")
    return 0


def build_engine(cfg: MedSSRConfig) -> tuple[Any, Any]:
    """The ``rollout.engine`` on ``model.path`` and its tokenizer (rollout/for_checkpoint.py)."""
    return engine_for_checkpoint(cfg.rollout, cfg.rollout.engine, cfg.model.path, cfg.model.dtype)
