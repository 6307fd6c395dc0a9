"""Rollout engines: the seam between a policy and whatever samples from it."""

from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams

__all__ = ["Completion", "RolloutEngine", "SamplingParams"]
