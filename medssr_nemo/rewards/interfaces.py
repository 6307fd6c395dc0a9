"""Reward source contract. A source is group-aware: it sees one question record and all G of its
completions (with their extracted answers) and returns G rewards plus metrics.

A plain callable ``f(prompts, completions, **columns) -> list[float | None]`` (TRL's reward
function shape) is accepted too and wrapped by ``as_reward_source``; ``None`` means "no reward
from this source for that completion" and counts as 0.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

from medssr_nemo.records import QuestionRecord


@dataclass
class ScoredGroup:
    rewards: list[float]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class GroupCompletions:
    record: QuestionRecord
    prompt: str                         # the rendered prompt text
    texts: list[str]                    # the G completion texts
    answers: list[str | None]           # the extracted letter of each (None = no valid answer)
    truncated: list[bool] = field(default_factory=list)


class RewardSource(abc.ABC):
    name: str = "reward"

    @abc.abstractmethod
    def score(self, group: GroupCompletions) -> ScoredGroup:
        """Rewards for every completion of one question."""


class CallableRewardSource(RewardSource):
    """Wraps ``f(prompts, completions, **columns)`` so it scores groups like any source."""

    def __init__(self, fn: Any, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "callable")

    def score(self, group: GroupCompletions) -> ScoredGroup:
        size = len(group.texts)
        columns = {key: [value] * size for key, value in group.record.to_dict().items()}
        columns["extracted_answer"] = list(group.answers)
        raw: Sequence[float | None] = self.fn([group.prompt] * size, list(group.texts), **columns)
        if len(raw) != size:
            raise ValueError(f"reward function {self.name!r} returned {len(raw)} rewards for {size} completions")
        rewards = [0.0 if r is None else float(r) for r in raw]
        return ScoredGroup(rewards, {f"{self.name}/mean": sum(rewards) / size})
