"""Every GRPO setting reaches what the trainer computes: two-step runs on a tiny model, recorded
(the engine's rollouts, each update's batch and metrics, the policy's logprobs before each update)
and recomputed by hand from the recorded rollouts with the formulas written out here, not with
the library's functions. For each setting, a run with a second value must match its own hand
computation too, and must differ from the first where the formula says it does, so a trainer
that ignores the setting fails.

The hand computation takes its reference logprobs from a frozen copy of the initial model made
by the test itself, so a KL taken against the current policy fails as soon as the policy moves.
Two engines stand in for what the tiny model cannot produce: one replying from a script of answer
statements whose readings under each extraction mode are worked out by hand (the random model's
output never states an answer), and one reporting logprobs off by +-0.5 as an engine with other
kernels would (the in-process engine's equal the trainer's, so importance weights would all be 1).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from medssr_nemo import registry
from medssr_nemo.answers import AnswerReader, follows_format
from medssr_nemo.config import load_config
from medssr_nemo.grpo.metrics_log import read_metrics
from medssr_nemo.grpo.trainer import GRPOTrainer
from medssr_nemo.models import make_tiny_model
from medssr_nemo.policy.interfaces import Colocatable
from medssr_nemo.prompts import encode_prompt
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.interfaces import Completion


# ---- reward functions the configs name (TRL shape); the hand computation calls them directly ----

def length_mod(prompts, completions, **columns):
    """Varied rewards with ties: a group rarely has all-equal rewards, sometimes equal pairs."""
    return [(len(text) % 4) / 3 for text in completions]


def letter_e_share(prompts, completions, **columns):
    return [text.lower().count("e") / max(1, len(text)) for text in completions]


REWARD_FNS = {f"{__name__}:length_mod": length_mod, f"{__name__}:letter_e_share": letter_e_share}

# half gold-labelled, half pseudo-labelled: the router must pick each row's terms by its label source
RECORDS = [QuestionRecord(id=f"q{i}", question=f"Question number {i}: which one fits?",
                          options=["alpha", "beta", "gamma", "delta"], gold="ABCD"[i % 4],
                          label="ABCD"[i % 4], label_source="gold" if i % 2 == 0 else "pseudo")
           for i in range(8)]

BASE = [
    "model.prompt_style=base", "grpo.group_size=4", "grpo.prompts_per_step=2", "grpo.kl_coef=0.05",
    "grpo.kl_estimator=k3", "rollout.max_new_tokens=5", "rollout.top_k=0", "policy.lr=1e-2",
    "policy.micro_batch_size=64", "train.tensorboard=false", "train.save_hf=false", "train.steps=2",
    f"rollout.engine={__name__}:recording_engine",
    f"reward.sources.gold=[{{name: '{__name__}:length_mod', weight: 1.0}}]",
    f"reward.sources.pseudo=[{{name: '{__name__}:letter_e_share', weight: 1.0}}, "
    f"{{name: '{__name__}:length_mod', weight: 0.5}}]",
]


# ---- recorders ------------------------------------------------------------------------------------

class RecordingEngine:
    """The real in-process engine, with every generate call recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompts, sampling, seeds):
        out = self.inner.generate(prompts, sampling, seeds)
        self.calls.append({"prompts": [list(p) for p in prompts], "sampling": sampling, "seeds": list(seeds),
                           "completions": out})
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


ENGINES: list[RecordingEngine] = []


def recording_engine(rollout_cfg, *, model, tokenizer, model_path=None):
    """A ``rollout.engine`` dotted-path factory: the registered in-process engine, recorded."""
    inner = registry.get("rollout_engine", "inprocess")(rollout_cfg, model=model, tokenizer=tokenizer,
                                                        model_path=model_path)
    ENGINES.append(RecordingEngine(inner))
    return ENGINES[-1]


class ShiftedLogprobsEngine(RecordingEngine):
    """The real engine, reporting logprobs off by +-0.5 (alternating per token) as an engine with
    other kernels would: the trainer's ``exp(old - rollout)`` is then 1/e^0.5 or e^0.5 per token,
    which ``grpo.rollout_is_cap`` reweights and caps."""

    def generate(self, prompts, sampling, seeds):
        out = [dataclasses.replace(c, logprobs=[lp + (0.5 if t % 2 else -0.5) for t, lp in enumerate(c.logprobs)])
               for c in self.inner.generate(prompts, sampling, seeds)]
        self.calls.append({"prompts": [list(p) for p in prompts], "sampling": sampling, "seeds": list(seeds),
                           "completions": out})
        return out


# Scripted replies (record key K, a wrong letter W) with the answer each extraction mode reads in
# them, worked out by hand from the rules in answers.py's docstring, and whether they follow the
# instructed format ("The answer is X", exact case, one of the question's letters).
SCRIPT = [  # (template, paper reads, lenient reads, follows the format)
    ("The answer is ({K})", None, "K", True),               # paper rule 1 wants a capital right after "is "
    ("The answer is {K}.", "K", "K", True),
    ("The answer is E. No: The answer is ({K})", "E", "K", True),   # E: not an option, lenient skips it
    ("the answer is {W}", "W", "W", False),                 # paper rule 5 (any case), upper-cased
    ("I am not sure.", None, None, False),
    ("The answer is {K}. Final: \\boxed{{{W}}}", "K", "W", True),   # lenient: the last statement wins
]


def scripted_text(template: str, record: QuestionRecord) -> tuple[str, str, str]:
    key = record.label
    wrong = "ABCD"[("ABCD".index(key) + 1) % 4]
    return template.format(K=key, W=wrong), key, wrong


def scripted_answer(text: str, record: QuestionRecord, mode: str) -> tuple[str | None, bool] | None:
    """(the letter ``mode`` reads, follows the format) for a scripted reply, by the table; None
    for a text that is not one."""
    for template, paper, lenient, formatted in SCRIPT:
        rendered, key, wrong = scripted_text(template, record)
        if rendered == text:
            read = paper if mode == "paper" else lenient
            return {"K": key, "W": wrong, None: None}.get(read, read), formatted
    return None


class ScriptedEngine(RecordingEngine):
    """Replies from ``SCRIPT`` (picked by the sample's seed), tokenised, EOS-terminated: a model
    that states answers in forms the two extraction modes read differently."""

    def generate(self, prompts, sampling, seeds):
        tokenizer = self.inner.tokenizer
        out = []
        for prompt, seed in zip(prompts, seeds):
            text, _, _ = scripted_text(SCRIPT[seed % len(SCRIPT)][0], record_of(list(prompt), tokenizer))
            ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
            assert len(ids) <= sampling.max_new_tokens, "scripted reply longer than rollout.max_new_tokens"
            out.append(Completion(ids, text, [0.0] * len(ids), "stop", self.inner.weight_version, list(prompt)))
        self.calls.append({"prompts": [list(p) for p in prompts], "sampling": sampling, "seeds": list(seeds),
                           "completions": out})
        return out


def shifted_logprobs_engine(rollout_cfg, *, model, tokenizer, model_path=None):
    ENGINES.append(ShiftedLogprobsEngine(recording_engine(rollout_cfg, model=model, tokenizer=tokenizer).inner))
    return ENGINES[-1]


def scripted_engine(rollout_cfg, *, model, tokenizer, model_path=None):
    ENGINES.append(ScriptedEngine(recording_engine(rollout_cfg, model=model, tokenizer=tokenizer).inner))
    return ENGINES[-1]


def own_logprobs(model: Any, batch: dict[str, torch.Tensor], temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprob of each token given the ones before it, entropy of that distribution), [B, T],
    from one plain forward at ``temperature``; only response positions are filled (the rest 0)."""
    ids = batch["input_ids"]
    width = ids.shape[1]
    first = int(batch["response_mask"].bool().any(0).nonzero().min())
    with torch.no_grad():   # logits from position first-1 on: they predict the response tokens
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"], use_cache=False,
                       logits_to_keep=width - first + 1).logits.float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    lp, ent = torch.zeros(ids.shape), torch.zeros(ids.shape)
    lp[:, first:] = logp[:, :-1].gather(-1, ids[:, first:, None])[..., 0]
    ent[:, first:] = -(logp.exp() * logp).sum(-1)[:, :-1]
    return lp, ent


@dataclass
class Update:
    batch: dict[str, torch.Tensor]
    logprobs: torch.Tensor        # the policy's, just before this update
    entropy: torch.Tensor
    ref_logprobs: torch.Tensor    # the frozen initial model's (the test's own copy)
    metrics: dict[str, float]


class RecordingPolicy(Colocatable):
    """The real hf backend; each ``train_step`` is recorded with the test's own logprobs. It
    declares the hf backend's colocation (the trainer discovers nothing through ``__getattr__``)."""

    def __init__(self, inner: Any, temperature: float) -> None:
        self.inner = inner
        self.initial = copy.deepcopy(inner.model).eval()
        self.temperature = temperature
        self.updates: list[Update] = []

    def train_step(self, batch, loss_fn):
        lp, ent = own_logprobs(self.inner.model, batch, self.temperature)
        ref, _ = own_logprobs(self.initial, batch, self.temperature)
        saved = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
        metrics = self.inner.train_step(batch, loss_fn)
        self.updates.append(Update(saved, lp, ent, ref, dict(metrics)))
        return metrics

    def rollout_module(self) -> Any:
        return self.inner.rollout_module()

    def offload_before_generation(self) -> None:
        self.inner.offload_before_generation()

    def onload_after_generation(self) -> None:
        self.inner.onload_after_generation()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Run:
    cfg: Any
    engine: RecordingEngine
    policy: RecordingPolicy
    metrics: list[dict[str, Any]]
    steps: list[dict[str, Any]] = field(default_factory=list)   # per step: updates, rows


@functools.lru_cache(maxsize=None)
def _tokenizer_and_model():
    """The tiny Llama with its EOS token made likely (about one token in four), so responses end
    at different lengths: the loss aggregations differ only then."""
    model, tokenizer = make_tiny_model("llama", seed=0)
    prompt = encode_prompt(RECORDS[0], tokenizer, "base")
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([prompt])).last_hidden_state[0].mean(0)
        model.model.embed_tokens.weight[tokenizer.eos_token_id] = 10.0 * hidden / (hidden @ hidden)
    return model, tokenizer


def train(tmp: Path, *overrides: str) -> Run:
    cfg = load_config("base", [*BASE, f"output_dir={tmp}", *overrides])
    model, tokenizer = _tokenizer_and_model()
    torch.manual_seed(0)
    temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
    inner = registry.get("policy_backend", "hf")(cfg, model=copy.deepcopy(model), tokenizer=tokenizer)
    policy = RecordingPolicy(inner, temperature)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = GRPOTrainer(cfg, records=RECORDS, policy=policy, show_progress=False).setup()
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    run = Run(cfg, ENGINES[-1], policy, read_metrics(tmp))
    epochs = cfg.grpo.ppo_epochs
    assert len(policy.updates) == cfg.train.steps * epochs, "one train_step per PPO epoch per step"
    calls_per_step = len(run.engine.calls) // cfg.train.steps
    for step in range(cfg.train.steps):
        calls = run.engine.calls[step * calls_per_step:(step + 1) * calls_per_step]
        run.steps.append({"updates": policy.updates[step * epochs:(step + 1) * epochs], "calls": calls})
    return run


_RUNS: dict[tuple[str, ...], Run] = {}


@pytest.fixture
def run_with(tmp_path_factory):
    """Train once per distinct override list (several tests share a run)."""
    def get(*overrides: str) -> Run:
        if overrides not in _RUNS:
            _RUNS[overrides] = train(tmp_path_factory.mktemp("run"), *overrides)
        return _RUNS[overrides]
    return get


# ---- the hand computation ---------------------------------------------------------------------------

PROMPT_OF = {}


def record_of(prompt_ids: list[int], tokenizer: Any) -> QuestionRecord:
    if not PROMPT_OF:
        PROMPT_OF.update({tuple(encode_prompt(r, tokenizer, "base")): r for r in RECORDS})
    return PROMPT_OF[tuple(prompt_ids)]


def extraction_mode(cfg: Any) -> str:
    """The reward stage's own mode, else the shared one (conf/base.yaml's ``answer`` section)."""
    return cfg.reward.answer_extraction or cfg.answer.extraction


def hand_answer(cfg: Any, record: QuestionRecord, text: str) -> tuple[str | None, bool]:
    """(the answer the reward stage reads, follows the format): by the hand-worked table for a
    scripted reply, else by the shared reader (pinned on its own by tests/test_answers.py)."""
    mode = extraction_mode(cfg)
    scripted = scripted_answer(text, record, mode)
    if scripted is not None:
        return scripted
    return AnswerReader(mode, cfg.model.path)(text, record.letters), follows_format(text, record.letters)


def hand_reward(cfg: Any, record: QuestionRecord, text: str) -> float:
    terms = cfg.reward.sources[record.label_source]
    total = 0.0
    for t in terms:
        if t.name in ("gold", "pseudo_label"):   # the built-in accuracy rewards: 1 for the key's letter
            total += t.weight * float(hand_answer(cfg, record, text)[0] == record.label)
        else:
            total += t.weight * REWARD_FNS[t.name]([""], [text])[0]
    return total


def hand_rows(run: Run, step: int) -> list[dict[str, Any]]:
    """The step's rollouts in engine order: record, completion, seed, hand reward."""
    rows = []
    for call in run.steps[step]["calls"]:
        for prompt, seed, completion in zip(call["prompts"], call["seeds"], call["completions"]):
            record = record_of(prompt, run.policy.tokenizer)
            rows.append({"record": record, "prompt": prompt, "seed": seed, "completion": completion,
                         "reward": hand_reward(run.cfg, record, completion.text)})
    return rows


def hand_advantages(cfg: Any, rows: list[dict[str, Any]]) -> list[float]:
    g = cfg.grpo
    by_question: dict[str, list[float]] = {}
    for row in rows:
        by_question.setdefault(row["record"].id, []).append(row["reward"])
    out = []
    for row in rows:
        rewards = by_question[row["record"].id]
        n, mean = len(rewards), statistics.fmean(rewards)
        if g.advantage_estimator == "rloo":   # r_i minus the mean of the others; alone: baseline 0
            out.append(row["reward"] if n == 1 else n / (n - 1) * (row["reward"] - mean))
            continue
        if g.advantage_estimator == "dr_grpo":   # centred, never divided by the std
            out.append(row["reward"] if n == 1 else row["reward"] - mean)
            continue
        assert g.advantage_estimator == "grpo", f"no hand formula for {g.advantage_estimator}"
        if len(rewards) == 1:   # verl 0.3.1: a group of one has mean 0 and std 1
            out.append(row["reward"] / (1 + g.advantage_eps) if g.normalize_std else row["reward"])
            continue
        if max(rewards) == min(rewards):
            out.append(0.0)
            continue
        mean = statistics.fmean(rewards)
        std = statistics.stdev(rewards) if g.std_unbiased else statistics.pstdev(rewards)
        out.append((row["reward"] - mean) / (std + g.advantage_eps) if g.normalize_std else row["reward"] - mean)
    return out


def hand_kl(cfg: Any, lp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    g = cfg.grpo
    if g.kl_estimator == "k1":
        return lp - ref
    if g.kl_estimator == "k2":
        return 0.5 * (lp - ref) ** 2
    d = ref - lp
    return (torch.exp(d) - d - 1).clamp(-g.kl_clamp, g.kl_clamp)


def clip_fraction(side: torch.Tensor, ratio: torch.Tensor, bound: float, above: bool,
                  mask: torch.Tensor) -> tuple[float, float]:
    """(lowest, highest) share of response tokens on ``side`` (advantage sign) whose ratio is
    past ``bound``: a ratio within 1e-4 of it may fall either side between the trainer's
    logprobs and the test's own forward."""
    past = ratio > bound if above else ratio < bound
    near = (ratio - bound).abs() < 1e-4
    tokens = float(mask.sum())
    sure = side & past & ~near & mask
    return float(sure.sum()) / tokens, float((sure | (side & near & mask)).sum()) / tokens


def hand_loss(cfg: Any, update: Update, old: torch.Tensor, advantages: torch.Tensor,
              rollout: torch.Tensor) -> tuple[float, dict[str, Any]]:
    """The loss of one update; ``rollout`` [B, T] holds the engine's logprobs of the sampled tokens."""
    g = cfg.grpo
    mask = update.batch["response_mask"].bool()
    lp = update.logprobs
    a = advantages[:, None].expand_as(lp)
    ratio = torch.exp(torch.where(mask, lp - old, torch.zeros_like(lp)))
    per_token = torch.maximum(-a * ratio, -a * ratio.clamp(1 - g.clip_low, 1 + g.clip_high))
    if g.policy_loss == "gpg":   # plain policy gradient: -A * logp, no ratio, no clip
        per_token = -a * torch.where(mask, lp, torch.zeros_like(lp))
    elif g.dual_clip:
        per_token = torch.where(a < 0, torch.minimum(per_token, -a * g.dual_clip), per_token)
    tokens = mask.sum()
    parts: dict[str, Any] = {}
    if g.rollout_is_cap > 0:   # truncated IS: w = min(exp(old - engine's logprob), cap), per token
        raw = torch.exp(old - rollout)
        per_token = per_token * torch.where(mask, raw.clamp(max=g.rollout_is_cap), 1.0)
        parts["is_weight_mean"] = float((raw.clamp(max=g.rollout_is_cap) * mask).sum() / tokens)
        parts["is_capped_share"] = float(((raw > g.rollout_is_cap) & mask).sum() / tokens)
    parts["pg_loss"] = float((per_token * mask).sum() / tokens)
    if g.policy_loss == "ppo_clip":
        parts["clip_frac_high"] = clip_fraction(a > 0, ratio, 1 + g.clip_high, True, mask)
        parts["clip_frac_low"] = clip_fraction(a < 0, ratio, 1 - g.clip_low, False, mask)
    kl = hand_kl(cfg, lp, update.ref_logprobs)
    if g.kl_coef > 0:
        per_token = per_token + g.kl_coef * kl
    per_token = per_token - g.entropy_coef * update.entropy
    per_token = torch.where(mask, per_token, torch.zeros_like(per_token))
    lengths = mask.sum(-1).float()
    if g.loss_aggregation == "token-mean":
        loss = per_token.sum() / lengths.sum()
    elif g.loss_aggregation == "seq-mean-token-mean":
        loss = (per_token.sum(-1)[lengths > 0] / lengths[lengths > 0]).mean()
    elif g.loss_aggregation == "seq-mean-token-sum":
        loss = per_token.sum() / (lengths > 0).sum()
    elif g.loss_aggregation == "seq-mean-token-sum-norm":   # verl 0.3.1: the max response length only
        loss = per_token.sum() / cfg.rollout.max_new_tokens
    else:
        raise AssertionError(f"no hand formula for {g.loss_aggregation}")
    parts.update(kl=float((kl * mask).sum() / tokens), entropy=float((update.entropy * mask).sum() / tokens))
    return float(loss), parts


def close(a: float, b: float, what: str, abs_tol: float = 2e-6, rel_tol: float = 1e-4) -> None:
    assert math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol), f"{what}: trainer {a!r} != hand {b!r}"


# The backends' entropy is logsumexp(z) - sum softmax(z) z in float32: on the peaked
# distributions after a large-lr update the two terms nearly cancel and it keeps ~2-3 digits.
ENTROPY_RTOL = 2e-2


def check_run(run: Run) -> dict[str, Any]:
    """Everything the trainer computed and logged, against the hand computation; returns the
    hand values for comparisons between runs."""
    cfg, tokenizer = run.cfg, run.policy.tokenizer
    hand: dict[str, Any] = {"advantages": [], "losses": [], "kl": [], "rewards": [], "lengths": [],
                            "pg_losses": [], "answers": [], "is_capped_share": []}
    for step, logged in enumerate(run.metrics):
        assert logged["step"] == step + 1
        rows = hand_rows(run, step)
        G, P = cfg.grpo.group_size, cfg.grpo.prompts_per_step
        assert len(rows) == G * P, "prompts_per_step x group_size rollouts a step"
        for i, row in enumerate(rows):   # rows come in groups of G of one question, sample index j
            assert row["record"].id == rows[i - i % G]["record"].id
            expected_seed = int.from_bytes(hashlib.sha256(
                f"{cfg.seed}|{step}|{row['record'].id}|{i % G}".encode()).digest()[:8], "little") & ((1 << 63) - 1)
            assert row["seed"] == expected_seed, "per-sample seed is (seed, step, question, sample)"
            assert len(row["completion"].token_ids) <= cfg.rollout.max_new_tokens
        for call in run.steps[step]["calls"]:
            s = call["sampling"]
            assert (s.temperature, s.top_p, s.top_k, s.max_new_tokens) == (
                cfg.rollout.temperature, cfg.rollout.top_p, cfg.rollout.top_k, cfg.rollout.max_new_tokens)
            assert len(call["prompts"]) <= cfg.rollout.batch_size
        advantages = torch.tensor(hand_advantages(cfg, rows))
        updates = run.steps[step]["updates"]
        rollout = torch.zeros_like(updates[0].logprobs)   # the engine's logprobs, laid out as the batch
        for r, row in enumerate(rows):
            start = len(row["prompt"])
            rollout[r, start:start + len(row["completion"].logprobs)] = torch.tensor(row["completion"].logprobs)
        assert len(updates) == cfg.grpo.ppo_epochs
        old = updates[0].logprobs           # the policy that sampled: before the step's first update
        for update in updates:
            batch = update.batch
            for r, row in enumerate(rows):  # the batch row is the rollout: prompt + completion
                n = len(row["prompt"]) + len(row["completion"].token_ids)
                assert batch["input_ids"][r, :n].tolist() == row["prompt"] + row["completion"].token_ids
                assert batch["response_mask"][r].sum() == len(row["completion"].token_ids)
            assert torch.allclose(batch["advantages"].double(), advantages.double(), rtol=1e-5, atol=1e-6), \
                (batch["advantages"], advantages)
            loss, parts = hand_loss(cfg, update, old, advantages, rollout)
            close(update.metrics["loss"], loss, f"step {step + 1} loss",
                  abs_tol=2e-6 + cfg.grpo.entropy_coef * ENTROPY_RTOL * parts["entropy"])
            close(update.metrics["pg_loss"], parts["pg_loss"], f"step {step + 1} pg_loss")
            if cfg.grpo.rollout_is_cap > 0:
                close(update.metrics["rollout_is_weight_mean"], parts["is_weight_mean"], "IS weight mean")
                hand["is_capped_share"].append(parts["is_capped_share"])
            for key in ("clip_frac_high", "clip_frac_low"):
                if key in parts:
                    low, high = parts[key]
                    assert low - 1e-6 <= update.metrics[key] <= high + 1e-6, \
                        f"step {step + 1} {key}: trainer {update.metrics[key]} not in hand [{low}, {high}]"
            if cfg.grpo.kl_coef > 0:
                close(update.metrics["kl"], parts["kl"], f"step {step + 1} KL to the reference")
            close(update.metrics["entropy"], parts["entropy"], f"step {step + 1} entropy", rel_tol=ENTROPY_RTOL)
            hand["losses"].append(loss)
            hand["kl"].append(parts["kl"])
            hand["pg_losses"].append(parts["pg_loss"])
        # the logged row: recomputed from the rollouts and the last update
        rewards = [row["reward"] for row in rows]
        lengths = [len(row["completion"].token_ids) for row in rows]
        close(logged["reward/mean"], statistics.fmean(rewards), "logged reward/mean")
        close(logged["reward/std"], statistics.stdev(rewards), "logged reward/std")
        groups = [rewards[i:i + G] for i in range(0, len(rewards), G)]
        close(logged["groups/zero_std_fraction"], sum(max(g) == min(g) for g in groups) / len(groups),
              "logged zero-std fraction")
        for source in ("gold", "pseudo"):
            mine = [row["reward"] for row in rows if row["record"].label_source == source]
            if mine:
                close(logged[f"reward/{source}/mean"], statistics.fmean(mine), f"logged reward/{source}/mean")
        close(logged["response/length_mean"], statistics.fmean(lengths), "logged length mean")
        assert logged["response/length_max"] == max(lengths)
        close(logged["response/truncation_rate"],
              statistics.fmean(row["completion"].finish_reason == "length" for row in rows), "logged truncation rate")
        answers = [hand_answer(cfg, row["record"], row["completion"].text) for row in rows]
        close(logged["answer/valid_rate"], statistics.fmean(a is not None for a, _ in answers),
              "logged answer/valid_rate")
        close(logged["answer/format_rate"], statistics.fmean(f for _, f in answers), "logged answer/format_rate")
        close(logged["train/loss"], hand["losses"][-1], "logged train/loss")
        close(logged["train/pg_loss"], hand["pg_losses"][-1], "logged train/pg_loss")
        for key in ("clip_frac_high", "clip_frac_low"):
            if key in parts:
                low, high = parts[key]   # the last update's
                assert low - 1e-6 <= logged[f"train/{key}"] <= high + 1e-6, f"logged train/{key}"
        if cfg.grpo.kl_coef > 0:
            close(logged["train/kl"], hand["kl"][-1], "logged train/kl")
        assert logged["weight_version"] == step + 1
        hand["advantages"].append(advantages)
        hand["rewards"].append(rewards)
        hand["lengths"].append(lengths)
        hand["answers"].append(answers)
    return hand


# ---- the tests ----------------------------------------------------------------------------------

def test_the_default_recipe_computes_what_the_formulas_say(run_with):
    """Catches: any mis-wired advantage, loss, KL, reward routing or logged metric (e.g. a metric
    logged as a constant, rewards routed to the wrong label source, a batch row not matching its
    rollout). Planted by hand: `reward/mean` logged as 0.0 fails `logged reward/mean`."""
    hand = check_run(run_with())
    assert len({round(v, 6) for v in hand["rewards"][0]}) > 2      # the rollouts exercise the formulas
    assert any(abs(float(a)) > 0 for a in hand["advantages"][0])


def test_kl_is_measured_against_the_frozen_initial_policy(run_with):
    """Catches: a KL term taken against the current policy (or a reference that follows it).
    After the first update the policy has moved, so the hand KL to the test's own copy of the
    initial model is > 0 and the trainer's must equal it. Planted by hand: ``ref_logprobs`` from
    ``policy.logprobs`` makes the step-2 KL 0 and fails."""
    run = run_with()
    check_run(run)
    first, second = run.steps[0]["updates"][0], run.steps[1]["updates"][0]
    mask = second.batch["response_mask"].bool()
    assert (second.logprobs - second.ref_logprobs)[mask].abs().max() > 1e-3   # the policy has moved
    assert first.metrics["kl"] == pytest.approx(0.0, abs=1e-6)            # step 1: policy == reference
    assert second.metrics["kl"] > 1e-5


# (setting A, setting B, what differs): both runs match the hand computation, and differ as said
EPOCHS2 = ["grpo.ppo_epochs=2"]   # the second epoch's ratio moves off 1: the clip settings act
# scripted replies scored by the built-in accuracy rewards, which read the answer letter
SCRIPTED = [f"rollout.engine={__name__}:scripted_engine", "rollout.max_new_tokens=24",
            "reward.sources.gold=[{name: gold, weight: 1.0}]",
            "reward.sources.pseudo=[{name: pseudo_label, weight: 1.0}]"]
SHIFTED = [f"rollout.engine={__name__}:shifted_logprobs_engine"]   # engine logprobs != the trainer's
PAIRS = {
    "grpo.group_size": ([], ["grpo.group_size=2"], "rows"),
    "grpo.prompts_per_step": ([], ["grpo.prompts_per_step=1"], "rows"),
    "grpo.normalize_std": ([], ["grpo.normalize_std=false"], "advantages"),
    "grpo.std_unbiased": ([], ["grpo.std_unbiased=false"], "advantages"),
    "grpo.advantage_eps": ([], ["grpo.advantage_eps=0.5"], "advantages"),
    "grpo.clip_low": (EPOCHS2, [*EPOCHS2, "grpo.clip_low=0.001"], "losses"),
    "grpo.clip_high": (EPOCHS2, [*EPOCHS2, "grpo.clip_high=0.001"], "losses"),
    "grpo.dual_clip": (EPOCHS2, [*EPOCHS2, "grpo.dual_clip=1.001"], "losses"),
    "grpo.kl_coef": ([], ["grpo.kl_coef=0.5"], "losses"),
    "grpo.kl_estimator=k1": ([], ["grpo.kl_estimator=k1"], "kl"),
    "grpo.kl_estimator=k2": ([], ["grpo.kl_estimator=k2"], "kl"),
    "grpo.kl_clamp": ([], ["grpo.kl_clamp=1e-5"], "kl"),
    "grpo.loss_aggregation=seq-mean-token-mean": ([], ["grpo.loss_aggregation=seq-mean-token-mean"], "losses"),
    # max_new_tokens above the longest response: the constant L and the step's longest differ
    "grpo.loss_aggregation=seq-mean-token-sum-norm": ([], ["grpo.loss_aggregation=seq-mean-token-sum-norm",
                                                           "rollout.max_new_tokens=16"], "losses"),
    "grpo.ppo_epochs": ([], EPOCHS2, "losses"),
    "grpo.advantage_estimator=rloo": ([], ["grpo.advantage_estimator=rloo"], "advantages"),
    "grpo.advantage_estimator=dr_grpo": ([], ["grpo.advantage_estimator=dr_grpo"], "advantages"),
    "grpo.policy_loss=gpg": ([], ["grpo.policy_loss=gpg"], "losses"),
    "grpo.loss_aggregation=seq-mean-token-sum": ([], ["grpo.loss_aggregation=seq-mean-token-sum"], "losses"),
    "grpo.entropy_coef": ([], ["grpo.entropy_coef=0.05"], "losses"),
    "rollout.temperature": ([], ["rollout.temperature=0.7"], "losses"),
    "rollout.top_k": ([], ["rollout.top_k=1"], "advantages"),
    "rollout.top_p": ([], ["rollout.top_p=0.001"], "advantages"),
    "rollout.max_new_tokens": ([], ["rollout.max_new_tokens=3"], "lengths"),
    "reward.sources": ([], [f"reward.sources.gold=[{{name: '{__name__}:length_mod', weight: 3.0}}]"], "rewards"),
    "seed": ([], ["seed=1"], "rewards"),
    "reward.answer_extraction": (SCRIPTED, [*SCRIPTED, "reward.answer_extraction=lenient"], "rewards"),
    "grpo.rollout_is_cap": (SHIFTED, [*SHIFTED, "grpo.rollout_is_cap=1.2"], "losses"),
}


@pytest.mark.parametrize("setting", sorted(PAIRS))
def test_each_setting_changes_the_computation_as_its_formula_says(run_with, setting):
    """Catches: a trainer that ignores (or mis-routes) this one setting. Both values are checked
    against the hand computation, and the quantity the setting acts on must differ between them.
    Planted by hand (scripts/mutation_check.py): the trainer passing ``normalize_std=True``
    always fails the ``grpo.normalize_std`` case; the loss's KL estimator fixed to k3 fails
    ``grpo.kl_estimator=k1``; one PPO epoch whatever ``grpo.ppo_epochs`` fails that case; no old
    logprobs for two epochs (ratio 1 again) fails ``grpo.clip_low``."""
    first, second, differs = PAIRS[setting]
    a, b = check_run(run_with(*first)), check_run(run_with(*second))
    if "rollout.max_new_tokens=16" in second:   # the case exercises L = max_new_tokens, not the longest
        assert any(max(lengths) < 16 for lengths in b["lengths"]), b["lengths"]
    if differs == "rows":
        assert len(a["rewards"][0]) != len(b["rewards"][0])
    elif differs == "advantages":
        assert not all(torch.allclose(x, y) for x, y in zip(a["advantages"], b["advantages"]))
    else:
        assert not all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) if isinstance(x, float) else x == y
                       for x, y in zip(a[differs], b[differs])) or len(a[differs]) != len(b[differs]), setting


def test_rollout_batch_size_splits_engine_calls_without_changing_samples(run_with):
    """Catches: ``rollout.batch_size`` ignored (one engine call for the whole step) or samples that
    depend on the batch layout (seeds not per sample). Planted by hand: ``generate_groups`` called
    with a fixed batch of 64 fails the call-size check."""
    wide, narrow = run_with(), run_with("rollout.batch_size=3")
    check_run(narrow)
    assert [len(c["prompts"]) for c in narrow.steps[0]["calls"]] == [3, 3, 2]
    tokens = lambda run: [c.token_ids for step in run.steps for call in step["calls"] for c in call["completions"]]  # noqa: E731
    assert tokens(wide) == tokens(narrow)


def test_reward_terms_are_routed_by_label_source_and_weighted(run_with):
    """Catches: every row scored with one label source's terms, or a term's weight dropped.
    The hand reward of a pseudo row is letter_e_share + 0.5 * length_mod, of a gold row
    length_mod; planted by hand: ``WeightedReward`` ignoring weights fails here."""
    run = run_with()
    check_run(run)
    rows = hand_rows(run, 0) + hand_rows(run, 1)
    assert {row["record"].label_source for row in rows} == {"gold", "pseudo"}


def test_scripted_replies_exercise_the_answer_metrics_and_both_extraction_modes(run_with):
    """The ``reward.answer_extraction`` case reads real answers: the scripted replies have valid
    answers, follow the format in part, and the two modes read some of them differently, so the
    logged ``answer/valid_rate`` and ``answer/format_rate`` checked in ``check_run`` are not 0
    or 1 and differ between the modes where the table says. Planted by hand
    (scripts/mutation_check.py): ``answer/format_rate`` logged as 0.0 fails ``check_run``; the
    reward stage's reader fixed to ``paper`` fails the ``reward.answer_extraction`` case."""
    paper, lenient = run_with(*SCRIPTED), run_with(*SCRIPTED, "reward.answer_extraction=lenient")
    for run in (paper, lenient):
        check_run(run)
    for run, mode in ((paper, "paper"), (lenient, "lenient")):
        rates = [(m["answer/valid_rate"], m["answer/format_rate"]) for m in run.metrics]
        assert all(0 < v < 1 and 0 < f < 1 for v, f in rates), (mode, rates)
    assert [m["answer/valid_rate"] for m in paper.metrics] != [m["answer/valid_rate"] for m in lenient.metrics]
    # same replies (the engine's script is fixed by the seeds), different readings
    assert [c.text for s in paper.steps for call in s["calls"] for c in call["completions"]] == \
        [c.text for s in lenient.steps for call in s["calls"] for c in call["completions"]]


def test_rollout_is_cap_reweights_and_caps_each_token(run_with):
    """The ``grpo.rollout_is_cap`` case exercises both sides of the cap: with the engine's
    logprobs off by +-0.5, some tokens' weights exp(old - rollout) are ~1.65 (capped to 1.2)
    and some ~0.61 (kept), and the trainer's loss equals the hand loss with those weights
    (``check_run``). Planted by hand (scripts/mutation_check.py): ``rollout_is_cap`` read as 0
    in grpo/losses.py, or the weights left uncapped, fail the ``grpo.rollout_is_cap`` case."""
    run = run_with(*SHIFTED, "grpo.rollout_is_cap=1.2")
    hand = check_run(run)
    assert all(0.3 < share < 0.7 for share in hand["is_capped_share"]), hand["is_capped_share"]
    gaps = [u.metrics for step in run.steps for u in step["updates"]]
    assert all(abs(m["rollout_logprob_gap_mean"] - 0.5) < 1e-3 for m in gaps), gaps
