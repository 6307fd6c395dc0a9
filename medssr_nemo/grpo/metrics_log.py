"""Per-step metrics to ``metrics.jsonl`` (one JSON object a step) and the experiment trackers
``train.loggers`` selects (TensorBoard, W&B, MLflow: ``medssr_nemo.tracking``).

On resume the JSONL is cut back to the resumed step, so the file always describes one
uninterrupted trajectory."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from medssr_nemo.artifacts import write_text_atomic
from medssr_nemo.tracking import TrackerSet
from medssr_nemo.tracking import RunIdentity, config_dict, trackers_for


class MetricsLogger:
    """``trackers``: where each step also goes (None: TensorBoard if ``tensorboard``, the
    behaviour before trackers were configurable)."""

    def __init__(self, output_dir: str | os.PathLike, tensorboard: bool = True, enabled: bool = True,
                 trackers: TrackerSet | None = None) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled
        if trackers is None and enabled and tensorboard:
            trackers = TrackerSet.open(["tensorboard"], RunIdentity.from_directory(output_dir), None)
        self.trackers = trackers if enabled and trackers is not None else TrackerSet()

    @classmethod
    def for_run(cls, cfg: Any, output_dir: str | os.PathLike, enabled: bool = True) -> "MetricsLogger":
        """The logger of a training run: ``train.loggers``' trackers, which get the resolved
        config first (only where ``enabled``: the main rank)."""

        trackers = trackers_for(cfg, output_dir) if enabled else TrackerSet()
        trackers.log_config(config_dict(cfg))
        return cls(output_dir, enabled=enabled, trackers=trackers)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (they belong to the run that was interrupted)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        self.trackers.log_metrics(step, metrics)

    def close(self) -> None:
        self.trackers.close()


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
