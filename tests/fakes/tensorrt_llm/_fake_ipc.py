"""Test-only stand-in for torch's CUDA IPC handles: a ``(function, args)`` pair, like
``reduce_tensor`` returns, that rebuilds a copy of the tensor from its bytes."""

from __future__ import annotations

from typing import Any

import torch


def rebuild_from_bytes(raw: bytes, dtype: str, shape: tuple[int, ...]) -> torch.Tensor:
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return flat.view(getattr(torch, dtype.replace("torch.", ""))).reshape(shape).clone()


def byte_handle(tensor: torch.Tensor) -> tuple[Any, tuple]:
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return rebuild_from_bytes, (raw, str(tensor.dtype), tuple(tensor.shape))
