"""``train``: the GRPO run (data, length, checkpoints, logging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from medssr_nemo.config.schema.common import check_range
from medssr_nemo.config.schema.tracking import TrackingConfig, check_loggers


@dataclass
class TrainConfig:
    data: Optional[str] = None          # JSONL/Parquet of question records (needs labels)
    steps: int = 100                    # rollout steps (each runs grpo.ppo_epochs optimiser steps)
    save_every: int = 10                # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2
    log_every: int = 1
    tensorboard: bool = True            # false drops tensorboard from train.loggers
    # metrics.jsonl is always written (resume and the report read it); the others are trackers:
    # tensorboard, wandb (pip install medssr_nemo[wandb]), mlflow (medssr_nemo[mlflow])
    loggers: List[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    shuffle: bool = True
    save_hf: bool = True                # write a Hugging Face checkpoint at the end

    def __post_init__(self) -> None:
        check_range("train.steps", self.steps, 1)
        check_range("train.save_every", self.save_every, 1)
        check_range("train.keep_checkpoints", self.keep_checkpoints, 1)
        check_range("train.log_every", self.log_every, 1)
        check_loggers(list(self.loggers))
