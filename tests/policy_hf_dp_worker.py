"""torchrun worker for test_policy_hf_distributed.py: one hf train_step per loss aggregation on
this rank's rows of the shared batch (rank 0: rows 0-2, rank 1: row 3, uneven on purpose, so an
average over ranks instead of global normalisation would give a different step)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

from medssr_nemo import distributed
from medssr_nemo.config.schema import GRPOConfig, PolicyConfig
from medssr_nemo.grpo.losses import make_grpo_loss
from medssr_nemo.models import make_tiny_model
from medssr_nemo.policy.hf import HFPolicyBackend
from policy_hf_batch import make_batch

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
RANK_ROWS = {0: slice(0, 3), 1: slice(3, 4)}


def policy_config() -> PolicyConfig:
    return PolicyConfig(lr=1e-3, device="cpu", micro_batch_size=2, grad_clip=0.5, adam_eps=1e-3)


def loss_config(aggregation: str) -> GRPOConfig:
    return GRPOConfig(kl_coef=0.05, entropy_coef=0.01, loss_aggregation=aggregation)


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    distributed.init_distributed()
    rank = distributed.rank()
    assert distributed.world_size() == 2, "launch with --nproc_per_node 2"
    model, tokenizer = make_tiny_model("llama", seed=0)
    if rank == 1:  # a rank that starts from different weights is overwritten by rank 0's
        with torch.no_grad():
            model.model.norm.weight.add_(1.0)
    for aggregation in AGGREGATIONS:
        backend = HFPolicyBackend(policy_config(), model=copy.deepcopy(model), tokenizer=tokenizer)
        batch = make_batch(backend)  # the full batch, identical on both ranks
        local = {k: v[RANK_ROWS[rank]] for k, v in batch.items()}
        metrics = backend.train_step(local, make_grpo_loss(loss_config(aggregation)))
        torch.save(backend.model.state_dict(), out_dir / f"{aggregation}.rank{rank}.pt")
        (out_dir / f"{aggregation}.rank{rank}.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
