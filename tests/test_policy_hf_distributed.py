"""Data-parallel hf training under torchrun (2 processes, gloo, CPU) equals one process."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medssr_nemo.grpo.losses import make_grpo_loss
from medssr_nemo.policy.hf import HFPolicyBackend
from policy_hf_batch import make_batch
from policy_hf_dp_worker import AGGREGATIONS, loss_config, policy_config

WORKER = Path(__file__).with_name("policy_hf_dp_worker.py")


@pytest.mark.distributed
def test_two_ranks_on_half_batches_equal_one_rank_on_the_full_batch(tiny_llama, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for aggregation in AGGREGATIONS:
            model, tokenizer = tiny_llama
            single = HFPolicyBackend(policy_config(), model=copy.deepcopy(model), tokenizer=tokenizer)
            expected = single.train_step(make_batch(single), make_grpo_loss(loss_config(aggregation)))
            weights = single.model.state_dict()
            for rank in (0, 1):
                metrics = json.loads((tmp_path / f"{aggregation}.rank{rank}.json").read_text())
                for key in ("loss", "grad_norm", "kl", "entropy", "ratio_max", "clip_frac_low", "num_tokens"):
                    assert metrics[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (aggregation, key)
                got = torch.load(tmp_path / f"{aggregation}.rank{rank}.pt", weights_only=True)
                for name, tensor in weights.items():
                    torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6, msg=f"{aggregation} {name}")
    finally:
        torch.set_num_threads(threads)
