"""Accuracy rewards: 1 when the extracted letter equals the row's key, else 0 (the paper's)."""

from __future__ import annotations

from medssr_nemo.registry import register
from medssr_nemo.rewards.interfaces import GroupCompletions, RewardSource, ScoredGroup


def _match_rewards(answers: list[str | None], key: str) -> list[float]:
    return [1.0 if answer == key else 0.0 for answer in answers]


@register("reward_source", "gold")
class GoldReward(RewardSource):
    """Scores against the human (or knowledge-base) key: ``label`` when its source is gold,
    else ``gold``."""

    name = "gold"

    def score(self, group: GroupCompletions) -> ScoredGroup:
        record = group.record
        key = record.label if record.label_source == "gold" else record.gold
        if key is None:
            raise ValueError(f"record {record.id}: reward source 'gold' needs a gold key, the record has none")
        rewards = _match_rewards(group.answers, key)
        return ScoredGroup(rewards, {"accuracy": sum(rewards) / len(rewards)})


@register("reward_source", "pseudo_label")
class PseudoLabelReward(RewardSource):
    """Scores against the offline majority-vote label; also reports, where the record has a
    known key, how often the pseudo label itself is right (never used as reward)."""

    name = "pseudo_label"

    def score(self, group: GroupCompletions) -> ScoredGroup:
        record = group.record
        if record.label is None or record.label_source != "pseudo":
            raise ValueError(
                f"record {record.id}: reward source 'pseudo_label' needs label_source='pseudo' and a label "
                f"(got label={record.label!r}, label_source={record.label_source!r}); run `medssr label` first"
            )
        rewards = _match_rewards(group.answers, record.label)
        metrics = {"agreement_with_label": sum(rewards) / len(rewards)}
        if record.gold is not None:
            metrics["label_is_correct"] = float(record.label == record.gold)
            metrics["true_accuracy"] = sum(_match_rewards(group.answers, record.gold)) / len(rewards)
        return ScoredGroup(rewards, metrics)
