"""torch.distributed in one place: SPMD under torchrun / Slurm, a no-op in a single process.

Every helper works without an initialised process group (world size 1), so code calls them
unconditionally instead of branching on whether it was launched with torchrun.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Any, Callable, Iterator, MutableMapping

import torch
import torch.distributed as dist


def launched_distributed() -> bool:
    """True when started by torchrun (or an equivalent launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Initialise the default process group from torchrun's environment if there is more than
    one process and nobody did it yet. Backend: nccl when CUDA is available, gloo otherwise.
    On CUDA each process is bound to ``cuda:LOCAL_RANK``. Returns whether a group is active."""
    if dist.is_available() and dist.is_initialized():
        return True
    if not launched_distributed():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"), timeout=timedelta(seconds=timeout_s))
    return True


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_initialized() and world_size() > 1:
        dist.barrier()


def _collective_in_place(tensor: torch.Tensor, collective: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    """Run ``collective`` on ``tensor`` in place; identity in a single process. nccl only moves
    CUDA memory, so a small CPU tensor (metrics, counts) goes through a device copy."""
    if not (is_initialized() and world_size() > 1):
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_device = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        collective(on_device)
        tensor.copy_(on_device)
    else:
        collective(tensor)
    return tensor


def _all_reduce(tensor: torch.Tensor, op: "dist.ReduceOp.RedOpType") -> torch.Tensor:
    return _collective_in_place(tensor, lambda t: dist.all_reduce(t, op=op))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (and return it); identity in a single process."""
    return _all_reduce(tensor, dist.ReduceOp.SUM)


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise max over all ranks in place (and return it); identity in a single process."""
    return _all_reduce(tensor, dist.ReduceOp.MAX)


def mean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Average the numeric values of a metrics dict over ranks (other values are kept as they
    are). Every rank must call it with the same keys."""
    if world_size() == 1:
        return dict(metrics)
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    all_reduce_sum(values)
    averaged = dict(metrics)
    averaged.update({k: v / world_size() for k, v in zip(keys, values.tolist())})
    return averaged


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s copy; identity in a single process."""
    return _collective_in_place(tensor, lambda t: dist.broadcast(t, src=src))


# What an MPI library reads to join the Slurm job it was started in. A process that spawns its own
# workers (TensorRT-LLM's Ray/MPI executors) must not hand these on: a worker's MPI_Init would try
# to join the training job's PMI/PMIx world instead of starting its own.
LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "SLURM_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS")


@contextlib.contextmanager
def launcher_env_cleared(env: MutableMapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Remove the Slurm/PMI/MPI launcher variables from ``env`` (``os.environ``) for the block,
    then put them back; yields what was removed."""
    env = os.environ if env is None else env
    removed = {k: v for k, v in env.items() if k.startswith(LAUNCHER_PREFIXES)}
    for key in removed:
        del env[key]
    try:
        yield removed
    finally:
        env.update(removed)
