"""Run a command as one rank of a torch.distributed job from Slurm's per-task variables.

``python -m medssr_nemo.launch.slurm_env CMD ARGS...`` (what each ``srun`` task runs) sets
``RANK=SLURM_PROCID``, ``LOCAL_RANK=SLURM_LOCALID``, ``WORLD_SIZE=SLURM_NTASKS``,
``LOCAL_WORLD_SIZE`` (tasks on this node), ``MASTER_ADDR`` (first host of the job's node list,
unless already set) and ``MASTER_PORT`` (29500 unless set), then replaces itself with CMD, so
signals and the exit code are CMD's own. torch.distributed's ``env://`` rendezvous reads these.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Mapping

DEFAULT_MASTER_PORT = "29500"


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[03-05,09],cpu1`` -> ``gpu03``."""
    nodelist = nodelist.strip()
    match = re.match(r"([^,\[]*)(?:\[([^\]]+)\])?([^,]*)", nodelist)
    if not nodelist or match is None:
        raise ValueError(f"cannot read a host from the Slurm node list {nodelist!r}")
    prefix, ranges, suffix = match.groups()
    if not ranges:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first + suffix


def _tasks_on_node(env: Mapping[str, str]) -> str:
    # SLURM_TASKS_PER_NODE looks like "8(x2)" or "8,4"; take this node's entry
    per_node = env.get("SLURM_NTASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE", "")
    node = int(env.get("SLURM_NODEID", "0"))
    expanded: list[str] = []
    for part in per_node.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if m:
            expanded += [m.group(1)] * int(m.group(2) or 1)
    return expanded[node] if node < len(expanded) else (expanded[0] if expanded else "1")


def rank_env(env: Mapping[str, str]) -> dict[str, str]:
    """The torch.distributed variables for this Slurm task."""
    missing = [k for k in ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS") if k not in env]
    if missing:
        raise KeyError(f"not inside an srun task: {', '.join(missing)} unset (run this under srun)")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "")
    return {
        "RANK": env["SLURM_PROCID"],
        "LOCAL_RANK": env["SLURM_LOCALID"],
        "WORLD_SIZE": env["SLURM_NTASKS"],
        "LOCAL_WORLD_SIZE": _tasks_on_node(env),
        "GROUP_RANK": env.get("SLURM_NODEID", "0"),
        "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(nodelist),
        "MASTER_PORT": env.get("MASTER_PORT") or DEFAULT_MASTER_PORT,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m medssr_nemo.launch.slurm_env COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        os.environ.update(rank_env(os.environ))
    except (KeyError, ValueError) as err:
        print(f"slurm_env: {err}", file=sys.stderr)
        return 2
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
