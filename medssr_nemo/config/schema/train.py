"""``train``: the GRPO run (data, length, checkpoints, logging)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from medssr_nemo.config.schema.common import check_range


@dataclass
class TrainConfig:
    data: Optional[str] = None          # JSONL/Parquet of question records (needs labels)
    steps: int = 100                    # rollout steps (each runs grpo.ppo_epochs optimiser steps)
    save_every: int = 10                # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2
    log_every: int = 1
    tensorboard: bool = True
    shuffle: bool = True
    save_hf: bool = True                # write a Hugging Face checkpoint at the end

    def __post_init__(self) -> None:
        check_range("train.steps", self.steps, 1)
        check_range("train.save_every", self.save_every, 1)
        check_range("train.keep_checkpoints", self.keep_checkpoints, 1)
        check_range("train.log_every", self.log_every, 1)
