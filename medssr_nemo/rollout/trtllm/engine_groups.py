"""Data-parallel engines: which training ranks share which engine, and the group collective they
use.

Colocated (``placement=colocated``): the job's ``world`` GPUs are cut into consecutive blocks of
``engine_gpus = tensor_parallel_size x pipeline_parallel_size`` ranks (inside one node, as the
launch layout keeps TP); each block runs ONE engine on its own GPUs, its first rank (the leader)
owns the ``LLM``, and the block's prompts go to that engine only. With TP 2 on an 8-GPU node that
is four engines, each generating a quarter of the prompts.

Separate (``placement=separate``): ``engine_replicas`` engines on GPUs of their own; the training
ranks are cut into that many equal blocks, each block's first rank driving one engine.

The refit source address: for the leader on global rank 0 the job's rendezvous address
(``MASTER_ADDR``); for the other leaders their own address on the network that rendezvous uses
(the source address of a route to ``MASTER_ADDR``), not a bare host name, which many clusters
resolve to a loopback address. Every leader publishes its address to every rank with one
``all_gather_object`` over the job's process group (``publish_refit_addresses``), so all ranks hold
the same table and a loopback entry in a multi-host job is reported before a refit waits on it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
from typing import Any, Mapping

log = logging.getLogger(__name__)


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
    """Where an engine group's refit store listens (called on that group's leader): the configured
    address, else the job's rendezvous address for the group led by global rank 0, else this
    host's address on the rendezvous network (``local_address``)."""
    if configured:
        return configured
    env = os.environ if env is None else env
    if group.leader == 0 and env.get("MASTER_ADDR"):
        return env["MASTER_ADDR"]
    return local_address(env)


def local_address(env: Mapping[str, str]) -> str:
    """This host's address as the job's other hosts reach it: the source address the kernel picks
    for a route to ``MASTER_ADDR`` (a UDP ``connect`` sends nothing), else what the fully
    qualified host name resolves to."""
    master = env.get("MASTER_ADDR")
    if master:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((master, int(env.get("MASTER_PORT") or 29500)))
                return str(probe.getsockname()[0])
        except (OSError, ValueError):
            pass
    name = socket.getfqdn()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def publish_refit_addresses(groups: list[EngineGroup], rank: int, configured: str | None,
                            env: Mapping[str, str] | None = None) -> list[str]:
    """Each engine group's refit address, one per group, the same list on every rank: each leader
    computes its own (``refit_address``) and an ``all_gather_object`` over the job's default process
    group publishes it. Collective: every rank calls it at the same point. Without a process group
    (one process) the addresses are computed here. Logs a warning when a group's address is a
    loopback one while the job's ranks are on several hosts: engines elsewhere could not reach it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [refit_address(g, configured, env) for g in groups]
    group = group_of(rank, groups)
    mine = refit_address(group, configured, env) if rank == group.leader else None
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (socket.gethostname(), mine))
    addresses = [gathered[g.leader][1] for g in groups]
    hosts = {host for host, _ in gathered}
    looped = [(g.index, a) for g, a in zip(groups, addresses) if _is_loopback(a)]
    if len(hosts) > 1 and looped and rank == 0:
        log.warning("refit addresses %s are loopback addresses in a job on %d hosts; engines on other hosts "
                    "cannot reach them (set MASTER_ADDR to a routable address, or rollout.options."
                    "refit_master_addr)", looped, len(hosts))
    return addresses


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
