"""The parallel layout (TP x PP x DP) and moving token batches between the ranks of one model.

The trainer is SPMD like the ``hf`` backend: every rank passes *its own* share of the step's
rollouts. With tensor or pipeline parallelism the ranks of one model replica (its TP x PP
"model-parallel group") must all run the same rows, so the backend first gathers the shares of
the group into one batch, trains or scores it, and hands every rank back its own rows. Data
parallelism is then across model replicas, exactly as in the ``hf`` backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.distributed as dist

from medssr_nemo import distributed
from medssr_nemo.policy.megatron import cpu_compat


@dataclass(frozen=True)
class Layout:
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int

    def __str__(self) -> str:
        return f"TP{self.tensor_parallel} x PP{self.pipeline_parallel} x DP{self.data_parallel}"


def init_process_group() -> None:
    """torch.distributed from torchrun's environment, or a one-rank group in a plain process
    (megatron-core needs a process group even on one device)."""
    if distributed.init_distributed():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def ensure_model_parallel(tensor_parallel: int, pipeline_parallel: int, seed: int) -> Layout:
    """Initialise megatron-core's parallel state for this layout (re-initialise if another layout
    is active: megatron keeps one layout per process, so backends built earlier become invalid)."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    init_process_group()
    cpu_compat.apply()
    world = dist.get_world_size()
    if world % (tensor_parallel * pipeline_parallel):
        raise ValueError(f"model.tensor_parallel_size={tensor_parallel} x model.pipeline_parallel_size="
                         f"{pipeline_parallel} does not divide the world size {world}")
    if parallel_state.model_parallel_is_initialized():
        same = (parallel_state.get_tensor_model_parallel_world_size() == tensor_parallel
                and parallel_state.get_pipeline_model_parallel_world_size() == pipeline_parallel)
        if not same:
            parallel_state.destroy_model_parallel()
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=tensor_parallel,
                                                 pipeline_model_parallel_size=pipeline_parallel)
    # The default tracker keeps CUDA RNG states; without CUDA use the inference tracker, which
    # keeps none (dropout is off, so the trackers only seed weight initialisation).
    model_parallel_cuda_manual_seed(seed, inference_rng_tracker=cpu_compat.needed())
    return Layout(tensor_parallel, pipeline_parallel, world // (tensor_parallel * pipeline_parallel))


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_model_parallel_batch(batch: Mapping[str, Any], group) -> tuple[dict[str, Any], list[int]]:
    """Concatenate the batches of every rank of ``group`` (rank order), right-padding the time axis
    to the longest. Returns the joint batch and each member's row count. Tensors whose first
    dimension is the batch are gathered; the others must be equal on all members."""
    if group is None or dist.get_world_size(group) == 1:
        return dict(batch), [int(batch["input_ids"].shape[0])]
    local = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    shares: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(shares, local, group=group)
    keys = list(shares[0])
    for rank, share in enumerate(shares):
        if list(share) != keys:
            raise ValueError(f"ranks of one model replica passed batches with different keys: "
                             f"{keys} vs {list(share)} (member {rank})")
    counts = [int(share["input_ids"].shape[0]) for share in shares]
    width = max(int(share["input_ids"].shape[1]) for share in shares)
    joint: dict[str, Any] = {}
    for key in keys:
        values = [share[key] for share in shares]
        if not isinstance(values[0], torch.Tensor) or values[0].dim() == 0:
            joint[key] = values[0]
            continue
        if values[0].dim() >= 2:  # [B, T, ...]: right-pad T with zeros (padding is masked anyway)
            values = [torch.nn.functional.pad(v, (0, 0) * (v.dim() - 2) + (0, width - v.shape[1])) for v in values]
        joint[key] = torch.cat(values)
    return joint, counts


def own_rows(tensor: torch.Tensor, counts: list[int], member: int, width: int) -> torch.Tensor:
    """This member's rows of a joint-batch result, cut back to its own width."""
    start = sum(counts[:member])
    return tensor[start:start + counts[member], :width]


def broadcast_from_last_stage(tensor: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor computed on the last pipeline stage, on every stage of this pipeline."""
    from megatron.core import parallel_state

    if parallel_state.get_pipeline_model_parallel_world_size() == 1:
        assert tensor is not None
        return tensor
    group = parallel_state.get_pipeline_model_parallel_group()
    src = parallel_state.get_pipeline_model_parallel_last_rank()
    if tensor is None:
        tensor = torch.empty(shape, dtype=dtype, device=device())
    tensor = tensor.contiguous()
    dist.broadcast(tensor, src=src, group=group)
    return tensor


def broadcast_object_from_last_stage(obj: Any) -> Any:
    """A picklable object computed on the last pipeline stage, on every stage of this pipeline."""
    from megatron.core import parallel_state

    if parallel_state.get_pipeline_model_parallel_world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=parallel_state.get_pipeline_model_parallel_last_rank(),
                               group=parallel_state.get_pipeline_model_parallel_group())
    return holder[0]
