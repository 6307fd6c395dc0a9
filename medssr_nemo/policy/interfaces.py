"""What a policy backend takes and returns (the contract of ``hf`` and ``megatron``).

Batches are right-padded token matrices. Position ``t`` of a logprob tensor holds the log
probability of ``input_ids[:, t]`` given the tokens before it (position 0 holds 0), computed as
``log_softmax(logits / temperature)`` — the rollout engines' convention, so the two compare.
When the batch carries a ``response_mask``, only response positions are guaranteed: a backend
may skip the vocabulary projection for prompt positions (most of a row) and leave 0 there.
"""

from __future__ import annotations

import abc
import os
from typing import Any, Iterator, TypedDict

import torch

from medssr_nemo.policy.loss_contract import LossFunction


class TokenBatch(TypedDict, total=False):
    input_ids: torch.Tensor        # [B, T] long, prompt + response, right padded
    attention_mask: torch.Tensor   # [B, T] 1 on real tokens
    response_mask: torch.Tensor    # [B, T] 1 on response tokens (the ones trained on)
    advantages: torch.Tensor       # [B] (sequence) or [B, T] (token) advantages
    old_logprobs: torch.Tensor     # [B, T] logprobs of the policy that sampled (for the ratio)
    ref_logprobs: torch.Tensor     # [B, T] logprobs of the frozen reference policy
    group_ids: torch.Tensor        # [B] long: which prompt group each row belongs to
    rollout_logprobs: torch.Tensor  # [B, T] the engine's sampling logprobs (for the gap metric)
    entropy: torch.Tensor          # [b, T] per-token entropy, put in a micro-batch by the backend
                                   # when the loss declares ``entropy`` != "off"


class PolicyBackend(abc.ABC):
    tokenizer: Any

    @abc.abstractmethod
    def logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        """Per-token logprobs of the current policy, no gradient: [B, T]."""

    @abc.abstractmethod
    def reference_logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        """Per-token logprobs of the frozen initial policy: [B, T]."""

    @abc.abstractmethod
    def train_step(self, batch: TokenBatch, loss_fn: LossFunction) -> dict[str, float]:
        """One optimiser step over the whole batch (micro-batched inside), honouring what
        ``loss_fn`` declares (``policy/loss_contract.py``); returns metrics (loss, grad_norm, lr,
        and whatever ``loss_fn`` reported, token-weighted): ``StepLoss.step_metrics``."""

    @abc.abstractmethod
    def export_hf_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The current weights as (HF state-dict name, tensor): what rollout engines refit from."""

    @abc.abstractmethod
    def save(self, directory: str | os.PathLike) -> None:
        """Atomically write model, optimiser, scheduler and step to ``directory``."""

    @abc.abstractmethod
    def load(self, directory: str | os.PathLike) -> None:
        """Restore exactly what ``save`` wrote."""

    @abc.abstractmethod
    def save_hf(self, directory: str | os.PathLike) -> None:
        """Write a Hugging Face checkpoint (config, tokenizer, safetensors) of the policy."""


class TrainerMemory(abc.ABC):
    """The training state a colocated engine may move aside around a refit (optimiser state,
    gradients), declared by the policy that owns it (``Colocatable.trainer_memory``): the engine
    never looks inside the policy. Built-ins: ``policy/trainer_memory.py`` ``TorchTrainerMemory``
    (a torch optimizer) and ``policy/megatron/offload.py`` ``TrainingStateMemory``."""

    @abc.abstractmethod
    def release(self) -> None:
        """Free gradients and move optimizer state off the accelerator."""

    @abc.abstractmethod
    def restore(self) -> None:
        """Bring optimizer state back for the next update (a no-op for a backend whose update
        brings it back itself)."""

    @abc.abstractmethod
    def held(self) -> dict[str, int]:
        """Bytes of each kind of training state now on the accelerator ({} when not counted)."""

    def note(self) -> str:
        """What the memory ledger prints when ``held`` counts nothing."""
        return "unmanaged"


class Colocatable(abc.ABC):
    """Optional, declared: a policy whose process a rollout engine may share (NeMo RL splits its
    policy interface from a colocatable one the same way).

    The trainer checks ``isinstance(policy, Colocatable)``; it never probes for attributes.
    An engine that declares ``needs_policy_module`` (``rollout/interfaces.py`` ``EngineFactory``)
    runs on ``rollout_module()`` and is refit from ``export_hf_weights`` after every step; the
    trainer calls ``rollout_module()`` for no other engine. Around generation the trainer calls
    ``offload_before_generation`` / ``onload_after_generation`` so a backend can hand accelerator
    memory (optimiser state, gradients) to the engine while it samples, and it hands the engine
    ``trainer_memory()`` once, for an engine that shares the GPUs during refits.
    """

    @abc.abstractmethod
    def rollout_module(self) -> Any:
        """A transformers causal LM holding the policy's weights, for an in-process engine. May
        be expensive (a backend that shards its weights builds a full copy on the first call,
        collectively: every rank must call it)."""

    def offload_before_generation(self) -> None:
        """Free accelerator memory the engine may use while sampling (default: nothing)."""

    def onload_after_generation(self) -> None:
        """Bring back what ``offload_before_generation`` moved (default: nothing)."""

    def trainer_memory(self) -> TrainerMemory | None:
        """The training state a colocated engine may move aside around refits (default: none)."""
        return None
