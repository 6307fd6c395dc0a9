"""Size-bounded buckets of weight tensors for a refit.

A refit sends the policy's tensors in groups ("buckets") so the extra memory a transfer needs
stays bounded: ``bucket_bytes`` at most per bucket (colocated IPC: the bytes the engine maps at
once; broadcast: one packed buffer). Tensors are kept in the exporter's order. A tensor larger
than the bound travels alone in its own bucket (it cannot be split: the engine loads whole
tensors), and the plan says so.

In a packed buffer each tensor starts at a multiple of ``ALIGN_BYTES`` so that a view of the
buffer as the tensor's dtype is aligned for every dtype (and for vectorised copies).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Sequence

import torch

ALIGN_BYTES = 64


def align_up(nbytes: int, alignment: int = ALIGN_BYTES) -> int:
    """``nbytes`` rounded up to a multiple of ``alignment``."""
    return -(-nbytes // alignment) * alignment


@dataclasses.dataclass(frozen=True)
class Bucket:
    indices: tuple[int, ...]        # positions in the exporter's order
    offsets: tuple[int, ...]        # byte offset of each tensor in the packed buffer
    packed_bytes: int               # size of the packed buffer (aligned layout)
    payload_bytes: int              # sum of the tensors' own sizes
    oversized: bool = False         # one tensor larger than the bound, sent alone


def plan_buckets(sizes: Sequence[int], bucket_bytes: int, alignment: int = ALIGN_BYTES) -> list[Bucket]:
    """Group tensors of ``sizes`` bytes (in order) into buckets of at most ``bucket_bytes``
    packed bytes. Greedy: a tensor that would overflow the current bucket starts a new one."""
    if bucket_bytes < alignment:
        raise ValueError(f"bucket_bytes={bucket_bytes} must be at least the alignment ({alignment})")
    buckets: list[Bucket] = []
    current: list[int] = []
    offsets: list[int] = []
    used = payload = 0

    def close(oversized: bool = False) -> None:
        nonlocal current, offsets, used, payload
        if current:
            buckets.append(Bucket(tuple(current), tuple(offsets), used, payload, oversized))
        current, offsets, used, payload = [], [], 0, 0

    for index, size in enumerate(sizes):
        if size < 0:
            raise ValueError(f"tensor {index} has a negative size {size}")
        start = align_up(used, alignment)
        if current and start + size > bucket_bytes:
            close()
            start = 0
        if not current and size > bucket_bytes:
            current, offsets, used, payload = [index], [0], size, size
            close(oversized=True)
            continue
        current.append(index)
        offsets.append(start)
        used = start + size
        payload += size
    close()
    return buckets


def iter_buckets(named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int,
                 alignment: int = ALIGN_BYTES) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Stream ``(name, tensor)`` pairs into buckets by the rule of ``plan_buckets``, holding at
    most one bucket of tensors at a time (the exporter may gather each tensor on the fly)."""
    if bucket_bytes < alignment:
        raise ValueError(f"bucket_bytes={bucket_bytes} must be at least the alignment ({alignment})")
    current: list[tuple[str, torch.Tensor]] = []
    used = 0
    for name, tensor in named_tensors:
        size = tensor.numel() * tensor.element_size()
        start = align_up(used, alignment)
        if current and start + size > bucket_bytes:
            yield current
            current, start = [], 0
        current.append((name, tensor))
        used = start + size
        if size > bucket_bytes:  # alone in its bucket (see the module docstring)
            yield current
            current, used = [], 0
    if current:
        yield current
