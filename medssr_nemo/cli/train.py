"""``medssr train [--config NAME|PATH] [overrides]``: GRPO on a file of question records.

Re-running the same command resumes from the last checkpoint in ``output_dir``.
"""

from __future__ import annotations

import logging

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def main(argv: list[str]) -> int:
    parser = config_parser("medssr train", "GRPO on question records (resumes from output_dir)")
    _, cfg = parse_config(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def job() -> int:
        from medssr_nemo.grpo.trainer import run_training

        from medssr_nemo.launch.memory import preflight_this_process

        preflight_this_process(cfg)  # refuse a layout that cannot fit the GPU before any work starts
        metrics = run_training(cfg)
        print(f"medssr train: done — reward {metrics.get('reward/mean', float('nan')):.3f}, "
              f"format rate {metrics.get('answer/format_rate', float('nan')):.2f}; "
              f"metrics in {cfg.output_dir}/metrics.jsonl, model in {cfg.output_dir}/hf_model")
        return 0

    return run_guarded(job, parser.prog)
