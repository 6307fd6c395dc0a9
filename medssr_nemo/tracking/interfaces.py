"""What an experiment tracker receives (the seam W&B, MLflow and TensorBoard plug into), and
the identity of a run: its name, group and id, derived from the run directory."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

# directories a run's steps write into: a tracker run is named after the run and the step
STEP_DIRS = ("stage1", "stage2", "report", "eval_base", "eval_stage1", "eval_stage2", "eval")


@dataclass(frozen=True)
class RunIdentity:
    """Where one tracked run goes. ``run_id`` is stable for a directory, so a resumed run
    continues the same tracker run."""

    project: str
    name: str              # e.g. "quickstart/stage1", "sweep/alpha_0.3/stage2"
    group: str             # e.g. "quickstart", "sweep": every step and α of one run together
    run_id: str
    directory: Path        # the step's own output directory
    root: Path             # the run (or sweep) directory: default home of wandb/ and mlruns/

    @classmethod
    def from_directory(cls, directory: str | Path, project: str = "medssr_nemo", name: str | None = None,
                       group: str | None = None) -> "RunIdentity":
        """``runs/x/stage1`` -> name ``x/stage1``, group ``x``; an α sweep's
        ``runs/s/alpha_0.3/stage1`` -> name ``s/alpha_0.3/stage1``, group ``s``; any other
        directory ``runs/y`` -> name ``y``, group ``y``."""
        directory = Path(directory).resolve()
        run = directory.parent if directory.name in STEP_DIRS else directory
        root = run.parent if run.name.startswith("alpha_") else run
        derived = "/".join(directory.relative_to(root.parent).parts)
        run_id = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
        return cls(project, name or derived, group or root.name, run_id, directory, root)


class Tracker(ABC):
    """One backend. Every call may raise (no network, bad credentials): ``TrackerSet`` catches
    that, warns once, and turns the backend off, so training never stops for a logger."""

    name: str

    @abstractmethod
    def log_config(self, config: Mapping[str, Any]) -> None:
        """The resolved config (nested dicts)."""

    @abstractmethod
    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """One training step's numeric metrics."""

    @abstractmethod
    def log_summary(self, values: Mapping[str, float]) -> None:
        """Final numbers of the run (eval accuracies, intervals, paired tests), flat keys."""

    @abstractmethod
    def log_image(self, key: str, path: Path) -> None:
        """A figure (PNG) of the report."""

    @abstractmethod
    def log_file(self, path: Path) -> None:
        """A file to keep with the run (report.md, summary.json)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and end the run."""
