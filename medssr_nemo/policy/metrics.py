"""Loss metrics of a training step, shared by the policy backends: token-weighted means over
micro-batches and data-parallel ranks; ``*_max`` / ``*_min`` keys are reduced by max / min."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.distributed as dist


class TokenWeightedMetrics:
    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.extremes: dict[str, float] = {}
        self.weight = 0.0

    def add(self, metrics: Mapping[str, float], weight: float) -> None:
        # every key is registered even at weight 0, so all ranks reduce the same key list
        self.weight += weight
        for key, value in metrics.items():
            if key.endswith("_max"):
                value = float(value) if weight > 0 else -math.inf
                self.extremes[key] = max(self.extremes.get(key, -math.inf), value)
            elif key.endswith("_min"):
                value = float(value) if weight > 0 else math.inf
                self.extremes[key] = min(self.extremes.get(key, math.inf), value)
            else:
                self.sums[key] = self.sums.get(key, 0.0) + weight * float(value)

    def reduce(self, group: Any = None, device: torch.device | str = "cpu") -> dict[str, float]:
        """The step's metrics; with a process ``group`` (every member must call this), reduced
        over it, the tensors living on ``device`` (a CUDA device under nccl)."""
        keys, ext_keys = sorted(self.sums), sorted(self.extremes)
        sums = torch.tensor([self.sums[k] for k in keys] + [self.weight], dtype=torch.float64, device=device)
        # min(x) = -max(-x): one MAX all-reduce serves both
        signed = torch.tensor([self.extremes[k] if k.endswith("_max") else -self.extremes[k] for k in ext_keys],
                              dtype=torch.float64, device=device)
        if group is not None:
            dist.all_reduce(sums, group=group)
            if ext_keys:
                dist.all_reduce(signed, op=dist.ReduceOp.MAX, group=group)
        total = float(sums[-1]) or 1.0
        out = {k: float(v) / total for k, v in zip(keys, sums[:-1].tolist())}
        out.update({k: (v if k.endswith("_max") else -v) if abs(v) != math.inf else math.nan
                    for k, v in zip(ext_keys, signed.tolist())})
        return out
