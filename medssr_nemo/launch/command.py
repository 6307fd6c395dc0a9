"""The exact command a config implies: ``srun`` with one task per GPU (Slurm, pyxis/enroot
container), or ``torchrun`` on one node. ``medssr launch --dry-run`` prints it; the sbatch
scripts in examples/slurm run the same command (a test checks they agree)."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Sequence

from medssr_nemo.config.schema import MedSSRConfig
from medssr_nemo.launch.layout import ParallelLayout, layout_of

# Each srun task maps SLURM_* to RANK/LOCAL_RANK/WORLD_SIZE/MASTER_ADDR, then execs medssr.
SLURM_ENTRY = ["python", "-m", "medssr_nemo.launch.slurm_env", "medssr"]

# NCCL/InfiniBand defaults every rank gets (launch.env overrides them; examples/slurm/common.sh
# exports the same): InfiniBand on, NCCL warnings only, NCCL errors abort the job instead of
# hanging it, and one CUDA hardware queue (Megatron's tensor-parallel overlap expects it).
# Fabric-specific ones (NCCL_IB_HCA, NCCL_SOCKET_IFNAME) pass through when set on the submit side.
NCCL_ENV = {"NCCL_DEBUG": "WARN", "NCCL_IB_DISABLE": "0", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
            "CUDA_DEVICE_MAX_CONNECTIONS": "1"}


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    env: dict[str, str]
    layout: ParallelLayout

    def shell(self) -> str:
        """One line a shell runs as is."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + shlex.join(self.argv)


def medssr_args(cfg: MedSSRConfig, config: str, overrides: Sequence[str]) -> list[str]:
    return [cfg.launch.command, "--config", config, *overrides]


def container_flags(cfg: MedSSRConfig) -> list[str]:
    """pyxis/enroot flags of ``srun``: the image, its mounts, the working directory inside it, and
    no host home directory (it would shadow the image's own files and leak host dotfiles)."""
    launch = cfg.launch
    if not launch.container_image:
        return []
    flags = [f"--container-image={launch.container_image}"]
    if launch.container_mounts:
        flags.append(f"--container-mounts={','.join(launch.container_mounts)}")
    if launch.container_workdir:
        flags.append(f"--container-workdir={launch.container_workdir}")
    if not launch.container_mount_home:
        flags.append("--no-container-mount-home")
    return flags


def build_plan(cfg: MedSSRConfig, config: str = "base", overrides: Sequence[str] = ()) -> LaunchPlan:
    launch = cfg.launch
    layout = layout_of(cfg)
    env = {"MASTER_PORT": str(launch.master_port), **NCCL_ENV, **{k: str(v) for k, v in launch.env.items()}}
    if launch.launcher == "torchrun":
        argv = ["torchrun", "--standalone", f"--nproc-per-node={launch.gpus_per_node}",
                "-m", "medssr_nemo.cli.main", *medssr_args(cfg, config, overrides)]
        return LaunchPlan(argv, env, layout)
    argv = ["srun", f"--nodes={launch.nodes}", f"--ntasks-per-node={launch.gpus_per_node}",
            f"--gpus-per-node={launch.gpus_per_node}", "--kill-on-bad-exit=1"]
    if launch.mpi:
        argv.append(f"--mpi={launch.mpi}")
    argv += container_flags(cfg)
    argv += [*SLURM_ENTRY, *medssr_args(cfg, config, overrides)]
    return LaunchPlan(argv, env, layout)
