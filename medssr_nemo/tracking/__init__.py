"""Experiment tracking: the loggers ``train.loggers`` selects (TensorBoard, W&B, MLflow) beside
the run's own ``metrics.jsonl`` (docs/tracking.md)."""

from medssr_nemo.tracking.interfaces import RunIdentity, Tracker
from medssr_nemo.tracking.trackers import TrackerSet, config_dict, trackers_for

__all__ = ["RunIdentity", "Tracker", "TrackerSet", "config_dict", "trackers_for"]
