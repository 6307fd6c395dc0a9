"""``launch``: how a run is spread over a cluster (what ``medssr launch`` turns into srun/torchrun).

The world is ``nodes * gpus_per_node`` processes, one per GPU; it must be a multiple of
``model.tensor_parallel_size * model.pipeline_parallel_size`` (the rest is data parallel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from medssr_nemo.config.schema.common import check_choice, check_range


@dataclass
class LaunchConfig:
    launcher: str = "srun"                 # srun: one task per GPU (Slurm) | torchrun: one node, local
    nodes: int = 1
    gpus_per_node: int = 8
    command: str = "run"                   # the medssr sub-command every rank runs (run: the pipeline; train: GRPO alone)
    container_image: str = ""              # pyxis/enroot image (srun --container-image); "" = none
    container_mounts: List[str] = field(default_factory=list)   # "host:container" pairs
    container_workdir: str = "/workspace/run"   # srun --container-workdir (with an image)
    container_mount_home: bool = False     # False: srun --no-container-mount-home (no host $HOME in the image)
    mpi: str = "pmix"                      # srun --mpi= (PMIx for the image's MPI/NCCL bootstrap); "" = cluster default
    master_port: int = 29500               # torch.distributed rendezvous port on the first node
    partition: str = ""                    # Slurm partition / account / time for the sbatch header
    account: str = ""
    time_limit: str = "04:00:00"
    env: Dict[str, str] = field(default_factory=dict)   # extra environment for every rank
    # preflight memory plan (medssr_nemo/launch/memory.py, docs/cluster.md): run/train/launch refuse
    # a layout whose peak per-GPU memory exceeds gpu_memory_gib - memory_reserve_gib
    gpu_memory_gib: float = 80.0           # H100/A100 80GB
    memory_reserve_gib: float = 6.0        # CUDA context, NCCL buffers, allocator fragmentation
    preflight: bool = True

    def __post_init__(self) -> None:
        check_choice("launch.launcher", self.launcher, ["srun", "torchrun"])
        check_range("launch.nodes", self.nodes, 1)
        check_range("launch.gpus_per_node", self.gpus_per_node, 1)
        check_range("launch.master_port", self.master_port, 1, 65535)
        check_range("launch.gpu_memory_gib", self.gpu_memory_gib, 0.0, low_open=True)
        check_range("launch.memory_reserve_gib", self.memory_reserve_gib, 0.0)
        if self.launcher == "torchrun" and self.nodes != 1:
            raise ValueError(f"launch.launcher=torchrun runs on one node, got launch.nodes={self.nodes}; "
                             "use launch.launcher=srun for several nodes")
        check_choice("launch.mpi", self.mpi, ["", "pmix", "pmi2", "none"])
        for mount in self.container_mounts:
            if ":" not in mount:
                raise ValueError(f"launch.container_mounts entry {mount!r} must be 'host_path:container_path'")
