"""torchrun worker for tests/test_rank_split.py: pseudo-labelling and evaluation with every rank
generating its share (the pipeline's way: rollout/rank_split.py), into OUT (the main rank's
directory; the others work on private copies). Also writes, per rank, how many prompts that rank
sampled itself.

    python -m torch.distributed.run --nproc_per_node 2 tests/rank_split_jobs/run.py MODEL_DIR QUESTIONS OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import torch

    torch.set_num_threads(1)
    run_job(sys.argv[1], sys.argv[2], Path(sys.argv[3]))


def run_job(model_dir: str, questions: str, out: Path) -> None:
    """Label and evaluate into ``out``; also called in-process (one rank) by the test."""
    from medssr_nemo import distributed
    from medssr_nemo.rollout import rank_split

    distributed.init_distributed()
    rank = distributed.rank()
    sampled = {"prompts": 0}
    inner = rank_split.RankSplitEngine.generate

    def counting(self, prompts, sampling, seeds):
        sampled["prompts"] += len(range(rank, len(prompts), distributed.world_size()))
        return inner(self, prompts, sampling, seeds)

    rank_split.RankSplitEngine.generate = counting
    try:
        _label_and_eval(model_dir, questions, out, rank)
    finally:
        rank_split.RankSplitEngine.generate = inner
    (out / f"sampled.rank{rank}.json").write_text(json.dumps(sampled))
    distributed.barrier()


def _label_and_eval(model_dir: str, questions: str, out: Path, rank: int) -> None:
    from medssr_nemo.labelling.from_config import label
    from medssr_nemo.config import load_config
    from medssr_nemo.eval.runner import run_eval
    from medssr_nemo.rollout import rank_split

    common = [f"model.path={model_dir}", "model.prompt_style=base", "rollout.batch_size=6",
              "rollout.max_new_tokens=6"]
    label_dir, eval_dir = out / "label", out / "eval"
    for directory in (label_dir, eval_dir):
        if rank == 0:
            directory.mkdir(parents=True, exist_ok=True)
    with rank_split.every_rank_generates():
        with rank_split.rank_scratch(label_dir, rank == 0) as where:
            label(load_config("base", [*common, f"output_dir={where}", f"label.input={questions}",
                                       "label.num_samples=3", "label.tie_rule=lowest_letter"]), progress=False)
        with rank_split.rank_scratch(eval_dir, rank == 0) as where:
            run_eval(load_config("base", [*common, f"eval.output_dir={where}", f"eval.checkpoints=[{model_dir}]",
                                          "eval.checkpoint_labels=[base]", "eval.benchmarks=[medqa]",
                                          "eval.limit=2", "eval.num_samples=2", "eval.max_new_tokens=8",
                                          "eval.batch_size=5", "eval.chart=false"]), progress=False)


if __name__ == "__main__":
    main()
