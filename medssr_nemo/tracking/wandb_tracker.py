"""Weights & Biases (``pip install medssr_nemo[wandb]``). Offline runs (``WANDB_MODE=offline``
or ``train.tracking.wandb_mode=offline``) write ``<dir>/wandb/offline-run-*/`` for a later
``wandb sync``. The run id comes from the run directory, so a resumed run continues its W&B run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from medssr_nemo.tracking.interfaces import RunIdentity, Tracker


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, identity: RunIdentity, settings: Any) -> None:
        import wandb

        self._wandb = wandb
        directory = Path(settings.wandb_dir) if settings.wandb_dir else identity.root
        directory.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(project=identity.project, name=identity.name, group=identity.group,
                               id=identity.run_id, resume="allow", dir=str(directory),
                               mode=settings.wandb_mode, reinit="create_new")

    def log_config(self, config: Mapping[str, Any]) -> None:
        self._run.config.update(dict(config), allow_val_change=True)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._run.log(dict(metrics), step=step)

    def log_summary(self, values: Mapping[str, float]) -> None:
        self._run.summary.update(dict(values))

    def log_image(self, key: str, path: Path) -> None:
        self._run.log({key: self._wandb.Image(str(path))})

    def log_file(self, path: Path) -> None:
        self._run.save(str(path), base_path=str(path.parent), policy="now")

    def close(self) -> None:
        self._run.finish()
