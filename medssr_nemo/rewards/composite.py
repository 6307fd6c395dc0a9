"""Weighted sums of reward sources, and the router that picks them by a row's label source."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from medssr_nemo import registry
from medssr_nemo.rewards.interfaces import CallableRewardSource, GroupCompletions, RewardSource, ScoredGroup


def build_reward_source(name: str, options: Mapping[str, Any] | None = None) -> RewardSource:
    """A registered source (class -> instance with ``options``), or a plain reward function
    ``f(prompts, completions, **columns)`` wrapped as a source."""
    obj = registry.get("reward_source", name)
    options = dict(options or {})
    if inspect.isclass(obj) and issubclass(obj, RewardSource):
        return obj(**options)
    if isinstance(obj, RewardSource):
        return obj
    if callable(obj):
        if options:
            raise ValueError(f"reward source {name!r} is a plain function; it takes no options, got {sorted(options)}")
        return CallableRewardSource(obj, name=name.rsplit(".", 1)[-1].rsplit(":", 1)[-1])
    raise TypeError(f"reward source {name!r} is neither a RewardSource nor a callable: {obj!r}")


@dataclass
class WeightedTerm:
    weight: float
    source: RewardSource


class WeightedReward(RewardSource):
    """reward_i = sum_k w_k * r_k,i ; every term's metrics are reported under its name."""

    name = "weighted"

    def __init__(self, terms: Sequence[WeightedTerm]) -> None:
        if not terms:
            raise ValueError("a weighted reward needs at least one term")
        self.terms = list(terms)

    def score(self, group: GroupCompletions) -> ScoredGroup:
        total = [0.0] * len(group.texts)
        metrics: dict[str, float] = {}
        for term in self.terms:
            scored = term.source.score(group)
            if len(scored.rewards) != len(total):
                raise ValueError(f"reward source {term.source.name!r} returned {len(scored.rewards)} rewards for {len(total)} completions")
            total = [t + term.weight * r for t, r in zip(total, scored.rewards)]
            metrics[f"{term.source.name}/mean"] = sum(scored.rewards) / len(total)
            metrics.update({f"{term.source.name}/{k}": v for k, v in scored.metrics.items()})
        return ScoredGroup(total, metrics)


class RewardRouter:
    """Scores each question with the reward of its label source (gold | pseudo), so one run can
    mix human-labelled and pseudo-labelled rows."""

    def __init__(self, by_label_source: Mapping[str, RewardSource]) -> None:
        self.by_label_source = dict(by_label_source)

    @classmethod
    def from_config(cls, reward_cfg: Any) -> "RewardRouter":
        return cls({
            label_source: WeightedReward([
                WeightedTerm(term.weight, build_reward_source(term.name, term.options)) for term in terms
            ])
            for label_source, terms in reward_cfg.sources.items()
        })

    def source_for(self, group: GroupCompletions) -> str:
        label_source = group.record.label_source or ("gold" if group.record.gold is not None else None)
        if label_source not in self.by_label_source:
            raise ValueError(
                f"record {group.record.id}: no reward configured for label source {label_source!r}; "
                f"configured: {sorted(self.by_label_source)} (reward.sources)"
            )
        return label_source

    def score(self, group: GroupCompletions) -> tuple[str, ScoredGroup]:
        label_source = self.source_for(group)
        return label_source, self.by_label_source[label_source].score(group)
