"""Checksums that tell whether the engine holds exactly the weights the trainer sent.

``tensor_checksum(t) = sum_i x_i * (1 + i mod 251)`` over the flattened tensor in float64, after
rounding ``t`` to the engine's storage dtype. The position weights make a permutation or a
transposition change the sum; float64 accumulation keeps the sum exact enough that the trainer's
and the engine's values agree to ~1e-12 relative although they add in different orders.
"""

from __future__ import annotations

import torch

_PERIOD = 251  # a prime, so row-length periodicities of common shapes do not cancel out


_CHUNK = 1 << 22  # elements per float64 pass: bounds the extra memory a check of a fused tensor needs


def tensor_checksum(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> float:
    flat = tensor.detach().reshape(-1)
    if dtype is not None and flat.dtype != dtype:
        flat = flat.to(dtype)
    total = torch.zeros((), dtype=torch.float64, device=flat.device)
    for start in range(0, flat.numel(), _CHUNK):
        part = flat[start:start + _CHUNK].to(torch.float64)
        weights = torch.arange(start, start + part.numel(), device=flat.device, dtype=torch.int64)
        total += (part * weights.remainder_(_PERIOD).add_(1).to(torch.float64)).sum()
    return float(total.item())


def checksums_match(expected: float, actual: float, rtol: float = 1e-9) -> bool:
    """Equal up to float64 summation-order noise (relative to the larger magnitude, at least 1)."""
    return abs(expected - actual) <= rtol * max(1.0, abs(expected), abs(actual))
