"""Batched next-token sampling: temperature, top-k, top-p and an allowed-token mask in one
vectorised function, with the randomness of each row supplied from outside.

Why inverse-transform sampling: a row needs exactly one uniform number per token, so the engine
can draw every row's uniforms up front from that row's own seeded generator. Row i's tokens then
depend only on ``seeds[i]`` (and the logits), never on which other rows share the batch, and the
hot loop holds no per-row generator calls.
"""

from __future__ import annotations

import torch


def sample_next_tokens(
    logits: torch.Tensor,
    *,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    uniforms: torch.Tensor | None = None,
    allowed_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row of ``logits`` (B, V); return (tokens (B,) long, logprobs (B,) float32).

    ``logprobs`` follow the rollout contract: ``log_softmax(logits / T)`` of the full vocabulary at
    the chosen token, before any truncation (T = 1 when greedy); the ``allowed_mask`` (V,) bool
    counts as a truncation too. Temperature 0 is greedy (argmax, ties to the lowest id).
    Otherwise: scores = logits / T, masked to ``allowed_mask``; keep the ``top_k`` best; renormalise;
    keep the smallest prefix of the sorted distribution whose mass reaches ``top_p`` (a token is
    kept when the mass strictly before it is < top_p, as transformers' TopPLogitsWarper);
    renormalise; then token = F^-1(u) with ``uniforms`` (B,) in [0, 1) from each row's generator.
    """
    logits = logits.float()
    scores = logits / temperature if temperature > 0 else logits
    full_logprobs = torch.log_softmax(scores, dim=-1)
    if allowed_mask is not None:
        scores = scores.masked_fill(~allowed_mask, float("-inf"))

    if temperature == 0:
        tokens = scores.argmax(dim=-1)
    else:
        if uniforms is None:
            raise ValueError("sampling with temperature > 0 needs one uniform per row")
        if top_k > 0:  # topk is much cheaper than sorting the whole vocabulary
            values, order = torch.topk(scores, min(top_k, scores.size(-1)), dim=-1)
        elif top_p < 1.0:
            values, order = torch.sort(scores, dim=-1, descending=True)
        else:  # inverse-transform sampling needs no particular order
            values, order = scores, None
        probs = torch.softmax(values, dim=-1)
        if top_p < 1.0:
            mass_before = torch.cumsum(probs, dim=-1) - probs
            probs = probs.masked_fill(mass_before >= top_p, 0.0)  # the top token always stays
        # float64 so the CDF's rounding over ~10^5 entries cannot bias the pick
        cdf = torch.cumsum(probs.double(), dim=-1)
        target = uniforms.to(cdf) * cdf[:, -1]
        pick = torch.searchsorted(cdf, target.unsqueeze(-1), right=True).clamp_(max=cdf.size(-1) - 1)
        # A uniform within an ulp of the total can land on a zero-probability tail entry:
        # fall back to the most likely token (probability ~1e-7 per draw, negligible bias).
        zero = probs.gather(-1, pick) <= 0
        pick = torch.where(zero, probs.argmax(dim=-1, keepdim=True), pick).squeeze(-1)
        tokens = pick if order is None else order.gather(-1, pick.unsqueeze(-1)).squeeze(-1)

    logprobs = full_logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return tokens, logprobs


def row_uniforms(seeds: list[int], num_steps: int) -> torch.Tensor:
    """(len(seeds), num_steps) float32 uniforms in [0, 1); row i comes from a CPU generator
    seeded with ``seeds[i]`` alone (Mersenne Twister: the same numbers on every machine)."""
    rows = []
    for seed in seeds:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(int(seed))
        rows.append(torch.rand(num_steps, generator=generator))
    return torch.stack(rows) if rows else torch.empty(0, num_steps)
