"""``train.tracking``: where the experiment trackers chosen by ``train.loggers`` send a run
(docs/tracking.md). Names default to ones derived from the run directory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from medssr_nemo.config.schema.common import check_choice

LOGGERS = ("jsonl", "tensorboard", "wandb", "mlflow")


@dataclass
class TrackingConfig:
    project: str = "medssr_nemo"            # W&B project / MLflow experiment
    name: Optional[str] = None              # run name; null = derived from the run directory
    group: Optional[str] = None             # W&B group / MLflow tag; null = derived from the run directory
    wandb_mode: Optional[str] = None        # online | offline | disabled; null = wandb's default (WANDB_MODE)
    wandb_dir: Optional[str] = None         # null = <run root>/wandb
    mlflow_tracking_uri: Optional[str] = None   # null = MLFLOW_TRACKING_URI, else file store <run root>/mlruns

    def __post_init__(self) -> None:
        if self.wandb_mode is not None:
            check_choice("train.tracking.wandb_mode", self.wandb_mode, ["online", "offline", "disabled"])


def check_loggers(loggers: list[str]) -> None:
    for index, name in enumerate(loggers):
        check_choice(f"train.loggers[{index}]", name, LOGGERS)
