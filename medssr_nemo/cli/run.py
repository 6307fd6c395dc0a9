"""``medssr run [--config NAME|PATH] [overrides]``: the whole MedSSR pipeline in ``output_dir``.

Steps: real data -> synthetic questions -> pseudo-labels -> stage 1 GRPO -> stage 2 GRPO ->
evaluation of base, stage 1 and stage 2 -> report. Running the same command again skips
finished steps and resumes an interrupted one; a changed setting re-runs the steps that depend
on it, and the output says which and why. ``pipeline.alpha_sweep=[0.1,0.3,0.5]`` runs one
pipeline per rare ratio and a comparison report. Before the first step, the data files the run
reads are fetched into the data root and verified (``--no-download``: only reported; docs/data.md).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def main(argv: list[str]) -> int:
    parser = config_parser("medssr run", "the whole MedSSR pipeline, resumable, with a report")
    parser.add_argument("--no-download", action="store_true",
                        help="do not fetch missing data files; report them and stop (docs/data.md)")
    args, cfg = parse_config(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)

    def job() -> int:
        from medssr_nemo import distributed
        from medssr_nemo.pipeline.runner import run_pipeline
        from medssr_nemo.pipeline.sweep import run_sweep

        from medssr_nemo.data.ensure import ensure_run_data
        from medssr_nemo.launch.memory import preflight_this_process

        preflight_this_process(cfg)  # refuse a layout that cannot fit the GPU before any work starts
        started = time.perf_counter()
        first = os.environ.get("RANK", "0") == "0"       # before torch.distributed starts: one rank talks
        ensure_run_data(cfg, fetch=not args.no_download, progress=first,
                        echo=(lambda line: print(line, file=sys.stderr)) if first else (lambda line: None))
        if cfg.pipeline.alpha_sweep:
            _, report = run_sweep(cfg)
        else:
            report = run_pipeline(cfg).report
        if distributed.is_main():
            minutes = (time.perf_counter() - started) / 60
            print(f"medssr run: finished in {minutes:.1f} min; report: {report}")
        return 0

    return run_guarded(job, parser.prog)
