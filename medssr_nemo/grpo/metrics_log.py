"""Per-step metrics to ``metrics.jsonl`` (one JSON object a step) and the experiment trackers
``train.loggers`` selects (TensorBoard, W&B, MLflow: ``medssr_nemo.tracking``).

On resume the JSONL is cut back to the resumed step, so the file always describes one
uninterrupted trajectory."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from medssr_nemo.artifacts import append_jsonl_durable, read_jsonl_log, write_jsonl_atomic
from medssr_nemo.tracking import TrackerSet
from medssr_nemo.tracking import RunIdentity, config_dict, trackers_for

_REMEDY = "delete metrics.jsonl (the checkpoints are unaffected) or the run directory"


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
        kept = [row for row in read_jsonl_log(self.path, remedy=_REMEDY) if row["step"] <= step]
        write_jsonl_atomic(self.path, kept)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        append_jsonl_durable(self.path, [{"step": step, **clean}])
        self.trackers.log_metrics(step, metrics)

    def close(self) -> None:
        self.trackers.close()


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The logged steps (a torn last line, from a kill mid-write, is skipped; the file is left as
    it is)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no training metrics: {path} does not exist")
    return read_jsonl_log(path, remedy=_REMEDY, repair=False)
