"""From questions to a scored, padded training batch: sample G completions per question, read
the answers with the shared extractor, score each group with its reward source, and lay prompt
+ completion out as right-padded token rows with explicit group ids."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import torch

from medssr_nemo.answers import AnswerReader, follows_format
from medssr_nemo.grpo.data import TrainingQuestion
from medssr_nemo.policy.interfaces import TokenBatch
from medssr_nemo.rewards.composite import RewardRouter
from medssr_nemo.rewards.interfaces import GroupCompletions
from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams


def sample_seed(run_seed: int, step: int, question_id: str, sample: int) -> int:
    """A 63-bit seed that depends only on (run seed, step, question, sample index): a resumed
    run, a different batch layout or another rank count samples the same tokens."""
    digest = hashlib.sha256(f"{run_seed}|{step}|{question_id}|{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generate_groups(engine: RolloutEngine, questions: Sequence[TrainingQuestion], group_size: int,
                    sampling: SamplingParams, run_seed: int, step: int, batch_size: int) -> list[list[Completion]]:
    prompts, seeds = [], []
    for question in questions:
        for sample in range(group_size):
            prompts.append(question.prompt_ids)
            seeds.append(sample_seed(run_seed, step, question.record.id, sample))
    flat: list[Completion] = []
    for start in range(0, len(prompts), batch_size):
        flat += engine.generate(prompts[start:start + batch_size], sampling, seeds[start:start + batch_size])
    return [flat[i * group_size:(i + 1) * group_size] for i in range(len(questions))]


@dataclass
class ScoredRollouts:
    rewards: torch.Tensor                 # [N] float
    group_ids: torch.Tensor               # [N] long
    metrics: dict[str, float]


def score_groups(router: RewardRouter, questions: Sequence[TrainingQuestion],
                 groups: Sequence[Sequence[Completion]], reader: AnswerReader = AnswerReader()) -> ScoredRollouts:
    """Rewards of every completion; answers are read by ``reader`` (the ``reward`` stage's
    extraction mode, ``docs/evaluation.md``)."""
    rewards: list[float] = []
    group_ids: list[int] = []
    per_source: dict[str, list[float]] = defaultdict(list)
    term_metrics: dict[str, list[float]] = defaultdict(list)
    valid = formatted = 0
    for group_id, (question, completions) in enumerate(zip(questions, groups)):
        letters = question.record.letters
        texts = [c.text for c in completions]
        answers = [reader(text, letters) for text in texts]
        valid += sum(a is not None for a in answers)
        formatted += sum(follows_format(text, letters) for text in texts)
        group = GroupCompletions(question.record, question.prompt, texts, answers,
                                 [c.finish_reason == "length" for c in completions])
        label_source, scored = router.score(group)
        rewards += scored.rewards
        group_ids += [group_id] * len(completions)
        per_source[label_source] += scored.rewards
        for key, value in scored.metrics.items():
            term_metrics[f"reward/{label_source}/{key}"].append(value)
    total = len(rewards)
    metrics = {f"reward/{source}/mean": sum(v) / len(v) for source, v in per_source.items()}
    metrics.update({key: sum(v) / len(v) for key, v in term_metrics.items()})
    metrics["answer/valid_rate"] = valid / total
    metrics["answer/format_rate"] = formatted / total
    return ScoredRollouts(torch.tensor(rewards, dtype=torch.float32),
                          torch.tensor(group_ids, dtype=torch.long), metrics)


def build_token_batch(questions: Sequence[TrainingQuestion], groups: Sequence[Sequence[Completion]],
                      pad_token_id: int) -> tuple[TokenBatch, torch.Tensor]:
    """Right-padded rows of prompt + completion, and the engine's logprobs laid out the same way
    (for the engine/policy mismatch metric)."""
    rows: list[tuple[list[int], int, list[float]]] = []
    for question, completions in zip(questions, groups):
        for completion in completions:
            rows.append((question.prompt_ids + completion.token_ids, len(question.prompt_ids), completion.logprobs))
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    response = torch.zeros((len(rows), width), dtype=torch.float32)
    engine_logprobs = torch.zeros((len(rows), width), dtype=torch.float32)
    for row, (ids, prompt_len, logprobs) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        response[row, prompt_len: len(ids)] = 1
        engine_logprobs[row, prompt_len: len(ids)] = torch.tensor(logprobs, dtype=torch.float32)
    batch: TokenBatch = {"input_ids": input_ids, "attention_mask": attention, "response_mask": response}
    return batch, engine_logprobs


def response_metrics(groups: Sequence[Sequence[Completion]]) -> dict[str, float]:
    lengths = [len(c.token_ids) for g in groups for c in g]
    truncated = [c.finish_reason == "length" for g in groups for c in g]
    return {
        "response/length_mean": sum(lengths) / len(lengths),
        "response/length_max": float(max(lengths)),
        "response/truncation_rate": sum(truncated) / len(truncated),
    }


def logprob_mismatch(engine_logprobs: torch.Tensor, policy_logprobs: torch.Tensor,
                     mask: torch.Tensor) -> dict[str, float]:
    """How far the engine's sampling logprobs are from the trainer's on the same tokens
    (should be ~0 for the in-process engine in float32; grows with bf16/other kernels). Tokens the
    engine gave no logprob for (NaN) are left out."""
    mask = mask * (~torch.isnan(engine_logprobs)).to(mask.dtype)
    engine_logprobs = torch.nan_to_num(engine_logprobs)
    diff = (engine_logprobs - policy_logprobs) * mask
    count = mask.sum().clamp(min=1)
    log_ratio = policy_logprobs - engine_logprobs
    k3 = (torch.exp(log_ratio) - log_ratio - 1) * mask
    return {
        "mismatch/logprob_abs_mean": float(diff.abs().sum() / count),
        "mismatch/logprob_abs_max": float(diff.abs().max()),
        "mismatch/kl_k3": float(k3.sum() / count),
    }
