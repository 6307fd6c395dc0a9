"""Token-batch checks and micro-batching shared by the policy backends."""

from __future__ import annotations

from typing import Any, Mapping

import torch

_ROW_ALIGNED = ("attention_mask", "response_mask", "old_logprobs", "ref_logprobs")


def check_token_batch(batch: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Raise a clear error when ``batch`` lacks ``keys``, is empty, or has [B, T] tensors whose
    shape differs from ``input_ids``."""
    for key in keys:
        if key not in batch:
            raise KeyError(f"token batch lacks {key!r}; it has {sorted(batch)}")
    shape = batch["input_ids"].shape
    for key in _ROW_ALIGNED:
        if key in batch and batch[key].shape != shape:
            raise ValueError(f"batch[{key!r}] has shape {tuple(batch[key].shape)}, input_ids {tuple(shape)}")
    if int(shape[0]) == 0:
        raise ValueError("empty token batch: every rank needs at least one row")


def micro_batches(batch: Mapping[str, Any], size: int) -> list[dict[str, Any]]:
    """Row slices of ``batch``, each cut to its last attended position (less padding)."""
    parts = []
    rows = batch["input_ids"].shape[0]
    for start in range(0, rows, size):
        part = {k: v[start:start + size] if isinstance(v, torch.Tensor) and v.dim() >= 1 else v
                for k, v in batch.items()}
        attended = part["attention_mask"].bool().any(0).nonzero()
        width = int(attended.max()) + 1 if attended.numel() else 1
        parts.append({k: v[:, :width] if isinstance(v, torch.Tensor) and v.dim() == 2 else v
                      for k, v in part.items()})
    return parts
