"""torchrun worker for tests/test_rank_split.py: pseudo-labelling and evaluation with every rank
generating its share (the pipeline's way: rollout/rank_split.py), into OUT (the main rank's
directory; the others work on private copies). Also writes, per rank, how many prompts that rank
sampled itself. With ``cli`` last, the standalone commands instead: ``medssr label`` and
``medssr eval`` as a user starts them under torchrun, with no rank handling of the job's own.

    python -m torch.distributed.run --nproc_per_node 2 tests/rank_split_jobs/run.py MODEL_DIR QUESTIONS OUT [cli]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import torch

    torch.set_num_threads(1)
    run_job(sys.argv[1], sys.argv[2], Path(sys.argv[3]), cli=sys.argv[4:] == ["cli"])


def run_job(model_dir: str, questions: str, out: Path, cli: bool = False) -> None:
    """Label and evaluate into ``out``; also called in-process (one rank) by the test."""
    from medssr_nemo import distributed
    from medssr_nemo.rollout import rank_split

    if not cli:   # the commands start the process group themselves
        distributed.init_distributed()
    sampled = {"prompts": 0}
    inner = rank_split.RankSplitEngine.generate

    def counting(self, prompts, sampling, seeds):
        sampled["prompts"] += len(range(distributed.rank(), len(prompts), distributed.world_size()))
        return inner(self, prompts, sampling, seeds)

    rank_split.RankSplitEngine.generate = counting
    try:
        if cli:
            _commands(model_dir, questions, out)
        else:
            _label_and_eval(model_dir, questions, out, distributed.rank())
    finally:
        rank_split.RankSplitEngine.generate = inner
    (out / f"sampled.rank{distributed.rank()}.json").write_text(json.dumps(sampled))
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


def _commands(model_dir: str, questions: str, out: Path) -> None:
    """``medssr label`` then ``medssr eval`` through the command-line entry point."""
    from medssr_nemo.cli.main import main as medssr

    common = [f"model.path={model_dir}", "model.prompt_style=base", "rollout.batch_size=6",
              "rollout.max_new_tokens=6"]
    assert medssr(["label", *common, f"output_dir={out / 'label'}", f"label.input={questions}",
                   "label.num_samples=3", "label.tie_rule=lowest_letter"]) == 0
    assert medssr(["eval", "--no-progress", *common, f"eval.output_dir={out / 'eval'}",
                   f"eval.checkpoints=[{model_dir}]", "eval.checkpoint_labels=[base]", "eval.benchmarks=[medqa]",
                   "eval.limit=2", "eval.num_samples=2", "eval.max_new_tokens=8", "eval.batch_size=5",
                   "eval.chart=false"]) == 0


if __name__ == "__main__":
    main()
