"""Every rank generates (rollout/rank_split.py): pseudo-labelling and evaluation with their
prompts split over two gloo ranks write the same tokens and files as one process, both inside the
pipeline and as the standalone ``medssr label`` / ``medssr eval`` commands under torchrun."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medssr_nemo.data.eval_files import paper_eval_path, read_paper_eval_file
from medssr_nemo.models import save_tiny_model
from medssr_nemo.records import write_records

JOB = Path(__file__).parent / "rank_split_jobs" / "run.py"
# files whose every byte must agree (cards carry timings and paths)
COMPARED = ["label/pseudo_labels.jsonl", "label/pseudo_labels.votes.jsonl", "label/pseudo_labels.samples.jsonl",
            "eval/base/medqa/generations.jsonl", "eval/base/medqa/metrics.json"]


def _run(nproc: int, model: Path, questions: Path, out: Path, *mode: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           str(JOB), str(model), str(questions), str(out), *mode],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


@pytest.fixture(scope="module", params=["pipeline", "cli"])
def runs(request, tmp_path_factory):
    """(one process, two ranks) output directories; ``cli``: the standalone commands."""
    cli = request.param == "cli"
    root = tmp_path_factory.mktemp(f"rank_split_{request.param}")
    model = save_tiny_model(root / "model", "llama", seed=0)
    questions = root / "questions.jsonl"
    write_records(read_paper_eval_file(paper_eval_path("medmcqa"))[:4], questions)
    one, two = root / "one", root / "two"
    _run(2, model, questions, two, *(["cli"] if cli else []))
    # the reference: one process, this one (no process group: the engine is not split)
    spec = importlib.util.spec_from_file_location("rank_split_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    job.run_job(str(model), str(questions), one, cli=cli)
    return one, two


@pytest.mark.distributed
@pytest.mark.parametrize("name", COMPARED)
def test_two_ranks_write_the_files_of_one_process(runs, name):
    one, two = runs
    assert (one / name).read_bytes() == (two / name).read_bytes()
    assert (one / name).stat().st_size > 0


@pytest.mark.distributed
def test_every_rank_sampled_a_share_and_left_no_scratch(runs):
    one, two = runs
    alone = json.loads((one / "sampled.rank0.json").read_text())["prompts"]
    shares = [json.loads((two / f"sampled.rank{r}.json").read_text())["prompts"] for r in (0, 1)]
    assert alone == 0  # one process: the engine is not split at all
    assert shares[0] >= shares[1] > 0  # round-robin: rank 0 takes the odd prompt of a call
    assert not [p for p in (two / "label").parent.rglob(".*rank*")]
