"""What every pipeline step is and sees: the ``Step`` interface and the ``PipelineContext``.

Kept apart from ``steps.py`` (the concrete steps) so the runner and the report can take steps as
values without importing the list of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from medssr_nemo.config import MedSSRConfig

StepCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class PipelineContext:
    """What every step sees: the run's config and where things live."""

    cfg: MedSSRConfig
    run_dir: Path
    shared_dir: Path                      # shared steps live here (= run_dir unless an α sweep)
    progress: bool = True
    train_callbacks: dict[str, Sequence[StepCallback]] = field(default_factory=dict)  # stage -> hooks (tests)

    def dir(self, step: "Step") -> Path:
        return (self.shared_dir if step.shared else self.run_dir) / step.name


class Step(ABC):
    """One step: ``settings``, ``run`` and ``output_files`` are its own; the rest has defaults.
    ``shared`` steps live in the context's shared dir."""

    name: str = ""
    title: str = ""
    shared: bool = False
    collective: bool = False        # every rank runs it (training); else the main rank does
    # every rank runs it on a private copy of its directory, splitting generation over the ranks
    # (rollout/rank_split.py); the main rank's files are the step's
    every_rank_generates: bool = False
    kept_on_rerun: tuple[str, ...] = ()   # files a re-run keeps (the step checks they still fit)

    def disabled_reason(self, cfg: MedSSRConfig) -> str | None:
        return None

    def upstream(self, cfg: MedSSRConfig) -> list[str]:
        return []

    @abstractmethod
    def settings(self, cfg: MedSSRConfig) -> dict[str, Any]:
        """The config values this step's result depends on (part of its fingerprint)."""

    def input_files(self, ctx: PipelineContext) -> list[Path]:
        return []

    @abstractmethod
    def run(self, ctx: PipelineContext, out: Path) -> dict[str, Any]:
        """Do the work in ``out`` (resuming from what it holds); return a short summary."""

    @abstractmethod
    def output_files(self, ctx: PipelineContext, out: Path) -> list[Path]:
        """The files (or directories) whose hashes prove the step finished intact."""

    def recorded_inputs(self, out: Path) -> dict[str, Any]:
        """Input hashes the step's own card recorded (knowledge files, evaluation files)."""
        return {}
