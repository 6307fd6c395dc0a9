"""Format reward: pays for stating ``The answer is X`` with a valid letter.

Small policies (the embedded SmolLM2) almost never follow the format at first (NOTES.md), so a
pure accuracy reward gives all-zero groups and no gradient; this term lets the format be learned
first. Combine it with an accuracy source through weights in ``reward.sources``.
"""

from __future__ import annotations

from medssr_nemo.answers import follows_format
from medssr_nemo.registry import register
from medssr_nemo.rewards.interfaces import GroupCompletions, RewardSource, ScoredGroup


@register("reward_source", "format")
class FormatReward(RewardSource):
    name = "format"

    def score(self, group: GroupCompletions) -> ScoredGroup:
        letters = group.record.letters
        rewards = [1.0 if follows_format(text, letters) else 0.0 for text in group.texts]
        return ScoredGroup(rewards, {"format_rate": sum(rewards) / len(rewards)})
