"""TensorBoard: scalars per step, summary scalars and figures, under ``<run dir>/tensorboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from medssr_nemo.tracking.interfaces import RunIdentity, Tracker


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, identity: RunIdentity, settings: Any = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(identity.directory / "tensorboard"))

    def log_config(self, config: Mapping[str, Any]) -> None:
        import yaml

        self._writer.add_text("config", "```\n" + yaml.safe_dump(dict(config), sort_keys=True) + "```", 0)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def log_summary(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self._writer.add_scalar(key, value, 0)
        self._writer.flush()

    def log_image(self, key: str, path: Path) -> None:
        import matplotlib.image

        self._writer.add_image(key, matplotlib.image.imread(path)[..., :3], 0, dataformats="HWC")

    def log_file(self, path: Path) -> None:
        pass   # TensorBoard keeps no files; the run directory has them

    def close(self) -> None:
        self._writer.close()
