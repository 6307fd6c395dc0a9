"""Per-token logprobs and entropies from logits, a slice of positions at a time.

The float32 softmax over a 50k-150k vocabulary is the largest tensor of a training step. Working
on slices of the time axis (and, with gradients, recomputing each slice's softmax in the backward
pass) means only the model's own logits are kept, never a second [B, T, V] float32 copy.

Convention (``policy/interfaces.py``): position t holds log p(input_ids[:, t] | tokens < t) under
``log_softmax(logits / temperature)``; position 0 holds 0. Entropy at t is the entropy of that
same distribution, so a response mask selects both consistently.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

from medssr_nemo.policy.loss_contract import EntropyUse


def _slice_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    z = logits.float() / temperature
    return z.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)


def _slice_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """H = logsumexp(z) - sum_v softmax(z)_v z_v."""
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1)
    return lse - (torch.softmax(z, dim=-1) * z).sum(-1)


# slice_stats(logits slice [B, t, V], target ids [B, t], recompute) -> (logprobs [B, t], entropy [B, t] or None)
SliceStats = Callable[[torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, "torch.Tensor | None"]]


def chunked_token_stats(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float, chunk_positions: int,
                        entropy: EntropyUse, slice_stats: SliceStats) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loop both backends share: positions 1..T-1 in slices of at most ``chunk_positions``
    (row, position) pairs (the logits at t-1 predict the token at t), ``slice_stats`` on each,
    position 0 set to 0. ``recompute`` tells ``slice_stats`` that the slice's softmax should be
    recomputed in the backward pass instead of kept (a gradient is being taken)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for logprobs, got {temperature}")
    batch, length, _ = logits.shape
    logprobs = logits.new_zeros((batch, length), dtype=torch.float32)
    ent = logits.new_zeros((batch, length), dtype=torch.float32) if entropy != "off" else None
    if length < 2:
        return logprobs, ent
    step = max(1, chunk_positions // max(batch, 1))
    recompute = torch.is_grad_enabled() and logits.requires_grad
    lp_parts, ent_parts = [], []
    for start in range(0, length - 1, step):
        stop = min(start + step, length - 1)
        lp, en = slice_stats(logits[:, start:stop], input_ids[:, start + 1:stop + 1], recompute)
        lp_parts.append(lp)
        if en is not None:
            ent_parts.append(en)
    logprobs = torch.cat([logprobs[:, :1], *lp_parts], dim=1)
    if ent is not None:
        ent = torch.cat([ent[:, :1], *ent_parts], dim=1)
    return logprobs, ent


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, temperature: float = 1.0,
                   chunk_positions: int = 1024, entropy: EntropyUse = "off"
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logprobs [B, T] float32, entropy [B, T] float32 or None) for ``logits`` [B, T, V].

    ``chunk_positions`` bounds how many (row, position) pairs share one float32 softmax.
    ``entropy``: "off" (None), "metric" (computed without gradient) or "loss" (with gradient).
    """
    def slice_stats(piece: torch.Tensor, targets: torch.Tensor, recompute: bool
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if recompute:
            lp = checkpoint(_slice_logprobs, piece, targets, temperature, use_reentrant=False)
        else:
            lp = _slice_logprobs(piece, targets, temperature)
        if entropy == "loss" and recompute:
            return lp, checkpoint(_slice_entropy, piece, temperature, use_reentrant=False)
        if entropy != "off":
            with torch.no_grad():
                return lp, _slice_entropy(piece.detach(), temperature)
        return lp, None

    return chunked_token_stats(logits, input_ids, temperature, chunk_positions, entropy, slice_stats)
