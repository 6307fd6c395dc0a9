"""Importance-sampling correction for rollouts sampled by a different engine (``grpo.rollout_is_cap``).

TensorRT-LLM samples in bf16 with its own kernels, so the distribution the tokens came from
(``rollout_logprobs``) is not exactly the trainer's (``old_logprobs``). Truncated importance
sampling reweights each token's policy-gradient term by

    w_t = min(exp(old_logprob_t - rollout_logprob_t), cap)

(detached; Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL
Training", as verl's ``tis_imp_ratio_cap``). Tokens without an engine logprob (NaN: a release
that did not return the sampled token's) and non-response tokens get weight 1.
"""

from __future__ import annotations

import torch


def truncated_is_weights(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float) -> torch.Tensor:
    if cap <= 0:
        raise ValueError(f"grpo.rollout_is_cap must be > 0 to correct, got {cap}")
    rollout = rollout_logprobs.to(old_logprobs.dtype)
    known = mask.to(torch.bool) & ~torch.isnan(rollout)
    log_ratio = torch.where(known, old_logprobs.detach() - torch.nan_to_num(rollout), torch.zeros_like(old_logprobs))
    return torch.exp(log_ratio.clamp(max=torch.log(torch.tensor(cap, dtype=torch.float64)).item())).detach()


def known_rollout_mask(rollout_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` without the tokens the engine gave no logprob for (NaN)."""
    return mask * (~torch.isnan(rollout_logprobs)).to(mask.dtype)
