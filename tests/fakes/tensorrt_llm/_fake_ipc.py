"""Test-only stand-in for torch's CUDA IPC handles: a ``(function, args)`` pair laid out like
``torch.multiprocessing.reductions.reduce_tensor``'s for a CUDA tensor (15 arguments, the storage
device at index 6, which TensorRT-LLM's ``update_weights`` overwrites with the worker's device id),
rebuilding a copy from bytes carried where the IPC handle would be."""

from __future__ import annotations

from typing import Any

import torch

REBUILT_ON: list[int] = []   # the storage device each rebuild was given (tests read it)


def rebuild_cuda_tensor(tensor_cls: Any, tensor_size: tuple, tensor_stride: tuple, tensor_offset: int,
                        storage_cls: Any, dtype: str, storage_device: int, storage_handle: bytes,
                        storage_size_bytes: int, storage_offset_bytes: int, requires_grad: bool,
                        ref_counter_handle: Any, ref_counter_offset: int, event_handle: Any,
                        event_sync_required: bool) -> torch.Tensor:
    if not isinstance(storage_device, int):
        raise TypeError(f"storage_device must be the worker's device id (int), got {storage_device!r}")
    REBUILT_ON.append(storage_device)
    flat = torch.frombuffer(bytearray(storage_handle), dtype=torch.uint8)
    return flat.view(getattr(torch, dtype.replace("torch.", ""))).reshape(tensor_size).clone()


def byte_handle(tensor: torch.Tensor) -> tuple[Any, tuple]:
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return rebuild_cuda_tensor, (None, tuple(tensor.shape), tuple(tensor.stride()), 0, None, str(tensor.dtype),
                                 None, raw, len(raw), 0, False, None, 0, None, False)
