"""Data-parallel engines: which training ranks share which engine, and the group collective they
use.

Colocated (``placement=colocated``): the job's ``world`` GPUs are cut into consecutive blocks of
``engine_gpus = tensor_parallel_size x pipeline_parallel_size`` ranks (inside one node, as the
launch layout keeps TP); each block runs ONE engine on its own GPUs, its first rank (the leader)
owns the ``LLM``, and the block's prompts go to that engine only. With TP 2 on an 8-GPU node that
is four engines, each generating a quarter of the prompts.

Separate (``placement=separate``): ``engine_replicas`` engines on GPUs of their own; the training
ranks are cut into that many equal blocks, each block's first rank driving one engine.

The refit source address: the leader's own host, which for the leader on global rank 0 is the
job's rendezvous address (``MASTER_ADDR``); never a loopback default, so engines on other nodes
can reach it.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class EngineGroup:
    index: int                 # which engine
    ranks: tuple[int, ...]     # training ranks it serves, leader first

    @property
    def leader(self) -> int:
        return self.ranks[0]


def engine_groups(world_size: int, ranks_per_engine: int) -> list[EngineGroup]:
    if ranks_per_engine < 1 or world_size % ranks_per_engine:
        raise ValueError(f"{world_size} training ranks cannot be split into engines of {ranks_per_engine} "
                         "ranks each (colocated: rollout tensor_parallel_size x pipeline_parallel_size must "
                         "divide the GPUs; separate: rollout.options.engine_replicas must divide the ranks)")
    return [EngineGroup(i, tuple(range(i * ranks_per_engine, (i + 1) * ranks_per_engine)))
            for i in range(world_size // ranks_per_engine)]


def group_of(rank: int, groups: list[EngineGroup]) -> EngineGroup:
    return next(g for g in groups if rank in g.ranks)


def refit_address(group: EngineGroup, configured: str | None, env: Mapping[str, str] | None = None) -> str:
    """Where an engine group's refit store listens: the configured address, else the job's
    rendezvous address for the group led by global rank 0, else the leader's host name."""
    if configured:
        return configured
    env = os.environ if env is None else env
    if group.leader == 0 and env.get("MASTER_ADDR"):
        return env["MASTER_ADDR"]
    return socket.gethostname()


def engine_visible_devices(group: EngineGroup, rank: int, local_rank: int, visible: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES`` for the workers of a colocated engine: the GPUs of its block's
    ranks (one GPU per rank, consecutive on one node, rank ``r`` on local GPU ``local_rank``),
    written in the terms of the task's own ``CUDA_VISIBLE_DEVICES`` when Slurm set one."""
    first_local = local_rank - (rank - group.leader)
    locals_ = [first_local + i for i in range(len(group.ranks))]
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if max(locals_) >= len(ids):
            raise ValueError(f"engine group {group.index} needs local GPUs {locals_} but CUDA_VISIBLE_DEVICES="
                             f"{visible!r} shows {len(ids)}")
        return ",".join(ids[i] for i in locals_)
    return ",".join(str(i) for i in locals_)


class GroupCollective:
    """The refit/generation collective restricted to one engine group's ranks (gloo, objects).
    Every rank must construct it at the same point: it creates every group's process group."""

    def __init__(self, groups: list[EngineGroup], rank: int) -> None:
        import torch.distributed as dist

        self.group = group_of(rank, groups)
        self._pg: Any = None
        for g in groups:   # new_group is collective over the whole job: every rank, every group
            pg = dist.new_group(list(g.ranks), backend="gloo")
            if g is self.group:
                self._pg = pg

    def gather_to_leader(self, obj: Any) -> list[Any] | None:
        import torch.distributed as dist

        leader = dist.get_rank() == self.group.leader
        out: list[Any] | None = [None] * len(self.group.ranks) if leader else None
        dist.gather_object(obj, out, dst=self.group.leader, group=self._pg)
        return out

    def scatter_from_leader(self, objs: list[Any] | None) -> Any:
        import torch.distributed as dist

        received: list[Any] = [None]
        leader = dist.get_rank() == self.group.leader
        dist.scatter_object_list(received, objs if leader else None, src=self.group.leader, group=self._pg)
        return received[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self._pg)
