"""Per-token logprobs and entropies from vocabulary-parallel logits (each tensor-parallel rank
holds a contiguous slice of the vocabulary), never materialising the full [B, T, V] logits.

Same convention as ``medssr_nemo.policy.logprobs`` (position t holds log p(input_ids[:, t] | < t)
under ``log_softmax(logits / temperature)``, position 0 holds 0), and the same memory plan: work
on slices of positions, and with gradients recompute each slice in the backward pass.

For one position with local logits z (this rank's vocabulary slice, padded columns at -inf)::

    m    = max over ranks of max(z)                      (a constant shift: no gradient needed)
    S    = sum over ranks of sum exp(z - m)
    logp = (z[target] - m) - log S                       (z[target] lives on exactly one rank)
    H    = log S - sum over ranks of sum softmax(z) (z - m)

Sums over ranks use an all-reduce whose backward is the identity: every rank computes the same
loss from the reduced values, so each rank's partial sum receives the same gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.checkpoint import checkpoint

from medssr_nemo.policy.logprobs import chunked_token_stats
from medssr_nemo.policy.loss_contract import EntropyUse


class _AllReduceSum(torch.autograd.Function):
    """Sum over the group in the forward pass, identity in the backward pass."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:  # type: ignore[override]
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def _group_size(group) -> int:
    return 1 if group is None else dist.get_world_size(group)


def _reduce_sum(tensor: torch.Tensor, group) -> torch.Tensor:
    return tensor if _group_size(group) == 1 else _AllReduceSum.apply(tensor, group)


def _shifted_logits(logits: torch.Tensor, temperature: float, vocab_start: int, vocab_size: int, group):
    """(z - m) in float32 with padded vocabulary columns at -inf, and the validity mask."""
    z = logits.float() / temperature
    columns = torch.arange(vocab_start, vocab_start + z.shape[-1], device=z.device)
    valid = columns < vocab_size
    if not bool(valid.all()):
        z = z.masked_fill(~valid, float("-inf"))
    with torch.no_grad():
        m = z.max(dim=-1, keepdim=True).values
        if _group_size(group) > 1:
            dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    return z - m, valid


def _slice_stats(logits: torch.Tensor, targets: torch.Tensor, temperature: float, vocab_start: int,
                 vocab_size: int, group, want_entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    shifted, valid = _shifted_logits(logits, temperature, vocab_start, vocab_size, group)
    exp = shifted.exp()
    log_sum = torch.log(_reduce_sum(exp.sum(-1), group))
    local = targets - vocab_start
    here = (local >= 0) & (local < shifted.shape[-1])
    picked = shifted.gather(-1, local.clamp(0, shifted.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    picked = _reduce_sum(torch.where(here, picked, torch.zeros_like(picked)), group)
    logprobs = picked - log_sum
    if not want_entropy:
        return logprobs, torch.zeros_like(logprobs)
    weighted = torch.where(valid, exp * shifted, torch.zeros_like(shifted)).sum(-1)  # 0 * -inf -> 0
    entropy = log_sum - _reduce_sum(weighted, group) / torch.exp(log_sum)
    return logprobs, entropy


def vocab_parallel_token_logprobs(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    *,
    vocab_start: int,
    vocab_size: int,
    group=None,
    temperature: float = 1.0,
    chunk_positions: int = 1024,
    entropy: EntropyUse = "off",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logprobs [B, T], entropy [B, T] or None), float32, from this rank's logits slice
    [B, T, V_local] covering vocabulary ids ``vocab_start .. vocab_start + V_local``.

    ``vocab_size`` is the real (tokenizer) vocabulary: padded ids beyond it get probability 0.
    ``group`` is the tensor-parallel group (None: one rank holds the whole vocabulary).
    Every rank of ``group`` must call this with the same ``input_ids``.
    """
    def slice_stats(piece: torch.Tensor, targets: torch.Tensor, recompute: bool
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        args = (piece, targets, temperature, vocab_start, vocab_size, group, entropy != "off")
        lp, en = checkpoint(_slice_stats, *args, use_reentrant=False) if recompute else _slice_stats(*args)
        return lp, (en.detach() if entropy == "metric" and en is not None else en)

    return chunked_token_stats(logits, input_ids, temperature, chunk_positions, entropy, slice_stats)
