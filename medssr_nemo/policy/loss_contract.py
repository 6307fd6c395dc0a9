"""The contract between a loss and a policy backend, and the train-step skeleton both backends share.

A loss (``grpo/losses.py`` builds the GRPO one) *declares* what a backend must do for it, instead
of the backend discovering it at run time:

- ``temperature``: training logprobs are ``log_softmax(logits / temperature)``, the temperature
  the old and reference logprobs were computed at;
- ``entropy``: ``"off"``, ``"metric"`` (per-token entropy in the micro-batch under ``"entropy"``,
  no gradient) or ``"loss"`` (with gradient);
- ``normalisers``: the keys of the global normalisers it divides by (``NUM_TOKENS``,
  ``NUM_SEQS``, ``MAX_RESPONSE_LEN``), counted over the *whole step*: every micro-batch and every
  data-parallel rank. Dividing each micro-batch's loss by step-global counts makes the sum of
  micro-batch losses the loss of the full batch, so neither micro-batch size nor parallel layout
  changes the objective.

This module sits below both ``policy/`` and ``grpo/`` (it imports neither): backends depend on
it, never on the algorithm.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Protocol, runtime_checkable

import torch
import torch.distributed as dist

from medssr_nemo.policy.metrics import TokenWeightedMetrics

# Keys of the global normalisers a backend passes to the loss (whole step, all DP ranks).
NUM_TOKENS = "num_tokens"              # response tokens
NUM_SEQS = "num_seqs"                  # sequences with at least one response token
MAX_RESPONSE_LEN = "max_response_len"  # longest response of the step
NORMALISER_KEYS = (NUM_TOKENS, NUM_SEQS, MAX_RESPONSE_LEN)

EntropyUse = Literal["off", "metric", "loss"]
ENTROPY_USES = ("off", "metric", "loss")


@runtime_checkable
class LossFunction(Protocol):
    """``loss_fn(logprobs [b, T], micro-batch, global normalisers) -> (loss, metrics)``.

    The loss must already be divided by the global normalisers, so summing micro-batch losses
    gives the step loss. Metrics are means over the micro-batch's response tokens; the backend
    weights them by token count (``*_max`` / ``*_min`` keys by max / min).
    """

    temperature: float
    entropy: EntropyUse
    normalisers: tuple[str, ...]

    def __call__(self, logprobs: torch.Tensor, batch: Mapping[str, torch.Tensor],
                 global_norms: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]: ...


def check_loss_function(loss_fn: Any) -> LossFunction:
    """``loss_fn`` itself, after checking it declares what a backend needs (a clear error
    instead of a silent default when a hand-written loss forgets one)."""
    missing = [name for name in ("temperature", "entropy", "normalisers") if not hasattr(loss_fn, name)]
    if missing or not callable(loss_fn):
        raise TypeError(f"{type(loss_fn).__name__} is not a LossFunction (policy/loss_contract.py): it lacks "
                        f"{missing or ['__call__']}")
    if not loss_fn.temperature > 0:
        raise ValueError(f"{type(loss_fn).__name__}.temperature must be > 0, got {loss_fn.temperature}")
    if loss_fn.entropy not in ENTROPY_USES:
        raise ValueError(f"{type(loss_fn).__name__}.entropy={loss_fn.entropy!r}; expected one of {ENTROPY_USES}")
    unknown = sorted(set(loss_fn.normalisers) - set(NORMALISER_KEYS))
    if unknown:
        raise ValueError(f"{type(loss_fn).__name__}.normalisers has unknown keys {unknown}; known: {NORMALISER_KEYS}")
    return loss_fn


def local_normalisers(response_mask: torch.Tensor) -> dict[str, float]:
    """This process's share of the normalisers: sum NUM_TOKENS/NUM_SEQS over ranks, take the max
    of MAX_RESPONSE_LEN."""
    lengths = response_mask.to(torch.long).sum(-1)
    return {NUM_TOKENS: float(lengths.sum()), NUM_SEQS: float((lengths > 0).sum()),
            MAX_RESPONSE_LEN: float(lengths.max()) if lengths.numel() else 0.0}


def global_normalisers(response_mask: torch.Tensor, group: Any = None,
                       device: torch.device | str = "cpu") -> dict[str, float]:
    """The step's normalisers over every rank of ``group`` (None: this process alone). Every
    member must call it; the tensors live on ``device`` (a CUDA device under nccl)."""
    local = local_normalisers(response_mask)
    counts = torch.tensor([local[NUM_TOKENS], local[NUM_SEQS]], dtype=torch.float64, device=device)
    longest = torch.tensor([local[MAX_RESPONSE_LEN]], dtype=torch.float64, device=device)
    if group is not None:
        dist.all_reduce(counts, group=group)
        dist.all_reduce(longest, op=dist.ReduceOp.MAX, group=group)
    return {NUM_TOKENS: float(counts[0]), NUM_SEQS: float(counts[1]), MAX_RESPONSE_LEN: float(longest[0])}


class StepLoss:
    """Runs ``loss_fn`` on each micro-batch of one optimiser step and keeps what the step
    reports: the summed loss and the token-weighted loss metrics.

    A backend computes ``global_normalisers`` once, then for each micro-batch its logprobs (and
    entropy, if ``loss_fn.entropy`` asks for it) and calls this object; it backpropagates the
    returned loss, steps the optimiser (skipping a non-finite gradient), and returns
    ``step_metrics``.
    """

    def __init__(self, loss_fn: LossFunction, norms: Mapping[str, float], device: torch.device | str = "cpu") -> None:
        self.loss_fn = check_loss_function(loss_fn)
        self.norms = dict(norms)
        self.loss_total = torch.zeros((), dtype=torch.float64, device=device)
        self.metrics = TokenWeightedMetrics()

    def __call__(self, logprobs: torch.Tensor, micro: Mapping[str, torch.Tensor],
                 entropy: torch.Tensor | None = None) -> torch.Tensor:
        part = dict(micro)
        if entropy is not None:
            part["entropy"] = entropy
        loss, metrics = self.loss_fn(logprobs, part, self.norms)
        self.loss_total = self.loss_total + loss.detach().to(torch.float64)
        self.metrics.add(metrics, float(micro["response_mask"].sum()))
        return loss

    def step_metrics(self, loss: float, grad_norm: float, lr: float, skipped: bool,
                     loss_metrics: Mapping[str, float]) -> dict[str, float]:
        """What ``PolicyBackend.train_step`` returns (``loss`` and ``loss_metrics`` already
        reduced over data-parallel ranks)."""
        return {"loss": float(loss), "grad_norm": float(grad_norm), "lr": lr, "update_skipped": float(skipped),
                "num_tokens": self.norms[NUM_TOKENS], "num_seqs": self.norms[NUM_SEQS], **loss_metrics}
