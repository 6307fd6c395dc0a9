"""A policy backend and a rollout engine written from the interfaces alone (``policy/interfaces.py``,
``policy/loss_contract.py``, ``rollout/interfaces.py``), here in the test, train two GRPO steps.

The policy is a unigram language model (one logit per vocabulary id, no context): small enough to
write in a few lines, real enough that the loss, the refit and the checkpoint carry numbers the
test can check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pytest
import torch

from medssr_nemo.config import load_config
from medssr_nemo.grpo.metrics_log import read_metrics
from medssr_nemo.grpo.trainer import GRPOTrainer
from medssr_nemo.models import make_tiny_model
from medssr_nemo.policy.interfaces import Colocatable, PolicyBackend, TokenBatch, TrainerMemory
from medssr_nemo.policy.loss_contract import LossFunction, StepLoss, global_normalisers
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams, engine_factory


def _unigram_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """Position t holds log p(input_ids[t]); position 0 holds 0 (the interface's convention)."""
    table = torch.log_softmax(logits / temperature, dim=-1)
    out = table[input_ids]
    return torch.cat([torch.zeros_like(out[:, :1]), out[:, 1:]], dim=1)


class UnigramPolicy(PolicyBackend):
    """Not colocatable: it lends no module and frees no memory."""

    def __init__(self, tokenizer: Any, lr: float = 0.5) -> None:
        self.tokenizer = tokenizer
        self.logits = torch.nn.Parameter(torch.zeros(len(tokenizer)))
        self.optimizer = torch.optim.SGD([self.logits], lr=lr)
        self.seen_losses: list[LossFunction] = []
        self.offloads = self.onloads = 0

    def logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        with torch.no_grad():
            return _unigram_logprobs(self.logits, batch["input_ids"], temperature)

    def reference_logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        return _unigram_logprobs(torch.zeros_like(self.logits), batch["input_ids"], temperature)

    def train_step(self, batch: TokenBatch, loss_fn: LossFunction) -> dict[str, float]:
        self.seen_losses.append(loss_fn)
        step = StepLoss(loss_fn, global_normalisers(batch["response_mask"]))
        self.optimizer.zero_grad()
        for start in range(0, batch["input_ids"].shape[0], 4):      # micro-batches of 4 rows
            micro = {k: v[start:start + 4] for k, v in batch.items() if isinstance(v, torch.Tensor)}
            logprobs = _unigram_logprobs(self.logits, micro["input_ids"], loss_fn.temperature)
            entropy = None
            if loss_fn.entropy != "off":
                p = torch.softmax(self.logits / loss_fn.temperature, -1)
                entropy = (-(p * p.clamp_min(1e-30).log()).sum()).expand_as(logprobs)
                entropy = entropy if loss_fn.entropy == "loss" else entropy.detach()
            step(logprobs, micro, entropy).backward()
        grad_norm = float(self.logits.grad.norm())
        self.optimizer.step()
        return step.step_metrics(float(step.loss_total), grad_norm, 0.5, False, step.metrics.reduce())

    def export_hf_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield "unigram.logits", self.logits.detach().clone()

    def save(self, directory: str | os.PathLike) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        torch.save(self.logits.detach(), Path(directory) / "logits.pt")

    def load(self, directory: str | os.PathLike) -> None:
        with torch.no_grad():
            self.logits.copy_(torch.load(Path(directory) / "logits.pt"))

    def save_hf(self, directory: str | os.PathLike) -> None:
        self.save(directory)



class UnigramMemory(TrainerMemory):
    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def release(self) -> None:
        self.optimizer.zero_grad()

    def restore(self) -> None:
        return None

    def held(self) -> dict[str, int]:
        return {}


class ColocatedUnigramPolicy(UnigramPolicy, Colocatable):
    def __init__(self, tokenizer: Any, lr: float = 0.5) -> None:
        super().__init__(tokenizer, lr)
        self.module_requests = 0
        self.memory = UnigramMemory(self.optimizer)

    def rollout_module(self) -> Any:
        self.module_requests += 1
        return self.logits            # the engine samples from these very numbers

    def offload_before_generation(self) -> None:
        self.offloads += 1

    def onload_after_generation(self) -> None:
        self.onloads += 1

    def trainer_memory(self) -> TrainerMemory:
        return self.memory


class UnigramEngine(RolloutEngine):
    def __init__(self, logits: torch.Tensor, tokenizer: Any) -> None:
        self.logits, self.tokenizer = logits.detach().clone(), tokenizer
        self._version = 0
        self.trainer_memory: TrainerMemory | None = None

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams,
                 seeds: Sequence[int]) -> list[Completion]:
        temperature = sampling.temperature or 1.0
        table = torch.log_softmax(self.logits / temperature, -1)
        out = []
        for prompt, seed in zip(prompt_token_ids, seeds):
            ids = torch.multinomial(table.exp(), sampling.max_new_tokens, replacement=True,
                                    generator=torch.Generator().manual_seed(seed)).tolist()
            out.append(Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                                  [float(table[i]) for i in ids], "length", self._version, list(prompt)))
        return out

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        self.logits = dict(named_tensors)["unigram.logits"].clone()
        self._version += 1
        return self._version

    @property
    def weight_version(self) -> int:
        return self._version

    def attach_trainer_memory(self, memory: TrainerMemory | None) -> None:
        self.trainer_memory = memory


@engine_factory(needs_policy_module=True)
def build_unigram_engine(rollout_cfg: Any, *, model: Any, tokenizer: Any, **_: Any) -> UnigramEngine:
    """The engine factory, selected by dotted path as a third-party plugin would be: it samples
    on the policy's own module."""
    return UnigramEngine(model, tokenizer)


@engine_factory(needs_policy_module=False)
def build_standalone_unigram_engine(rollout_cfg: Any, *, tokenizer: Any, **_: Any) -> UnigramEngine:
    """An engine that loads its own copy of the initial weights (all zeros, as the policy starts)
    and is refit from ``export_hf_weights``, as the tensorrt_llm engine is."""
    return UnigramEngine(torch.zeros(len(tokenizer)), tokenizer)


def fewer_characters(prompts, completions, **columns):
    return [max(0.0, 1.0 - len(text) / 40) for text in completions]


RECORDS = [QuestionRecord(id=f"q{i}", question=f"Question {i}?", options=["yes", "no"], gold="AB"[i % 2])
           for i in range(4)]


def _config(tmp_path: Path, engine: str = "build_unigram_engine") -> Any:
    return load_config("base", [
        f"output_dir={tmp_path}", "train.steps=2", "train.save_every=1", "train.tensorboard=false",
        "train.save_hf=false", "model.prompt_style=base", "grpo.group_size=4", "grpo.prompts_per_step=2",
        "grpo.kl_coef=0.01", "rollout.max_new_tokens=5", "rollout.temperature=0.8",
        f"rollout.engine={__name__}:{engine}",
        f"reward.sources.gold=[{{name: '{__name__}:fewer_characters'}}]"])


def test_a_backend_and_engine_written_from_the_interfaces_train_two_grpo_steps(tmp_path):
    cfg = _config(tmp_path)
    _, tokenizer = make_tiny_model("llama", seed=0)
    policy = ColocatedUnigramPolicy(tokenizer)
    trainer = GRPOTrainer(cfg, records=RECORDS, policy=policy, show_progress=False).setup()
    metrics = trainer.train()

    # the engine was built on the module the policy declares (Colocatable.rollout_module), asked
    # for once, and received the training state the policy declares (Colocatable.trainer_memory)
    engine = trainer.engine
    assert isinstance(engine, UnigramEngine)
    assert policy.module_requests == 1
    assert engine.trainer_memory is policy.memory
    logged = read_metrics(tmp_path)
    assert [m["step"] for m in logged] == [1, 2]
    for m in logged:
        assert m["train/num_tokens"] == 2 * 4 * 5          # prompts x group x new tokens
        assert "train/kl" in m and "train/entropy" in m and "train/ratio_mean" in m
    # the declared loss reached the backend: temperature of the rollout, entropy as a metric
    assert [(loss.temperature, loss.entropy) for loss in policy.seen_losses] == [(0.8, "metric")] * 2
    # colocation hooks ran around each step's generation
    assert (policy.offloads, policy.onloads) == (2, 2)
    # the engine was refit after each update with exactly the policy's weights
    assert metrics["weight_version"] == 2 == engine.weight_version
    assert torch.equal(engine.logits, policy.logits.detach())
    assert not torch.equal(policy.logits.detach(), torch.zeros_like(policy.logits))
    # checkpoints went through the backend's own save: the latest holds the final logits
    latest = tmp_path / "checkpoints" / (tmp_path / "checkpoints" / "latest").read_text()
    assert torch.equal(torch.load(latest / "policy" / "logits.pt"), policy.logits.detach())
    assert json.loads((latest / "trainer_state.json").read_text())["step"] == 2


def _train_two_steps(tmp_path: Path, policy: UnigramPolicy, engine: str) -> GRPOTrainer:
    trainer = GRPOTrainer(_config(tmp_path, engine), records=RECORDS, policy=policy, show_progress=False).setup()
    metrics = trainer.train()
    assert metrics["weight_version"] == 2 == trainer.engine.weight_version
    assert torch.equal(trainer.engine.logits, policy.logits.detach())      # refit with the policy's weights
    assert not torch.equal(policy.logits.detach(), torch.zeros_like(policy.logits))
    assert [m["step"] for m in read_metrics(tmp_path)] == [1, 2]
    return trainer


def test_an_engine_with_its_own_weights_never_asks_for_the_policy_module(tmp_path):
    _, tokenizer = make_tiny_model("llama", seed=0)
    policy = ColocatedUnigramPolicy(tokenizer)
    trainer = _train_two_steps(tmp_path, policy, "build_standalone_unigram_engine")
    assert policy.module_requests == 0          # on megatron: no unsharded copy built for nothing
    assert trainer.engine.trainer_memory is policy.memory
    assert (policy.offloads, policy.onloads) == (2, 2)


def test_a_policy_that_is_not_colocatable_trains_with_an_engine_that_needs_no_module(tmp_path):
    _, tokenizer = make_tiny_model("llama", seed=0)
    policy = UnigramPolicy(tokenizer)
    trainer = _train_two_steps(tmp_path, policy, "build_standalone_unigram_engine")
    assert trainer.engine.trainer_memory is None


def test_an_engine_that_needs_the_module_of_a_policy_that_lends_none_is_a_clear_error(tmp_path):
    _, tokenizer = make_tiny_model("llama", seed=0)
    trainer = GRPOTrainer(_config(tmp_path), records=RECORDS, policy=UnigramPolicy(tokenizer), show_progress=False)
    with pytest.raises(ValueError, match="is not Colocatable"):
        trainer.setup()
