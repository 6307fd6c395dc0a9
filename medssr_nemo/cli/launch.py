"""``medssr launch [--dry-run] [--plan] [--config NAME] [overrides]``: the srun/torchrun command a
config implies (one process per GPU; layout from model.tensor_parallel_size,
model.pipeline_parallel_size, launch.nodes and launch.gpus_per_node). ``--dry-run`` prints it;
otherwise it runs it. ``--plan`` prints the per-GPU memory plan (medssr_nemo/launch/memory.py).
A layout whose memory plan does not fit the GPU is refused before anything starts."""

from __future__ import annotations

import os
import sys

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded
from medssr_nemo.launch.command import build_plan


def main(argv: list[str]) -> int:
    parser = config_parser("medssr launch", "print or run the srun/torchrun command a config implies")
    parser.add_argument("--dry-run", action="store_true", help="print the command and the layout, run nothing")
    parser.add_argument("--plan", action="store_true", help="print the per-GPU memory plan, run nothing")
    args, cfg = parse_config(parser, argv)

    def job() -> int:
        from medssr_nemo.launch.memory import describe, plan as memory_plan, preflight

        if args.plan:
            print(describe(memory_plan(cfg)))
            return 0
        preflight(cfg)
        plan = build_plan(cfg, args.config, args.overrides)
        layout = plan.layout
        summary = (f"# {layout.world_size} processes = {layout.nodes} node(s) x {layout.gpus_per_node} GPUs; "
                   f"TP {layout.tensor_parallel} x PP {layout.pipeline_parallel} x DP {layout.data_parallel}")
        if args.dry_run:
            print(summary)
            print(plan.shell())
            return 0
        print(summary, file=sys.stderr)
        os.execvpe(plan.argv[0], plan.argv, {**os.environ, **plan.env})
        return 127  # not reached

    return run_guarded(job, "medssr launch")
