"""Advantage estimators: pure functions of tensors, in a registry that ``grpo.advantage_estimator``
selects (in the manner of verl's ``core_algos`` registries).

Groups are identified by an explicit group id (one id per prompt's G rollouts), never by equal
prompt tokens: two questions with the same text are still two groups.

Conventions follow verl 0.3.1 (the MedSSR authors' trainer): a group of size 1 has mean 0 and std 1
(so its one row's advantage is r / (1 + eps), or r without std normalisation), and a group whose
rewards are all equal gets exactly 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from medssr_nemo.registry import table_entry, table_registrar

if TYPE_CHECKING:
    from medssr_nemo.config.schema.grpo import GRPOConfig

# estimator(rewards [N], group_ids [N], grpo config) -> advantages [N], shaped and typed like rewards
AdvantageEstimator = Callable[[torch.Tensor, torch.Tensor, "GRPOConfig"], torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}


register_advantage = table_registrar(ADVANTAGE_ESTIMATORS, "advantage estimator")


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    return table_entry(ADVANTAGE_ESTIMATORS, name, "advantage estimator")


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


def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, normalize_std: bool = True,
                     unbiased: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """GRPO outcome advantage, one number per rollout::

        A_i = (r_i - mean_g(r)) / (std_g(r) + eps)     if normalize_std
        A_i =  r_i - mean_g(r)                          otherwise (Dr. GRPO)

    where g is row i's group and std_g uses the n-1 denominator if ``unbiased`` else n.
    A group of size 1 takes mean 0 and std 1 (verl 0.3.1): A = r / (1 + eps), or r. Rows in a
    group of two or more equal rewards get exactly 0: they carry no preference signal. Returns a
    tensor shaped and typed like ``rewards`` [N].
    """
    _check_rewards(rewards)
    mean, std, counts, zero_std = group_statistics(rewards, group_ids, unbiased)
    singleton = counts == 1
    mean = torch.where(singleton, torch.zeros_like(mean), mean)
    std = torch.where(singleton, torch.ones_like(std), std)
    index, _ = _group_index(group_ids, rewards.numel())
    centred = rewards.detach().to(torch.float64) - mean[index]
    advantages = centred / (std[index] + eps) if normalize_std else centred
    no_signal = zero_std & ~singleton
    advantages = torch.where(no_signal[index], torch.zeros_like(advantages), advantages)
    return advantages.to(rewards.dtype)


def leave_one_out_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """RLOO: each rollout's reward minus the mean of the *other* rollouts of its group::

        A_i = r_i - (sum_g(r) - r_i) / (n_g - 1) = n_g / (n_g - 1) * (r_i - mean_g(r))

    A group of size 1 has no other rollout; as in verl 0.3.1 its baseline is 0, so A = r.
    """
    _check_rewards(rewards)
    mean, _, counts, _ = group_statistics(rewards, group_ids)
    index, _ = _group_index(group_ids, rewards.numel())
    r = rewards.detach().to(torch.float64)
    n = counts[index].to(torch.float64)
    advantages = torch.where(n > 1, (r - mean[index]) * n / (n - 1).clamp(min=1), r)
    return advantages.to(rewards.dtype)


def _check_rewards(rewards: torch.Tensor) -> None:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")


@register_advantage("grpo")
def _grpo(rewards: torch.Tensor, group_ids: torch.Tensor, cfg: "GRPOConfig") -> torch.Tensor:
    """``group_advantages`` with the config's std normalisation, std denominator and eps."""
    return group_advantages(rewards, group_ids, normalize_std=cfg.normalize_std, unbiased=cfg.std_unbiased,
                            eps=cfg.advantage_eps)


@register_advantage("dr_grpo")
def _dr_grpo(rewards: torch.Tensor, group_ids: torch.Tensor, cfg: "GRPOConfig") -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025): the centred reward, never divided by the group's std."""
    return group_advantages(rewards, group_ids, normalize_std=False)


@register_advantage("rloo")
def _rloo(rewards: torch.Tensor, group_ids: torch.Tensor, cfg: "GRPOConfig") -> torch.Tensor:
    """``leave_one_out_advantages`` (REINFORCE leave-one-out, Ahmadian et al. 2024)."""
    return leave_one_out_advantages(rewards, group_ids)


def zero_std_fraction(rewards: torch.Tensor, group_ids: torch.Tensor) -> float:
    """Fraction of groups whose rewards are all equal (size-1 groups included): the share of
    prompts without a within-group preference this step. Logged every step (docs/design.md)."""
    _, _, _, zero_std = group_statistics(rewards, group_ids)
    return float(zero_std.to(torch.float64).mean()) if zero_std.numel() else 0.0
