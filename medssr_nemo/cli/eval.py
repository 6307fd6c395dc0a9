"""``medssr eval [--config NAME|PATH] [--list] [key=value ...]``: evaluate checkpoints on the
benchmark suite with the paper's protocol (config section ``eval``), or list the benchmarks.

Examples::

    medssr eval eval.limit=20 eval.num_samples=1          # quick look at the embedded policy
    medssr eval eval.greedy=true eval.benchmarks=[medqa,rarebench]
    medssr eval 'eval.checkpoints=[embedded:smollm2-135m-instruct,runs/x/stage1/hf,runs/x/stage2/hf]' \\
        'eval.checkpoint_labels=[base,stage1,stage2]'
    medssr eval --list
    medssr eval compare runs/x:base runs/x:stage2        # paired test, same questions (see eval/compare.py)
    torchrun --nproc_per_node 8 -m medssr_nemo.cli.main eval ...   # every GPU samples a share

Under torchrun every rank generates its share of each batch and the main rank writes the files
and prints the table (rollout/rank_split.py).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def list_benchmarks(custom: dict, configured: list[str] | None = None) -> int:
    """Print every benchmark, one a line: name, item count (or why it cannot load), rare flag.
    Exit status 1 when a benchmark the config evaluates (``configured``) cannot load."""
    from medssr_nemo.eval.benchmarks import benchmark_names, get_benchmark

    unavailable = []
    for name in benchmark_names(custom):
        try:
            benchmark = get_benchmark(name, custom)
            count = str(len(benchmark.load()))
            flag = "rare" if benchmark.rare else ""
        except (FileNotFoundError, ValueError, LookupError) as err:
            count, flag = "unavailable", f"({str(err).splitlines()[0][:160]})"
            unavailable.append(name)
        print(f"{name}\t{count}\t{flag}".rstrip())
    missing = [n for n in (configured or []) if n in unavailable]
    if missing:
        print(f"medssr eval: configured benchmark(s) unavailable: {', '.join(missing)} "
              "(eval.benchmarks / eval.custom_benchmarks); see the reasons above", file=sys.stderr)
        return 1
    return 0


def _log_to_trackers(cfg: Any, summary: dict) -> None:
    """The summary (and chart) to the W&B / MLflow run of this eval directory, if configured."""
    from pathlib import Path

    from medssr_nemo.tracking.results import log_results

    out = Path(cfg.eval.output_dir or Path(cfg.output_dir) / "eval")
    log_results(cfg, out, evaluation=summary,
                figures={"accuracy": out / "summary.png"} if (out / "summary.png").exists() else {},
                files=[out / "summary.md", out / "summary.json"])


def main(argv: list[str]) -> int:
    if argv[:1] == ["compare"]:
        from medssr_nemo.cli.eval_compare import main as compare_main

        return compare_main(argv[1:])
    parser = config_parser("medssr eval", "evaluate checkpoints on the MedSSR benchmark suite")
    parser.add_argument("--list", action="store_true", help="print every registered benchmark with its item count")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args, cfg = parse_config(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.list:
        logging.getLogger("medssr_nemo.eval").setLevel(logging.WARNING)
        custom = dict(cfg.eval.custom_benchmarks)
        configured = list(cfg.eval.benchmarks) + [n for n in custom if n not in cfg.eval.benchmarks]
        return run_guarded(lambda: list_benchmarks(custom, configured), "medssr eval")

    def job() -> int:
        from medssr_nemo import distributed
        from medssr_nemo.eval.report import markdown_table
        from medssr_nemo.eval.runner import run_eval
        from medssr_nemo.rollout.rank_split import command_on_every_rank

        with command_on_every_rank(Path(cfg.eval.output_dir or Path(cfg.output_dir) / "eval")) as where:
            here = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, output_dir=str(where)))
            summary = run_eval(here, progress=not args.no_progress and distributed.is_main())
        if not distributed.is_main():
            return 0
        print(markdown_table(summary), end="")
        _log_to_trackers(cfg, summary)
        return 0

    return run_guarded(job, "medssr eval")
