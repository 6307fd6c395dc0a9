"""The trackers a run logs to (``train.loggers``), behind one object that never lets a failing
tracker stop the work: a backend that raises (not installed, no network, bad credentials) is
reported once with a warning and switched off for the rest of the run."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from medssr_nemo.tracking.interfaces import RunIdentity, Tracker
from medssr_nemo.tracking.mlflow_tracker import MlflowTracker
from medssr_nemo.tracking.tensorboard_tracker import TensorBoardTracker
from medssr_nemo.tracking.wandb_tracker import WandbTracker

log = logging.getLogger(__name__)

INSTALL_HINT = {"wandb": "pip install 'medssr_nemo[wandb]'", "mlflow": "pip install 'medssr_nemo[mlflow]'"}


def _factory(name: str) -> Callable[[RunIdentity, Any], Tracker]:
    if name == "tensorboard":
        return TensorBoardTracker
    if name == "wandb":
        return WandbTracker
    if name == "mlflow":
        return MlflowTracker
    raise KeyError(f"no tracker {name!r}; known: tensorboard, wandb, mlflow")


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics dict (booleans, strings and NaN/inf are not sent)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class TrackerSet:
    """Every configured tracker; each call goes to each one that still works."""

    def __init__(self, trackers: Sequence[Tracker] = ()) -> None:
        self.trackers = list(trackers)

    @classmethod
    def open(cls, names: Sequence[str], identity: RunIdentity, settings: Any) -> "TrackerSet":
        trackers = []
        for name in names:
            try:
                trackers.append(_factory(name)(identity, settings))
            except Exception as err:  # noqa: BLE001 - a logger must never stop the run
                hint = f" ({INSTALL_HINT[name]})" if isinstance(err, ImportError) and name in INSTALL_HINT else ""
                log.warning("%s logger could not start, continuing without it%s: %s: %s",
                            name, hint, type(err).__name__, err)
        return cls(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as err:  # noqa: BLE001 - a logger must never stop the run
                log.warning("%s logger failed in %s and is switched off for the rest of this run: %s: %s",
                            tracker.name, what, type(err).__name__, err)
                self.trackers.remove(tracker)
                try:
                    tracker.close()
                except Exception:  # noqa: BLE001
                    pass

    def log_config(self, config: Mapping[str, Any]) -> None:
        self._each("log_config", lambda t: t.log_config(config))

    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        values = numeric(metrics)
        self._each("log_metrics", lambda t: t.log_metrics(step, values))

    def log_summary(self, values: Mapping[str, Any]) -> None:
        clean = numeric(values)
        self._each("log_summary", lambda t: t.log_summary(clean))

    def log_image(self, key: str, path: Path) -> None:
        self._each("log_image", lambda t: t.log_image(key, Path(path)))

    def log_file(self, path: Path) -> None:
        self._each("log_file", lambda t: t.log_file(Path(path)))

    def close(self) -> None:
        self._each("close", lambda t: t.close())
        self.trackers = []


def trackers_for(cfg: Any, directory: str | Path, with_tensorboard: bool = True) -> TrackerSet:
    """The trackers ``cfg.train.loggers`` selects for a run writing to ``directory``
    (``jsonl`` is the metrics file itself, not a tracker; ``train.tensorboard=false`` drops
    tensorboard). Names and groups come from ``train.tracking`` or the directory."""
    train = cfg.train
    names = [n for n in dict.fromkeys(train.loggers) if n != "jsonl"]
    if not train.tensorboard or not with_tensorboard:
        names = [n for n in names if n != "tensorboard"]
    if not names:
        return TrackerSet()
    settings = train.tracking
    identity = RunIdentity.from_directory(directory, settings.project, settings.name, settings.group)
    return TrackerSet.open(names, identity, settings)


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
