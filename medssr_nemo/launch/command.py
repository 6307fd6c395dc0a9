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


def build_plan(cfg: MedSSRConfig, config: str = "base", overrides: Sequence[str] = ()) -> LaunchPlan:
    launch = cfg.launch
    layout = layout_of(cfg)
    env = {"MASTER_PORT": str(launch.master_port), **{k: str(v) for k, v in launch.env.items()}}
    if launch.launcher == "torchrun":
        argv = ["torchrun", "--standalone", f"--nproc-per-node={launch.gpus_per_node}",
                "-m", "medssr_nemo.cli.main", *medssr_args(cfg, config, overrides)]
        return LaunchPlan(argv, env, layout)
    argv = ["srun", f"--nodes={launch.nodes}", f"--ntasks-per-node={launch.gpus_per_node}",
            f"--gpus-per-node={launch.gpus_per_node}", "--kill-on-bad-exit=1"]
    if launch.container_image:
        argv.append(f"--container-image={launch.container_image}")
    if launch.container_mounts:
        argv.append(f"--container-mounts={','.join(launch.container_mounts)}")
    argv += [*SLURM_ENTRY, *medssr_args(cfg, config, overrides)]
    return LaunchPlan(argv, env, layout)
