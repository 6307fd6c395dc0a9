"""Per-sample seeds and the tokens they sample are the same in another process (another
PYTHONHASHSEED, another batch layout and question order): a resumed run, another rank, or a
rerun samples exactly what the first one did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from seed_probe import probe


def test_seeds_and_sampled_tokens_agree_across_two_processes():
    """Catches: a seed derived from Python's salted ``hash()``, from the position of a question in
    the batch, or from a global generator. Planted by hand: ``sample_seed`` in grpo/rollouts.py
    built from ``hash((run_seed, step, question_id, sample))`` fails here (the strings hash
    differently under another PYTHONHASHSEED)."""
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, str(Path(__file__).with_name("seed_probe.py")), "reversed"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    theirs = json.loads(child.stdout.strip().splitlines()[-1])
    ours = json.loads(json.dumps(probe("forward")))
    assert theirs == ours
    seeds = [s for q in ours["grpo"].values() for s in q["seeds"]]
    assert len(set(seeds)) == len(seeds)       # every (question, sample) has its own seed
    tokens = [tuple(t) for q in ours["grpo"].values() for t in q["tokens"]]
    assert len(set(tokens)) > 1                  # and they sample different tokens
