"""``composite``: a weighted sum of reward sources as one configurable term (for nesting)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from medssr_nemo.registry import register
from medssr_nemo.rewards.composite import WeightedReward, WeightedTerm, build_reward_source


@register("reward_source", "composite")
class CompositeReward(WeightedReward):
    """Config form of a weighted sum: ``{name: composite, options: {terms: [{name, weight,
    options}]}}``, for nesting composites as one term."""

    name = "composite"

    def __init__(self, terms: Sequence[Mapping[str, Any]]) -> None:
        super().__init__([
            WeightedTerm(float(t.get("weight", 1.0)), build_reward_source(t["name"], t.get("options")))
            for t in terms
        ])
