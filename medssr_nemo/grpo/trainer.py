"""The GRPO recipe. ``setup()`` builds every part from config; ``train()`` is the loop, read top
to bottom: rollout -> reward -> logprobs -> advantage -> update -> refit -> log -> checkpoint.

Everything random in a step is derived from (seed, step, question, sample), and the data order
from (seed, epoch), so a run resumed from a checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from medssr_nemo import distributed, registry
from medssr_nemo.answers import AnswerReader
from medssr_nemo.artifacts import write_text_atomic
from medssr_nemo.config import MedSSRConfig, to_yaml
from medssr_nemo.config.schema.answer import answer_extraction
from medssr_nemo.grpo.advantages import get_advantage_estimator, zero_std_fraction
from medssr_nemo.grpo.checkpoint import CheckpointManager
from medssr_nemo.grpo.collapse import CollapseMonitor
from medssr_nemo.grpo.data import QuestionSampler, TrainingQuestion, load_training_records, prepare_questions
from medssr_nemo.grpo.losses import make_grpo_loss
from medssr_nemo.grpo.metrics_log import MetricsLogger
from medssr_nemo.grpo.rollouts import (build_token_batch, generate_groups, logprob_mismatch,
                                       response_metrics, score_groups)
from medssr_nemo.policy.interfaces import Colocatable, PolicyBackend
from medssr_nemo.prompts import resolve_prompt_style
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rewards.composite import RewardRouter
from medssr_nemo.rollout.interfaces import RolloutEngine, SamplingParams, needs_policy_module
from medssr_nemo.timing import PhaseTimer

log = logging.getLogger(__name__)

# on_step_end(step, metrics) — e.g. early stopping or tests that interrupt a run
StepCallback = Callable[[int, dict[str, Any]], None]

STEP_KEY, SAMPLER_KEY, WEIGHT_VERSION_KEY, CONFIG_HASH_KEY = "step", "sampler", "weight_version", "config_hash"


class GRPOTrainer:
    def __init__(self, cfg: MedSSRConfig, *, records: Sequence[QuestionRecord] | None = None,
                 policy: PolicyBackend | None = None, engine: RolloutEngine | None = None,
                 callbacks: Sequence[StepCallback] = (), show_progress: bool = True) -> None:
        self.cfg = cfg
        self._records = list(records) if records is not None else None
        self.policy = policy
        self.engine = engine
        self.callbacks = list(callbacks)
        self.show_progress = show_progress
        self.output_dir = Path(cfg.output_dir)
        self.step = 0
        # the engine counts its own refits; a resumed run adds this so logged versions continue
        self._version_offset = 0

    # ------------------------------------------------------------------ setup
    def setup(self) -> "GRPOTrainer":
        cfg = self.cfg
        distributed.init_distributed()
        torch.manual_seed(cfg.seed)
        self.is_main = distributed.is_main()
        if self.is_main:
            write_text_atomic(self.output_dir / "config.yaml", to_yaml(cfg))
        records = self._records
        if records is None:   # before the model loads: a missing or bad train.data fails in seconds
            if not cfg.train.data:
                raise ValueError("train.data is not set: give a JSONL/Parquet file of question records "
                                 "(from `medssr data real` or `medssr label`) or real:<pool>, e.g. real:medmcqa")
            records = load_training_records(cfg.train.data)
        if self.policy is None:
            build_policy = registry.get("policy_backend", cfg.policy.backend)
            self.policy = build_policy(cfg, reference=cfg.grpo.kl_coef > 0)
        # a colocatable policy lends its module to an engine that declares it needs it, and
        # frees memory around generation and refits
        self.colocated = self.policy if isinstance(self.policy, Colocatable) else None
        if self.engine is None:
            self.engine = self._build_engine()
        self.engine.attach_trainer_memory(self.colocated.trainer_memory() if self.colocated is not None else None)
        style = resolve_prompt_style(cfg.model.prompt_style, cfg.model.path, self.policy.tokenizer)
        self.questions, report = prepare_questions(records, self.policy.tokenizer, style, cfg.model.max_prompt_tokens)
        self.answer_reader = AnswerReader(answer_extraction(cfg, "reward"), cfg.model.path)
        log.info("training questions: %d kept of %d (%d without a label, %d prompts too long)",
                 report.kept, report.loaded, report.without_label, report.too_long)
        self.sampler = QuestionSampler(len(self.questions), cfg.seed, cfg.train.shuffle)
        self.rewards = RewardRouter.from_config(cfg.reward)
        self.advantage_estimator = get_advantage_estimator(cfg.grpo.advantage_estimator)
        temperature = cfg.rollout.temperature
        self.logprob_temperature = temperature if temperature > 0 else 1.0
        self.loss_fn = make_grpo_loss(cfg.grpo, max_response_len=cfg.rollout.max_new_tokens,
                                      temperature=self.logprob_temperature)
        self.sampling = SamplingParams(temperature=temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                                       max_new_tokens=cfg.rollout.max_new_tokens)
        self.checkpoints = CheckpointManager(self.output_dir, cfg.train.keep_checkpoints)
        self.logger = MetricsLogger.for_run(cfg, self.output_dir, enabled=self.is_main)
        self.timer = PhaseTimer()
        monitor = CollapseMonitor(self.answer_reader)   # stage 1: pseudo-label reward vs the knowledge-base key
        self.collapse = monitor if monitor.enabled_for([q.record for q in self.questions]) else None
        self._resume()
        return self

    def _build_engine(self) -> RolloutEngine:
        cfg = self.cfg
        build_engine = registry.get("rollout_engine", cfg.rollout.engine)
        module = None
        if needs_policy_module(build_engine):
            if self.colocated is None:
                raise ValueError(f"rollout.engine={cfg.rollout.engine} samples on the policy's own module, but "
                                 f"policy.backend={cfg.policy.backend} is not Colocatable (no rollout_module)")
            module = self.colocated.rollout_module()
        return build_engine(cfg.rollout, model=module, tokenizer=self.policy.tokenizer, model_path=cfg.model.path)

    def _config_hash(self) -> str:
        return hashlib.sha256(to_yaml(self.cfg).encode()).hexdigest()[:16]

    def _resume(self) -> None:
        latest = self.checkpoints.latest()
        if latest is None:   # a run killed before its first checkpoint starts over, log included
            self.logger.truncate_after(0)
            return
        state = self.checkpoints.load(latest, self.policy)
        if state.get(CONFIG_HASH_KEY) != self._config_hash():
            log.warning("resuming from %s although the config changed since it was written", latest)
        self.step = int(state[STEP_KEY])
        self.sampler.restore(state[SAMPLER_KEY])
        refit_version = self.engine.update_weights(self.policy.export_hf_weights())
        self._version_offset = int(state.get(WEIGHT_VERSION_KEY, refit_version)) - refit_version
        self.logger.truncate_after(self.step)
        log.info("resumed from %s at step %d", latest, self.step)

    # ------------------------------------------------------------------ loop
    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        progress = tqdm(total=cfg.train.steps, initial=self.step, desc="GRPO", unit="step",
                        disable=not (self.show_progress and self.is_main))
        metrics: dict[str, Any] = {}
        while self.step < cfg.train.steps:
            metrics = self.train_one_step()
            self.step += 1
            if self.step % cfg.train.log_every == 0 or self.step == cfg.train.steps:
                self.logger.log(self.step, metrics)
            if self.step % cfg.train.save_every == 0 or self.step == cfg.train.steps:
                self.save_checkpoint()
            progress.update(1)
            progress.set_postfix(reward=f"{metrics['reward/mean']:.3f}", fmt=f"{metrics['answer/format_rate']:.2f}")
            for callback in self.callbacks:
                callback(self.step, metrics)
        progress.close()
        if cfg.train.save_hf:
            distributed.barrier()  # every rank sees the same answer below
            exported = (self.output_dir / "hf_model" / "config.json").exists()
            distributed.barrier()
            if not exported:  # collective for sharded backends: every rank calls it
                self.policy.save_hf(self.output_dir / "hf_model")
        self.logger.close()
        return metrics

    def _step_questions(self) -> list[TrainingQuestion]:
        indices = self.sampler.take(self.cfg.grpo.prompts_per_step)
        rank, world = distributed.rank(), distributed.world_size()
        return [self.questions[i] for i in indices[rank::world]]

    def train_one_step(self) -> dict[str, Any]:
        cfg, timer = self.cfg, self.timer
        questions = self._step_questions()
        with timer.phase("rollout"):
            if self.colocated is not None:
                self.colocated.offload_before_generation()
            groups = generate_groups(self.engine, questions, cfg.grpo.group_size, self.sampling,
                                     cfg.seed, self.step, cfg.rollout.batch_size)
            if self.colocated is not None:
                self.colocated.onload_after_generation()
        with timer.phase("reward"):
            scored = score_groups(self.rewards, questions, groups, self.answer_reader)
            advantages = self.advantage_estimator(scored.rewards, scored.group_ids, cfg.grpo)
        batch, engine_logprobs = build_token_batch(questions, groups, self._pad_id())
        batch["advantages"] = advantages
        batch["group_ids"] = scored.group_ids
        batch["rollout_logprobs"] = engine_logprobs
        with timer.phase("logprobs"):
            # One PPO epoch is on-policy: the loss uses its own detached logprobs as the old ones
            # (ratio 1) and measures the engine gap itself, which saves a forward pass per step.
            if cfg.grpo.ppo_epochs > 1:
                batch["old_logprobs"] = self.policy.logprobs(batch, self.logprob_temperature)
            if cfg.grpo.kl_coef > 0:
                batch["ref_logprobs"] = self.policy.reference_logprobs(batch, self.logprob_temperature)
        update_metrics: dict[str, float] = {}
        self.engine.sleep()  # colocated engines hand their accelerator memory to training
        with timer.phase("update"):
            for _epoch in range(cfg.grpo.ppo_epochs):
                update_metrics = self.policy.train_step(batch, self.loss_fn)
        with timer.phase("refit"):  # the engine wakes its weights, refits, then wakes its KV cache
            weight_version = self.engine.update_weights(self.policy.export_hf_weights()) + self._version_offset
        metrics: dict[str, Any] = {
            "reward/mean": float(scored.rewards.mean()),
            "reward/std": float(scored.rewards.std()) if len(scored.rewards) > 1 else 0.0,
            "groups/zero_std_fraction": zero_std_fraction(scored.rewards, scored.group_ids),
            "weight_version": weight_version,
            "sampler/epoch": self.sampler.epoch,
            **scored.metrics,
            **response_metrics(groups),
            **(logprob_mismatch(engine_logprobs, batch["old_logprobs"], batch["response_mask"])
               if "old_logprobs" in batch else {}),
            **{f"train/{k}": v for k, v in update_metrics.items()},
            **(self.collapse.update([q.record for q in questions], [[c.text for c in g] for g in groups])
               if self.collapse is not None else {}),
        }
        metrics = distributed.mean_metrics(metrics)
        metrics.update(timer.pop())
        return metrics

    def _pad_id(self) -> int:
        tokenizer = self.policy.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def save_checkpoint(self) -> Path:
        state = {STEP_KEY: self.step, SAMPLER_KEY: self.sampler.state(),
                 WEIGHT_VERSION_KEY: self.engine.weight_version + self._version_offset, CONFIG_HASH_KEY: self._config_hash()}
        return self.checkpoints.save(self.step, self.policy, state, is_main=self.is_main)


def run_training(cfg: MedSSRConfig, **kwargs: Any) -> dict[str, Any]:
    """Set up and run GRPO; writes ``summary.json`` with the last step's metrics."""
    trainer = GRPOTrainer(cfg, **kwargs).setup()
    metrics = trainer.train()
    if trainer.is_main:
        summary = {"steps": trainer.step, "final_metrics": metrics, "output_dir": str(trainer.output_dir)}
        write_text_atomic(trainer.output_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str))
    return metrics
