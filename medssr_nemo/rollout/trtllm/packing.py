"""Pack a bucket of tensors into one byte buffer and back (the broadcast refit's wire format).

One collective per bucket instead of one per tensor: a 8B model has ~400 tensors, and a
broadcast's fixed cost is paid per call. ``TensorMeta`` travels separately (through the engine's
RPC) so the receiver can allocate the buffer and cut it into views without extra messages.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from medssr_nemo.rollout.trtllm.buckets import ALIGN_BYTES, align_up

_DTYPES = {str(dt): dt for dt in (torch.float32, torch.float16, torch.bfloat16, torch.float64,
                                  torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool)}


@dataclasses.dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str                      # str(torch.dtype), e.g. "torch.bfloat16"
    shape: tuple[int, ...]
    offset: int                     # byte offset in the packed buffer

    @property
    def nbytes(self) -> int:
        numel = 1
        for dim in self.shape:
            numel *= dim
        return numel * torch.empty((), dtype=parse_dtype(self.dtype)).element_size()


def parse_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"cannot send tensors of dtype {name}; supported: {sorted(_DTYPES)}") from None


def layout(bucket: Sequence[tuple[str, torch.Tensor]], alignment: int = ALIGN_BYTES) -> tuple[list[TensorMeta], int]:
    """Metadata of each tensor and the packed buffer's size in bytes."""
    metas, used = [], 0
    for name, tensor in bucket:
        start = align_up(used, alignment)
        metas.append(TensorMeta(name, str(tensor.dtype), tuple(tensor.shape), start))
        used = start + tensor.numel() * tensor.element_size()
    return metas, used


def pack(bucket: Sequence[tuple[str, torch.Tensor]], device: torch.device | str | None = None) -> tuple[list[TensorMeta], torch.Tensor]:
    """(metadata, uint8 buffer) holding every tensor of ``bucket`` at its aligned offset."""
    metas, total = layout(bucket)
    device = device if device is not None else (bucket[0][1].device if bucket else "cpu")
    buffer = torch.zeros(total, dtype=torch.uint8, device=device)
    for meta, (_, tensor) in zip(metas, bucket):
        raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
        buffer[meta.offset: meta.offset + raw.numel()].copy_(raw)
    return metas, buffer


def unpack(metas: Sequence[TensorMeta], buffer: torch.Tensor) -> dict[str, torch.Tensor]:
    """Views of ``buffer`` as the tensors ``metas`` describe (no copies)."""
    out = {}
    for meta in metas:
        chunk = buffer[meta.offset: meta.offset + meta.nbytes]
        out[meta.name] = chunk.view(parse_dtype(meta.dtype)).reshape(meta.shape)
    return out
