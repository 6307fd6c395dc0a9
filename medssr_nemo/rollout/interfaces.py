"""What a rollout engine takes and returns (the contract every engine plugin implements).

Logprob convention (shared with the policy backends so the two can be compared token by token):
``Completion.logprobs[i]`` is ``log_softmax(logits / temperature)[token_ids[i]]`` of the full
vocabulary distribution, before top-k / top-p truncation; with temperature 0 (greedy) the
temperature is taken as 1.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import torch

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

    def attach_trainer_memory(self, policy: Any) -> None:
        """Optional: the trainer hands its policy to the engine once; an engine colocated with
        training may move the policy's optimizer state and gradients aside around refits (the
        ``tensorrt_llm`` engine does). Default: nothing."""
