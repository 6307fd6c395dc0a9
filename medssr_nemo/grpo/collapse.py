"""Stage-1 collapse monitor: is the policy learning the knowledge, or only agreeing with itself?

Stage 1 rewards agreement with the policy's own majority-vote pseudo-labels. On synthetic
questions whose key the knowledge base fixed (``kg`` questions, or ``llm`` questions with a
verified knowledge-base key) the key is known, so each step can measure, over their rollouts:

- ``collapse/reward_agreement``: share of rollouts whose pseudo-label reward (answer == pseudo
  label) equals the key's reward (answer == key). 1.0 while pseudo labels are right; it falls as
  the reward pays for wrong labels.
- ``collapse/self_agreement``: share of rollouts that give the pseudo label, the policy's
  agreement with its own earlier vote; ``collapse/key_accuracy``: share that give the key.
- ``collapse/self_agreement_drift``: self-agreement now minus at the first monitored step of this
  process. Drift up while key accuracy stays flat is the signature of collapse: the policy
  sharpens onto its own labels, right or wrong.
- ``collapse/questions``: knowledge-keyed pseudo-labelled questions in the step.

Only the accuracy view of the reward is monitored (format terms are the same for both labels).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from medssr_nemo import distributed
from medssr_nemo.answers import extract_answer
from medssr_nemo.records import QuestionRecord


def has_knowledge_key(record: QuestionRecord) -> bool:
    """A pseudo-labelled question whose key the knowledge base fixed."""
    meta = record.meta or {}
    return (record.label_source == "pseudo" and record.gold is not None and record.label is not None
            and (meta.get("origin") == "knowledge" or meta.get("key_source") == "knowledge base"))


class CollapseMonitor:
    """``reader`` reads answers exactly as the reward does (the trainer's ``AnswerReader``)."""

    def __init__(self, reader: Callable[[str, Sequence[str]], str | None] = extract_answer) -> None:
        self.reader = reader
        self.first_self_agreement: float | None = None

    def enabled_for(self, records: Sequence[QuestionRecord]) -> bool:
        return any(has_knowledge_key(r) for r in records)

    def update(self, records: Sequence[QuestionRecord], texts: Sequence[Sequence[str]]) -> dict[str, Any]:
        """Metrics for one step (empty when no question of the step has a knowledge-base key);
        ``texts[i]`` are the rollouts of ``records[i]``."""
        agree = same_as_label = same_as_key = total = questions = 0
        for record, completions in zip(records, texts):
            if not has_knowledge_key(record):
                continue
            questions += 1
            for text in completions:
                answer = self.reader(text, record.letters)
                pseudo_reward, key_reward = answer == record.label, answer == record.gold
                agree += pseudo_reward == key_reward
                same_as_label += pseudo_reward
                same_as_key += key_reward
                total += 1
        # counts summed over ranks first, so every rank reports the same numbers (and keys)
        counts = torch.tensor([agree, same_as_label, same_as_key, total, questions], dtype=torch.float64)
        distributed.all_reduce_sum(counts)
        agree, same_as_label, same_as_key, total, questions = counts.tolist()
        if not total:
            return {}
        self_agreement = same_as_label / total
        if self.first_self_agreement is None:
            self.first_self_agreement = self_agreement
        return {"collapse/questions": int(questions), "collapse/reward_agreement": agree / total,
                "collapse/self_agreement": self_agreement, "collapse/key_accuracy": same_as_key / total,
                "collapse/self_agreement_drift": self_agreement - self.first_self_agreement}
