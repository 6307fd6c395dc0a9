"""What a rollout engine takes and returns (the contract every engine plugin implements).

Logprob convention (shared with the policy backends so the two can be compared token by token):
``Completion.logprobs[i]`` is ``log_softmax(logits / temperature)[token_ids[i]]`` of the full
vocabulary distribution, before top-k / top-p truncation; with temperature 0 (greedy) the
temperature is taken as 1.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import torch

from medssr_nemo.policy.interfaces import TrainerMemory

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0           # 0 means greedy
    top_p: float = 1.0                 # nucleus mass kept (1.0 = off)
    top_k: int = 0                     # keep the k most likely tokens (0 = off)
    max_new_tokens: int = 256
    stop_token_ids: tuple[int, ...] = ()   # besides the tokenizer's EOS; kept in the output
    # When set, every sampled token is restricted to these ids (the evaluation's constrained
    # re-decode of an answer letter uses it with max_new_tokens=1).
    allowed_token_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"sampling.top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Completion:
    token_ids: list[int]               # generated tokens, the stop/EOS token included if hit
    text: str                          # decoded generated tokens, special tokens skipped
    logprobs: list[float]              # one per token id (see the module docstring)
    finish_reason: FinishReason
    weight_version: int                # version of the weights that produced every token
    prompt_token_ids: list[int] = field(default_factory=list)


class RolloutEngine(abc.ABC):
    """Samples completions from the current policy weights."""

    @abc.abstractmethod
    def generate(
        self,
        prompt_token_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        seeds: Sequence[int],
    ) -> list[Completion]:
        """One completion per prompt; ``seeds[i]`` alone decides the randomness of sample i,
        so the same (prompt, seed, weights) gives the same tokens whatever the batch."""

    @abc.abstractmethod
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Load HF-layout tensors (names as in the HF state dict) and return the new weight
        version. Every completion generated afterwards carries that version."""

    @property
    @abc.abstractmethod
    def weight_version(self) -> int:
        """Version of the weights the next ``generate`` will use."""

    def sleep(self) -> None:
        """Release accelerator memory while the trainer runs (optional)."""

    def wake(self) -> None:
        """Reacquire what ``sleep`` released (optional)."""

    def attach_trainer_memory(self, memory: TrainerMemory | None) -> None:
        """Optional: the trainer hands the policy's declared training state
        (``Colocatable.trainer_memory``) to the engine once; an engine colocated with training may
        move it aside around refits (the ``tensorrt_llm`` engine does). Default: nothing."""


@dataclass(frozen=True)
class EngineFactory:
    """A registered rollout engine: how it is built, and what it needs from the policy.

    ``needs_policy_module``: the engine samples on the policy's own module, which the trainer asks
    for (``Colocatable.rollout_module()``) and passes as ``model``. An engine that loads its own
    weights (from ``model_path``) and is refit from ``export_hf_weights`` leaves it False, so the
    trainer never builds a module nobody uses (on the megatron backend a full, unsharded copy).
    A ``rollout_engine`` plugin that is a plain callable is taken as needing no module.
    """

    build: Callable[..., RolloutEngine]
    needs_policy_module: bool = False

    def __call__(self, rollout_cfg: Any, *, model: Any = None, tokenizer: Any = None,
                 model_path: str | None = None) -> RolloutEngine:
        return self.build(rollout_cfg, model=model, tokenizer=tokenizer, model_path=model_path)


def engine_factory(*, needs_policy_module: bool) -> Callable[[Callable[..., RolloutEngine]], EngineFactory]:
    """Decorator for a rollout engine factory: declares whether it runs on the policy's module."""
    def wrap(build: Callable[..., RolloutEngine]) -> EngineFactory:
        return EngineFactory(build, needs_policy_module)
    return wrap


def needs_policy_module(factory: Callable[..., RolloutEngine]) -> bool:
    """Whether a registered ``rollout_engine`` plugin declared that it runs on the policy's module."""
    return isinstance(factory, EngineFactory) and factory.needs_policy_module
