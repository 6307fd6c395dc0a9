"""Advantage estimators: pure functions of tensors, registered by name.

Groups are identified by an explicit group id (one id per prompt's G rollouts), never by equal
prompt tokens: two questions with the same text are still two groups.
"""

from __future__ import annotations

from typing import Callable

import torch

AdvantageFn = Callable[..., torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def wrap(fn: AdvantageFn) -> AdvantageFn:
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is registered twice")
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return wrap


def get_advantage_estimator(name: str) -> AdvantageFn:
    if name not in ADVANTAGE_ESTIMATORS:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {sorted(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name]


def _group_index(group_ids: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(dense group index per row [N], group sizes [num_groups]) for arbitrary (interleaved) ids."""
    if group_ids.shape != (n,):
        raise ValueError(f"group_ids must have shape [{n}] like rewards, got {tuple(group_ids.shape)}")
    if group_ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"group_ids must be an integer tensor, got {group_ids.dtype}")
    _, index = torch.unique(group_ids, return_inverse=True)
    counts = torch.bincount(index)
    return index, counts


def group_statistics(rewards: torch.Tensor, group_ids: torch.Tensor, unbiased: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group (mean, std, size, all-equal flag), each [num_groups].

    Computed in float64 so that equal rewards give an exactly zero deviation. ``unbiased`` uses
    the n-1 denominator (torch's default); a group of size 1 then has std 0 by convention.
    Groups are ordered by sorted group id.
    """
    r = rewards.detach().to(torch.float64).reshape(-1)
    index, counts = _group_index(group_ids.reshape(-1), r.numel())
    num_groups = counts.numel()
    sums = torch.zeros(num_groups, dtype=torch.float64, device=r.device).index_add_(0, index, r)
    mean = sums / counts
    sq_dev = torch.zeros_like(mean).index_add_(0, index, (r - mean[index]) ** 2)
    denom = (counts - 1).clamp(min=1) if unbiased else counts
    std = torch.sqrt(sq_dev / denom)
    gmax = torch.full_like(mean, -torch.inf).scatter_reduce_(0, index, r, "amax")
    gmin = torch.full_like(mean, torch.inf).scatter_reduce_(0, index, r, "amin")
    zero_std = gmax == gmin          # exact test: no rounding from the mean/variance path
    std = torch.where(zero_std, torch.zeros_like(std), std)
    return mean, std, counts, zero_std


@register_advantage("grpo")
def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, normalize_std: bool = True,
                     unbiased: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome advantage, one number per rollout::

        A_i = (r_i - mean_g(r)) / (std_g(r) + eps)     if normalize_std
        A_i =  r_i - mean_g(r)                          otherwise (Dr. GRPO)

    where g is row i's group and std_g uses the n-1 denominator if ``unbiased`` else n.
    Rows in a group of size 1, or in a group whose rewards are all equal, get exactly 0: they
    carry no preference signal. Returns a tensor shaped and typed like ``rewards`` [N].
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    mean, std, _, zero_std = group_statistics(rewards, group_ids, unbiased)
    index, _ = _group_index(group_ids, rewards.numel())
    centred = rewards.detach().to(torch.float64) - mean[index]
    advantages = centred / (std[index] + eps) if normalize_std else centred
    advantages = torch.where(zero_std[index], torch.zeros_like(advantages), advantages)
    return advantages.to(rewards.dtype)


def zero_std_fraction(rewards: torch.Tensor, group_ids: torch.Tensor) -> float:
    """Fraction of groups whose rewards are all equal (size-1 groups included): the share of
    prompts that teach nothing this step. Logged every step (DESIGN.md)."""
    _, _, _, zero_std = group_statistics(rewards, group_ids)
    return float(zero_std.to(torch.float64).mean()) if zero_std.numel() else 0.0
